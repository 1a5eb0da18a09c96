-- ordersync's marketing database: contacts, their orders and items, a timeline, per-contact statistics,
-- and the sink's consumed Kafka offsets (written in the same transaction as the rows they cover).

CREATE TABLE contacts (
    contact_id        uuid PRIMARY KEY,
    list_id           text        NOT NULL,
    email             text        NOT NULL,
    first_name        text,
    last_name         text,
    phone             text,
    marketing_consent boolean,
    origin            text        NOT NULL,
    store_customers   jsonb       NOT NULL DEFAULT '[]',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint      NOT NULL,
    UNIQUE (list_id, email)
);

CREATE TABLE orders (
    store_id           text        NOT NULL,
    source_order_id    text        NOT NULL,
    order_key          text        NOT NULL,
    platform           text        NOT NULL,
    order_number       text,
    list_id            text        NOT NULL,
    -- No foreign key: the contact row arrives on another topic and may land after its orders.
    contact_id         uuid,
    contact_email      text,
    matched            boolean     NOT NULL,
    store_customer_id  text,
    status             text        NOT NULL CHECK (status IN ('CREATED', 'PENDING', 'COMPLETED', 'CANCELED', 'UNKNOWN')),
    store_status       text        NOT NULL,
    store_status_label text,
    currency           text        NOT NULL,
    total              numeric(20, 6) NOT NULL,
    subtotal           numeric(20, 6) NOT NULL,
    tax_total          numeric(20, 6) NOT NULL,
    shipping_total     numeric(20, 6) NOT NULL,
    discount_total     numeric(20, 6) NOT NULL,
    refunded_total     numeric(20, 6) NOT NULL,
    net_total          numeric(20, 6) NOT NULL,
    refunds            jsonb       NOT NULL DEFAULT '[]',
    coupons            jsonb       NOT NULL DEFAULT '[]',
    created_at         timestamptz NOT NULL,
    modified_at        timestamptz NOT NULL,
    paid_at            timestamptz,
    completed_at       timestamptz,
    deleted            boolean     NOT NULL DEFAULT false,
    version            bigint      NOT NULL,
    PRIMARY KEY (store_id, source_order_id)
);
CREATE INDEX orders_contact_created ON orders (contact_id, created_at) WHERE NOT deleted;
CREATE INDEX orders_created ON orders (created_at) WHERE NOT deleted;
CREATE INDEX orders_status_created ON orders (status, created_at) WHERE NOT deleted;

CREATE TABLE order_items (
    store_id        text           NOT NULL,
    source_order_id text           NOT NULL,
    item_id         text           NOT NULL,
    product_id      text           NOT NULL,
    variation_id    text,
    sku             text,
    name            text           NOT NULL,
    quantity        integer        NOT NULL,
    unit_price      numeric(20, 6) NOT NULL,
    total           numeric(20, 6) NOT NULL,
    categories      text[]         NOT NULL DEFAULT '{}',
    PRIMARY KEY (store_id, source_order_id, item_id)
);
CREATE INDEX order_items_product ON order_items (product_id);
CREATE INDEX order_items_sku ON order_items (sku) WHERE sku IS NOT NULL;
CREATE INDEX order_items_name ON order_items (lower(name));
CREATE INDEX order_items_categories ON order_items USING gin (categories);

CREATE TABLE activity (
    event_id          uuid PRIMARY KEY,
    type              text        NOT NULL,
    order_key         text        NOT NULL,
    store_id          text        NOT NULL,
    source_order_id   text        NOT NULL,
    list_id           text        NOT NULL,
    contact_id        uuid,
    occurred_at       timestamptz NOT NULL,
    from_status       text,
    to_status         text,
    from_store_status text,
    to_store_status   text,
    currency          text        NOT NULL,
    total             numeric(20, 6) NOT NULL,
    changed_fields    text[]      NOT NULL DEFAULT '{}',
    version           bigint      NOT NULL
);
CREATE INDEX activity_contact_time ON activity (contact_id, occurred_at DESC);
CREATE INDEX activity_order ON activity (store_id, source_order_id);

-- Kept current in the same transaction as the orders they summarise. "Spent" counts orders that are
-- neither deleted nor CANCELED, net of refunds.
CREATE TABLE contact_order_stats (
    contact_id          uuid           NOT NULL,
    currency            text           NOT NULL,
    order_count         integer        NOT NULL,
    completed_count     integer        NOT NULL,
    spent               numeric(20, 6) NOT NULL,
    average_order_value numeric(20, 6) NOT NULL,
    first_order_at      timestamptz    NOT NULL,
    last_order_at       timestamptz    NOT NULL,
    PRIMARY KEY (contact_id, currency)
);
CREATE INDEX contact_order_stats_spent ON contact_order_stats (currency, spent);
CREATE INDEX contact_order_stats_aov ON contact_order_stats (currency, average_order_value);
CREATE INDEX contact_order_stats_last ON contact_order_stats (last_order_at);

CREATE TABLE sink_offsets (
    consumer    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

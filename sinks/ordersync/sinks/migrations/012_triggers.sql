-- Automation triggers as fired (the triggers topic), for the Automations page and the contact's Activity
-- tab; and each trigger destination's delivery health, written by `ordersync triggers forward`.
CREATE TABLE triggers (
    trigger_id       uuid PRIMARY KEY,
    kind             text        NOT NULL,
    list_id          text        NOT NULL,
    contact_id       uuid        NOT NULL,
    order_key        text,
    store_id         text,
    source_order_id  text,
    currency         text,
    total            numeric(20, 6),
    rule             text,
    fired_at         timestamptz NOT NULL,
    record           jsonb       NOT NULL
);
CREATE INDEX triggers_contact_time ON triggers (contact_id, fired_at DESC);
CREATE INDEX triggers_list_time ON triggers (list_id, fired_at DESC);

CREATE TABLE trigger_destinations (
    name           text PRIMARY KEY,
    delivered      bigint      NOT NULL DEFAULT 0,
    dead_lettered  bigint      NOT NULL DEFAULT 0,
    last_success   timestamptz,
    failing_since  timestamptz,
    last_error     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

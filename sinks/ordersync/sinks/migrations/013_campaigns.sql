-- Campaign events as received (the campaign.events topic) and the campaign each attributed order is
-- credited to (the attributions topic): the Campaigns report and page sum revenue from orders through
-- attributions, so refunds and cancellations lower it as the orders change.
CREATE TABLE campaign_events (
    list_id        text        NOT NULL,
    event_id       text        NOT NULL,
    contact_id     uuid        NOT NULL,
    campaign_id    text        NOT NULL,
    campaign_name  text,
    channel        text        NOT NULL,
    type           text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    holdout        boolean     NOT NULL,
    machine        boolean     NOT NULL,
    url            text,
    PRIMARY KEY (list_id, event_id)
);
CREATE INDEX campaign_events_campaign ON campaign_events (list_id, campaign_id, type);
CREATE INDEX campaign_events_contact_time ON campaign_events (contact_id, occurred_at DESC);

CREATE TABLE attributions (
    store_id          text        NOT NULL,
    source_order_id   text        NOT NULL,
    list_id           text        NOT NULL,
    contact_id        uuid        NOT NULL,
    campaign_id       text        NOT NULL,
    campaign_name     text,
    channel           text        NOT NULL,
    touch             text        NOT NULL,
    touch_event_id    text        NOT NULL,
    touched_at        timestamptz NOT NULL,
    order_created_at  timestamptz NOT NULL,
    historical        boolean     NOT NULL,
    PRIMARY KEY (store_id, source_order_id)
);
CREATE INDEX attributions_campaign ON attributions (list_id, campaign_id);

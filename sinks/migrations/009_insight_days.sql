-- The web app's Insights read per-day summaries instead of a year of orders and items (on 1,000,000
-- orders the per-request queries took about a second). The sink marks the UTC days its batches touch as
-- stale, in the same transaction as the orders; the web app recomputes the stale days before it reads
-- (web/insights.py), so a page pays for the days that changed, not for the whole period.
CREATE TABLE insight_stale_days (day date PRIMARY KEY);

-- Live (not deleted) orders per day, store, list, currency and normalised status.
CREATE TABLE insight_days (
    day          date           NOT NULL,
    store_id     text           NOT NULL,
    list_id      text           NOT NULL,
    currency     text           NOT NULL,
    status       text           NOT NULL,
    orders       integer        NOT NULL,
    net_revenue  numeric(20, 6) NOT NULL,  -- net of refunds
    first_orders integer        NOT NULL,  -- orders that were their contact's first: new customers
    PRIMARY KEY (day, store_id, list_id, currency, status)
);

-- Items of live orders that are not CANCELED, per day, by product name and by category.
CREATE TABLE insight_day_items (
    day      date           NOT NULL,
    store_id text           NOT NULL,
    list_id  text           NOT NULL,
    currency text           NOT NULL,
    kind     text           NOT NULL CHECK (kind IN ('product', 'category')),
    name     text           NOT NULL,
    quantity bigint         NOT NULL,
    revenue  numeric(20, 6) NOT NULL,
    PRIMARY KEY (day, store_id, list_id, currency, kind, name)
);

INSERT INTO insight_stale_days SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM orders;

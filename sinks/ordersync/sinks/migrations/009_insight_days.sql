-- The web app's Insights read per-day summaries instead of a year of orders and items (on 1,000,000
-- orders the per-request queries took about a second). The sink marks the UTC days its batches touch as
-- stale, in the same transaction as the orders; the web app recomputes the stale days before it reads
-- (web/ordersync/web/insights.py), so a page pays for the days that changed, not for the whole period. Summaries are
-- kept for the days Insights can show (the last 400); older stale days are only forgotten.
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

-- The same items per month (from insight_day_items): a year of top products reads twelve months and the
-- days of one partial month instead of every day's rows.
CREATE TABLE insight_month_items (
    month    date           NOT NULL,
    store_id text           NOT NULL,
    list_id  text           NOT NULL,
    currency text           NOT NULL,
    kind     text           NOT NULL,
    name     text           NOT NULL,
    quantity bigint         NOT NULL,
    revenue  numeric(20, 6) NOT NULL,
    PRIMARY KEY (month, store_id, list_id, currency, kind, name)
);

INSERT INTO insight_stale_days SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM orders;

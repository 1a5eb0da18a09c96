-- RFM scores (docs/rfm.md). A contact's scores are read from its order statistics against its list's
-- quintile bounds per currency, so the statistics carry the list, and the bounds are recomputed for the
-- lists the sink marks as changed (in the same transaction as the orders).
ALTER TABLE contact_order_stats ADD COLUMN list_id text;
UPDATE contact_order_stats s
SET list_id = o.list_id
FROM (SELECT DISTINCT ON (contact_id) contact_id, list_id FROM orders WHERE contact_id IS NOT NULL) o
WHERE s.contact_id = o.contact_id;
ALTER TABLE contact_order_stats ALTER COLUMN list_id SET NOT NULL;
-- Scoring a list reads only this index; bounds are computed from the same rows.
CREATE INDEX contact_order_stats_rfm ON contact_order_stats (list_id, currency)
    INCLUDE (contact_id, last_order_at, priced_orders, spent) WHERE priced_orders > 0;

CREATE TABLE rfm_stale_lists (list_id text PRIMARY KEY);

-- Per list and currency, over the contacts with at least one order that counts towards "spent": the
-- values at 20, 40, 60 and 80 % of the ranked contacts (percentile_disc) of the last order time, the
-- number of such orders and the amount spent. A score is 1 plus the number of bounds a value exceeds.
CREATE TABLE rfm_bounds (
    list_id     text             NOT NULL,
    currency    text             NOT NULL,
    contacts    integer          NOT NULL,
    recency     timestamptz[]    NOT NULL,
    frequency   integer[]        NOT NULL,
    monetary    numeric(20, 6)[] NOT NULL,
    computed_at timestamptz      NOT NULL,
    PRIMARY KEY (list_id, currency)
);

-- The Insights grid, computed with the bounds: contacts and their amount spent per R and F score (scoring
-- every contact of a large list per page view cost about 100 ms on 200,000 contacts, bench/web.py).
CREATE TABLE rfm_cells (
    list_id  text           NOT NULL,
    currency text           NOT NULL,
    r        smallint       NOT NULL,
    f        smallint       NOT NULL,
    contacts integer        NOT NULL,
    spent    numeric(20, 6) NOT NULL,
    PRIMARY KEY (list_id, currency, r, f)
);

INSERT INTO rfm_stale_lists SELECT DISTINCT list_id FROM contact_order_stats;

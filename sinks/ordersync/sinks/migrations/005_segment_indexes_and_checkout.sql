-- Segment queries on 1,000,000 orders (bench/segments.py) spent their time visiting one heap page per
-- order the index found. Covering indexes let the period and status conditions read the index alone.
CREATE INDEX orders_status_created_cover ON orders (status, created_at) INCLUDE (contact_id, currency, net_total)
    WHERE NOT deleted;
CREATE INDEX orders_created_cover ON orders (created_at) INCLUDE (contact_id, status, currency, net_total)
    WHERE NOT deleted;
DROP INDEX orders_status_created;
DROP INDEX orders_created;

-- Abandoned checkout per contact, kept by the sink with the other summaries: the last COMPLETED order,
-- and the oldest PENDING or CREATED order placed after it ("open since"). "Has an open order older than
-- N hours and no COMPLETED order since" is then open_since < now - N hours.
CREATE TABLE contact_checkout (
    contact_id        uuid        PRIMARY KEY,
    last_completed_at timestamptz,
    open_since        timestamptz
);
CREATE INDEX contact_checkout_open_since ON contact_checkout (open_since) WHERE open_since IS NOT NULL;

INSERT INTO contact_checkout
SELECT contact_id, last_done,
       min(created_at) FILTER (WHERE status IN ('PENDING', 'CREATED') AND (last_done IS NULL OR created_at > last_done))
FROM (
    SELECT contact_id, status, created_at,
           max(created_at) FILTER (WHERE status = 'COMPLETED') OVER (PARTITION BY contact_id) AS last_done
    FROM orders
    WHERE contact_id IS NOT NULL AND NOT deleted
) o
GROUP BY contact_id, last_done;

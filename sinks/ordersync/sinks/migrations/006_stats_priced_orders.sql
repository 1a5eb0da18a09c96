-- How many of a contact's orders in a currency count towards "spent" (neither deleted nor CANCELED).
-- With it the sink can add a batch's new orders to the statistics (the average order value is
-- spent / priced_orders) instead of recomputing them from every order of every contact the batch touched.
ALTER TABLE contact_order_stats ADD COLUMN priced_orders integer NOT NULL DEFAULT 0;

UPDATE contact_order_stats s
SET priced_orders = p.n
FROM (
    SELECT contact_id, currency, count(*) FILTER (WHERE status <> 'CANCELED') AS n
    FROM orders
    WHERE contact_id IS NOT NULL AND NOT deleted
    GROUP BY contact_id, currency
) p
WHERE s.contact_id = p.contact_id AND s.currency = p.currency;

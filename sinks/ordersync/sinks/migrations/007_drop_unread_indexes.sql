-- Indexes no query needs, each paid for by every row the sink writes.
-- activity_order: nothing reads activity by order (the contact view reads it by contact, through
-- activity_contact_time); upserting 100,000 activity rows took 0.75 s with it, 0.57 s without.
DROP INDEX IF EXISTS activity_order;
-- The spent / average / last-order indexes on contact_order_stats: with 200,000 contacts PostgreSQL
-- answers those segment conditions by scanning the summary in under 100 ms either way (spent > 200 EUR:
-- 70 ms with, 69-92 ms without; AOV > 150 EUR: 67 ms with, 88 ms without), while each index made every
-- statistics update a non-HOT update with an index insert (adding 100,000 new orders: 0.81 s -> 0.50 s).
DROP INDEX IF EXISTS contact_order_stats_spent;
DROP INDEX IF EXISTS contact_order_stats_aov;
DROP INDEX IF EXISTS contact_order_stats_last;

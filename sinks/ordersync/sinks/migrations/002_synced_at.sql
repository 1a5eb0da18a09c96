-- When the sink last wrote each order: end-to-end latency is synced_at - modified_at.
ALTER TABLE orders ADD COLUMN synced_at timestamptz NOT NULL DEFAULT now();

"""The sink's SQL, in one place. Every value is a bound parameter or comes through COPY."""

from __future__ import annotations

from ordersync.sinks.rows import (
    ACTIVITY_COLUMNS,
    ATTRIBUTION_COLUMNS,
    CAMPAIGN_EVENT_COLUMNS,
    CONTACT_COLUMNS,
    ITEM_COLUMNS,
    ORDER_COLUMNS,
    TRIGGER_COLUMNS,
)


def _cols(columns: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(prefix + c for c in columns)


def _updates(columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)


CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_orders (LIKE orders INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_items (LIKE order_items) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_activity (LIKE activity) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_contacts (LIKE contacts) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_triggers (LIKE triggers) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_suppressed (LIKE suppressed_triggers) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_campaign_events (LIKE campaign_events) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_attributions (LIKE attributions) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS applied_orders (store_id text, source_order_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS existing_orders
    (store_id text, source_order_id text, contact_id uuid, created_at timestamptz) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS new_orders (store_id text, source_order_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS recompute_contacts (contact_id uuid) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS added_contacts (contact_id uuid) ON COMMIT DELETE ROWS;
"""

# Temporary tables get no statistics from autovacuum: without these the planner guesses their size and
# joins them to orders and order_items by hashing the whole big table, a full scan per batch that grows
# with the database, or (new_orders, guessed at one row) joins the batch to itself in nested loops,
# quadratic in the batch size. Only the columns the joins and filters use are analyzed: statistics on
# every column of stage_orders cost 8 times more.
ANALYZE_STAGED_ORDERS = (
    "ANALYZE stage_orders (store_id, source_order_id, contact_id, deleted), stage_items (store_id, source_order_id)"
)
ANALYZE_FOUND_ORDERS = "ANALYZE existing_orders, new_orders"
ANALYZE_APPLIED_ORDERS = "ANALYZE applied_orders"

COPY_ORDERS = f"COPY stage_orders ({_cols(ORDER_COLUMNS)}) FROM STDIN"
COPY_ITEMS = f"COPY stage_items ({_cols(ITEM_COLUMNS)}) FROM STDIN"
COPY_ACTIVITY = f"COPY stage_activity ({_cols(ACTIVITY_COLUMNS)}) FROM STDIN"
COPY_CONTACTS = f"COPY stage_contacts ({_cols(CONTACT_COLUMNS)}) FROM STDIN"
COPY_TRIGGERS = f"COPY stage_triggers ({_cols(TRIGGER_COLUMNS)}) FROM STDIN"
# A trigger never changes: a redelivered one (same id) is the same trigger.
INSERT_TRIGGERS = f"""
INSERT INTO triggers ({_cols(TRIGGER_COLUMNS)})
SELECT {_cols(TRIGGER_COLUMNS)} FROM stage_triggers
ON CONFLICT (trigger_id) DO NOTHING
"""
COPY_SUPPRESSED = f"COPY stage_suppressed ({_cols(TRIGGER_COLUMNS)}) FROM STDIN"
INSERT_SUPPRESSED = f"""
INSERT INTO suppressed_triggers ({_cols(TRIGGER_COLUMNS)})
SELECT {_cols(TRIGGER_COLUMNS)} FROM stage_suppressed
ON CONFLICT (trigger_id) DO NOTHING
"""
COPY_CAMPAIGN_EVENTS = f"COPY stage_campaign_events ({_cols(CAMPAIGN_EVENT_COLUMNS)}) FROM STDIN"
# An event never changes: a repeat (same id) is the same record.
# New events and credits mark their campaigns (reach, credited revenue), and a new send its recipient
# (revenue in the window after it), for the summaries (migration 015); in one order, so two sinks
# marking the same rows take their locks alike (no deadlock). A redelivered one marks nothing.
INSERT_CAMPAIGN_EVENTS = f"""
WITH added AS (
    INSERT INTO campaign_events ({_cols(CAMPAIGN_EVENT_COLUMNS)})
    SELECT {_cols(CAMPAIGN_EVENT_COLUMNS)} FROM stage_campaign_events
    ON CONFLICT (list_id, event_id) DO NOTHING
    RETURNING list_id, campaign_id, contact_id, type
), recipients AS (
    INSERT INTO campaign_stale_recipients
    SELECT DISTINCT list_id, campaign_id, contact_id FROM added WHERE type = 'SEND' ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING
)
INSERT INTO campaign_stale
SELECT DISTINCT list_id, campaign_id, true, false FROM added ORDER BY 1, 2
ON CONFLICT (list_id, campaign_id) DO UPDATE SET reach = true WHERE NOT campaign_stale.reach
"""
COPY_ATTRIBUTIONS = f"COPY stage_attributions ({_cols(ATTRIBUTION_COLUMNS)}) FROM STDIN"
# A decision can change (a touch read after the order: ordersync.processors.attribution): a changed one
# replaces the row, and the campaigns it leaves and joins are both recomputed.
INSERT_ATTRIBUTIONS = f"""
WITH changed AS (
    SELECT a.list_id, a.campaign_id FROM attributions a JOIN stage_attributions s USING (store_id, source_order_id)
    WHERE (a.campaign_id, a.touch_event_id) IS DISTINCT FROM (s.campaign_id, s.touch_event_id)
), added AS (
    INSERT INTO attributions ({_cols(ATTRIBUTION_COLUMNS)})
    SELECT {_cols(ATTRIBUTION_COLUMNS)} FROM stage_attributions
    ON CONFLICT (store_id, source_order_id) DO UPDATE SET ({_cols(ATTRIBUTION_COLUMNS)}) = ROW({_cols(ATTRIBUTION_COLUMNS, "EXCLUDED.")})
    WHERE (attributions.campaign_id, attributions.touch_event_id)
        IS DISTINCT FROM (EXCLUDED.campaign_id, EXCLUDED.touch_event_id)
    RETURNING list_id, campaign_id
)
INSERT INTO campaign_stale
SELECT DISTINCT list_id, campaign_id, false, false FROM (SELECT * FROM added UNION ALL SELECT * FROM changed) AS c
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""
# An order no longer credited to anything (a tombstone on attributions).
DELETE_ATTRIBUTIONS = """
WITH gone AS (
    DELETE FROM attributions WHERE (store_id, source_order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
    RETURNING list_id, campaign_id
)
INSERT INTO campaign_stale SELECT DISTINCT list_id, campaign_id, false, false FROM gone ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""

# Before the upsert, the staged orders the database already holds, with their current owners and days.
FIND_EXISTING_ORDERS = """
INSERT INTO existing_orders
SELECT s.store_id, s.source_order_id, o.contact_id, o.created_at
FROM stage_orders s JOIN orders o USING (store_id, source_order_id)
"""
# The other staged orders, unless a delete is staged with them: inserted as they are, so their owners'
# summaries can simply add them. A backfill is almost nothing but such orders.
FIND_NEW_ORDERS = """
INSERT INTO new_orders
SELECT store_id, source_order_id FROM stage_orders WHERE NOT deleted
EXCEPT SELECT store_id, source_order_id FROM existing_orders
EXCEPT SELECT store_id, source_order_id FROM stage_orders WHERE deleted
"""
# The contacts a batch touched stay in PostgreSQL (recompute_contacts, added_contacts): the summary
# statements read them there, no round trip through Python.
# Summaries to be recomputed: the current and the staged owners of existing orders (an order can move
# from one contact to another, change status, be deleted).
FIND_CONTACTS_OF_EXISTING = """
INSERT INTO recompute_contacts
SELECT contact_id FROM existing_orders WHERE contact_id IS NOT NULL
UNION
SELECT s.contact_id FROM stage_orders s JOIN existing_orders USING (store_id, source_order_id)
WHERE s.contact_id IS NOT NULL
"""
# Contacts that only gained new orders: those orders are added to their summaries. Runs after every
# recomputation is known (a recomputation reads the new orders too).
FIND_ADDED_CONTACTS = """
INSERT INTO added_contacts
SELECT s.contact_id FROM stage_orders s JOIN new_orders USING (store_id, source_order_id)
WHERE s.contact_id IS NOT NULL
EXCEPT SELECT contact_id FROM recompute_contacts
"""

# The UTC days whose Insights summaries the batch changes (recomputed by the web app, migration 009): the
# days of the staged orders, of the orders they replace, and the first-order day of a contact whose new
# order is earlier (that older order is no longer the contact's first; only new orders are looked up, as
# an update keeps its creation time). Runs before the upsert.
MARK_STALE_DAYS = """
INSERT INTO insight_stale_days
SELECT day FROM (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day FROM stage_orders WHERE NOT deleted
    UNION
    SELECT (created_at AT TIME ZONE 'UTC')::date FROM existing_orders
    UNION
    SELECT (s.first_order_at AT TIME ZONE 'UTC')::date
    FROM contact_order_stats s
    JOIN (SELECT contact_id, min(created_at) AS earliest
          FROM stage_orders JOIN new_orders USING (store_id, source_order_id)
          WHERE contact_id IS NOT NULL GROUP BY contact_id) n USING (contact_id)
    WHERE s.contact_id = ANY(ARRAY(SELECT contact_id FROM stage_orders JOIN new_orders USING (store_id, source_order_id)))
      AND s.first_order_at > n.earliest  -- per currency: at worst a day more to recompute
) days
ORDER BY day  -- two sinks marking the same days take the row locks in one order: no deadlock
ON CONFLICT DO NOTHING
"""
# The lists whose RFM bounds the batch changes (migration 014): those of the staged orders and of the
# orders they replace (before the upsert). Recomputed by whoever reads scores (ordersync.segmentation.rfm).
MARK_RFM_STALE = """
INSERT INTO rfm_stale_lists
SELECT list_id FROM stage_orders
UNION
SELECT o.list_id FROM existing_orders e JOIN orders o USING (store_id, source_order_id)
ORDER BY 1
ON CONFLICT DO NOTHING
"""
MARK_RFM_STALE_OF_PURGED = """
INSERT INTO rfm_stale_lists
SELECT DISTINCT list_id FROM orders
WHERE (store_id, source_order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY 1
ON CONFLICT DO NOTHING
"""


# What an order's change alters in the campaign summaries (migration 015): the campaign it is credited
# to (credited revenue), and each recipient it belongs to whose send was within the kept window before its
# creation (incremental revenue).
def _mark_campaigns_of(orders: str) -> str:
    """``orders``: a query for (store_id, source_order_id, list_id, contact_id, created_at)."""
    return f"""
WITH c AS MATERIALIZED ({orders}), sent AS MATERIALIZED (
    SELECT DISTINCT e.list_id, e.campaign_id, e.contact_id
    FROM c
    JOIN campaign_events e ON e.contact_id = c.contact_id AND e.list_id = c.list_id AND e.type = 'SEND'
     AND e.occurred_at <= c.created_at AND e.occurred_at > c.created_at - campaign_kept_window()
), recipients AS (
    INSERT INTO campaign_stale_recipients SELECT * FROM sent ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING
)
INSERT INTO campaign_stale
SELECT list_id, campaign_id, false, false FROM (
    SELECT a.list_id, a.campaign_id FROM c JOIN attributions a USING (store_id, source_order_id)
    UNION
    SELECT list_id, campaign_id FROM sent
) marked
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""


# Before the upsert: the staged orders as they will be, and as they are now.
MARK_CAMPAIGNS_STALE = _mark_campaigns_of("""
SELECT store_id, source_order_id, list_id, contact_id, created_at FROM stage_orders
UNION ALL
SELECT o.store_id, o.source_order_id, o.list_id, o.contact_id, o.created_at
FROM existing_orders JOIN orders o USING (store_id, source_order_id)
""")
MARK_CAMPAIGNS_STALE_OF_PURGED = _mark_campaigns_of("""
SELECT store_id, source_order_id, list_id, contact_id, created_at FROM orders
WHERE (store_id, source_order_id) IN (SELECT * FROM unnest(%(stores)s::text[], %(ids)s::text[]))
""")
# After the summaries: a contact whose order was deleted or moved to another contact may have a new first
# order, on a day the batch did not touch; its day is stale too (Insights count first orders).
MARK_NEXT_FIRST_ORDER_DAYS = """
INSERT INTO insight_stale_days
SELECT DISTINCT (min(first_order_at) AT TIME ZONE 'UTC')::date
FROM contact_order_stats
WHERE contact_id = ANY(ARRAY(
    SELECT e.contact_id FROM existing_orders e JOIN stage_orders s USING (store_id, source_order_id)
    WHERE e.contact_id IS NOT NULL AND (s.deleted OR s.contact_id IS DISTINCT FROM e.contact_id)))
GROUP BY contact_id
ORDER BY 1
ON CONFLICT DO NOTHING
"""
MARK_STALE_DAYS_OF_PURGED = """
INSERT INTO insight_stale_days
SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM orders
WHERE (store_id, source_order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY 1
ON CONFLICT DO NOTHING
"""

# Version guard: an older version never overwrites a newer one; the same version again is harmless.
UPSERT_ORDERS = f"""
WITH applied AS (
    INSERT INTO orders AS o ({_cols(ORDER_COLUMNS)})
    SELECT {_cols(ORDER_COLUMNS)} FROM stage_orders WHERE NOT deleted
    ON CONFLICT (store_id, source_order_id) DO UPDATE SET {_updates(ORDER_COLUMNS, ("store_id", "source_order_id"))},
        synced_at = clock_timestamp()
    WHERE o.version <= EXCLUDED.version
    RETURNING o.store_id, o.source_order_id
)
INSERT INTO applied_orders SELECT store_id, source_order_id FROM applied
"""

# A deleted order's record carries only identity and version: keep the rest of the row as it was.
MARK_DELETED = """
UPDATE orders o SET deleted = true, version = s.version, synced_at = clock_timestamp()
FROM stage_orders s
WHERE s.deleted AND o.store_id = s.store_id AND o.source_order_id = s.source_order_id AND o.version <= s.version
"""

# A delete of an order not (yet) in PostgreSQL leaves a tombstone row: deleted, with its version, so a
# live version that arrives later (another path through the processor, a replay) is older and does not
# bring the order back. A restore in the shop is a newer version and does.
INSERT_TOMBSTONES = f"""
INSERT INTO orders ({_cols(ORDER_COLUMNS)})
SELECT {_cols(ORDER_COLUMNS)} FROM stage_orders WHERE deleted
ON CONFLICT (store_id, source_order_id) DO NOTHING
"""

# Only orders that existed before the batch can have items to replace (a backfill has none).
REPLACE_ITEMS_DELETE = """
DELETE FROM order_items i USING applied_orders a JOIN existing_orders e USING (store_id, source_order_id)
WHERE i.store_id = a.store_id AND i.source_order_id = a.source_order_id
"""
REPLACE_ITEMS_INSERT = f"""
INSERT INTO order_items ({_cols(ITEM_COLUMNS)})
SELECT {_cols(ITEM_COLUMNS, "si.")} FROM stage_items si JOIN applied_orders a USING (store_id, source_order_id)
"""

FIND_CONTACTS_OF_PURGED = """
INSERT INTO recompute_contacts
SELECT contact_id FROM orders
WHERE contact_id IS NOT NULL AND (store_id, source_order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""

PURGE_ORDERS = """
WITH gone AS (
    DELETE FROM orders WHERE (store_id, source_order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
    RETURNING store_id, source_order_id
)
DELETE FROM order_items i USING gone g WHERE i.store_id = g.store_id AND i.source_order_id = g.source_order_id
"""

UPSERT_ACTIVITY = f"""
INSERT INTO activity AS a ({_cols(ACTIVITY_COLUMNS)})
SELECT {_cols(ACTIVITY_COLUMNS)} FROM stage_activity
ON CONFLICT (event_id) DO UPDATE SET contact_id = EXCLUDED.contact_id
WHERE a.contact_id IS DISTINCT FROM EXCLUDED.contact_id
"""

UPSERT_CONTACTS = f"""
INSERT INTO contacts AS c ({_cols(CONTACT_COLUMNS)})
SELECT {_cols(CONTACT_COLUMNS)} FROM stage_contacts
ON CONFLICT (contact_id) DO UPDATE SET {_updates(CONTACT_COLUMNS, ("contact_id", "list_id", "email"))}
WHERE c.version <= EXCLUDED.version
"""

PURGE_CONTACTS = "DELETE FROM contacts WHERE (list_id, email) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"

# Per-contact summaries of live orders, kept in the batch's transaction: recomputed from the orders for
# the contacts a batch touched ({scope} = _contacts_in(...)), or for everyone (ALL_CONTACTS: what they must
# equal at any time, used by tests, the benchmarks' loaders and the migrations' backfills).
ALL_CONTACTS = "contact_id IS NOT NULL"


def _contacts_in(table: str) -> str:
    # ANY(ARRAY(...)) rather than IN (SELECT ...): the planner, knowing nothing of the temporary table,
    # then plans index lookups per contact, as for an array parameter, instead of hashing all orders.
    return f"contact_id = ANY(ARRAY(SELECT contact_id FROM {table}))"


# One row per contact and currency; the columns of contact_order_stats, in order.
_STATS_AGGREGATES = """contact_id, currency,
       count(*),
       count(*) FILTER (WHERE status = 'COMPLETED'),
       coalesce(sum(net_total) FILTER (WHERE status <> 'CANCELED'), 0),
       round(coalesce(sum(net_total) FILTER (WHERE status <> 'CANCELED')
                      / nullif(count(*) FILTER (WHERE status <> 'CANCELED'), 0), 0), 6),
       min(created_at),
       max(created_at),
       count(*) FILTER (WHERE status <> 'CANCELED'),
       min(list_id)"""  # a contact belongs to one list
STATS_SELECT = f"""
SELECT {_STATS_AGGREGATES}
FROM orders
WHERE {{scope}} AND NOT deleted
GROUP BY contact_id, currency
"""

CATEGORIES_SELECT = """
SELECT o.contact_id, c.category, count(DISTINCT (o.store_id, o.source_order_id))
FROM orders o
JOIN order_items i USING (store_id, source_order_id)
CROSS JOIN LATERAL unnest(i.categories) AS c(category)
WHERE o.{scope} AND NOT o.deleted AND o.status <> 'CANCELED'
GROUP BY o.contact_id, c.category
"""

# The last COMPLETED order and the oldest open (PENDING, CREATED) order placed after it.
CHECKOUT_SELECT = """
SELECT contact_id, last_done,
       min(created_at) FILTER (WHERE status IN ('PENDING', 'CREATED') AND (last_done IS NULL OR created_at > last_done))
FROM (
    SELECT contact_id, status, created_at,
           max(created_at) FILTER (WHERE status = 'COMPLETED') OVER (PARTITION BY contact_id) AS last_done
    FROM orders
    WHERE {scope} AND NOT deleted
) o
GROUP BY contact_id, last_done
"""

SUMMARIES = {  # table → its SELECT
    "contact_order_stats": STATS_SELECT,
    "contact_categories": CATEGORIES_SELECT,
    "contact_checkout": CHECKOUT_SELECT,
}


def _recompute(table: str, contacts: str) -> tuple[str, str]:
    scope = _contacts_in(contacts)
    return f"DELETE FROM {table} WHERE {scope}", f"INSERT INTO {table} {SUMMARIES[table].format(scope=scope)}"


RECOMPUTE = [_recompute(table, "recompute_contacts") for table in SUMMARIES]  # (delete, insert) pairs
# The checkout summary depends on the order of events (a newer COMPLETED order resets it): it is
# recomputed for the contacts that only gained new orders too.
RECOMPUTE_CHECKOUT_OF_ADDED = _recompute("contact_checkout", "added_contacts")

# Adding a batch's new orders (FIND_NEW_ORDERS) to the summaries of contacts that nothing else in the
# batch touched. Sums stay exact (numeric), so the result equals a recomputation (the tests check that).
_NEW = "stage_orders n JOIN new_orders USING (store_id, source_order_id)"
ADD_NEW_TO_STATS = f"""
INSERT INTO contact_order_stats AS s
SELECT {_STATS_AGGREGATES}
FROM {_NEW}
WHERE n.{_contacts_in("added_contacts")}
GROUP BY contact_id, currency
ON CONFLICT (contact_id, currency) DO UPDATE SET
    order_count = s.order_count + EXCLUDED.order_count,
    completed_count = s.completed_count + EXCLUDED.completed_count,
    spent = s.spent + EXCLUDED.spent,
    priced_orders = s.priced_orders + EXCLUDED.priced_orders,
    average_order_value = round(coalesce((s.spent + EXCLUDED.spent)
                                         / nullif(s.priced_orders + EXCLUDED.priced_orders, 0), 0), 6),
    first_order_at = least(s.first_order_at, EXCLUDED.first_order_at),
    last_order_at = greatest(s.last_order_at, EXCLUDED.last_order_at)
"""
ADD_NEW_TO_CATEGORIES = f"""
INSERT INTO contact_categories AS cc
SELECT n.contact_id, c.category, count(DISTINCT (n.store_id, n.source_order_id))
FROM {_NEW}
JOIN stage_items i USING (store_id, source_order_id)
CROSS JOIN LATERAL unnest(i.categories) AS c(category)
WHERE n.{_contacts_in("added_contacts")} AND n.status <> 'CANCELED'
GROUP BY n.contact_id, c.category
ON CONFLICT (contact_id, category) DO UPDATE SET orders = cc.orders + EXCLUDED.orders
"""

# A batch's summary work, in order, once its orders are applied and recompute_contacts is complete.
MAINTAIN_SUMMARIES = (
    *(statement for pair in RECOMPUTE for statement in pair),
    FIND_ADDED_CONTACTS,
    ADD_NEW_TO_STATS,
    ADD_NEW_TO_CATEGORIES,
    *RECOMPUTE_CHECKOUT_OF_ADDED,
)


def from_scratch(table: str) -> str:
    return SUMMARIES[table].format(scope=ALL_CONTACTS)


LOAD_OFFSETS = "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s"
# Offsets only move forward: a batch that reaches PostgreSQL late (a writer from before a rebalance)
# never moves a partition back to events already written.
SAVE_OFFSET = """
INSERT INTO sink_offsets (consumer, topic, partition, next_offset) VALUES (%s, %s, %s, %s)
ON CONFLICT (consumer, topic, partition)
DO UPDATE SET next_offset = GREATEST(sink_offsets.next_offset, EXCLUDED.next_offset)
"""
# A sink per consumer name and database (sinks/ordersync/sinks/migrations/011_sink_owners.sql): a session lock refuses a
# second one at start; the generation fences a sink that lost the lock without noticing.
SINK_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('ordersync sink ' || %s, 0))"
CLAIM_SINK = """
INSERT INTO sink_owners (consumer, generation) VALUES (%s, 1)
ON CONFLICT (consumer) DO UPDATE SET generation = sink_owners.generation + 1
RETURNING generation
"""
CHECK_SINK_OWNER = "SELECT generation FROM sink_owners WHERE consumer = %s FOR UPDATE"

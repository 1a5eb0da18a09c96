"""Insights' day summaries (migration 009): the days the sink marked stale, recomputed.

The refresher (ordersync.segmentation.refresher) takes every stale day; a page takes the few that changed
since (usually today) before it reads, and says how many are still waiting when there are more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

HORIZON_DAYS = 400  # Insights look back at most 366 days: older days are never read
IN_REQUEST_DAYS = 7  # a page recomputes at most this many stale days itself

# One refresher at a time; another page meanwhile reads the summaries as they are.
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('ordersync.insight_days'))"
CLAIM_STALE_DAYS = """
CREATE TEMP TABLE IF NOT EXISTS refreshing_days (day date) ON COMMIT DELETE ROWS;
WITH claimed AS (DELETE FROM insight_stale_days RETURNING day) INSERT INTO refreshing_days SELECT day FROM claimed
"""
PENDING = "SELECT count(*) FROM insight_stale_days"
FORGET_DAYS = (  # the claimed days' rows, and every day past the horizon
    "DELETE FROM insight_days WHERE day IN (SELECT day FROM refreshing_days) OR day < %(horizon)s",
    "DELETE FROM insight_day_items WHERE day IN (SELECT day FROM refreshing_days) OR day < %(horizon)s",
    "DELETE FROM insight_month_items WHERE month < date_trunc('month', %(horizon)s::date)",
    "DELETE FROM refreshing_days WHERE day < %(horizon)s",
)
# Orders of the claimed days, read by day through the created_at index. A contact's first order is the
# one created at its first_order_at (contact_order_stats, over all currencies).
_DAY_ORDERS = """
FROM refreshing_days r
JOIN orders o ON o.created_at >= (r.day::timestamp AT TIME ZONE 'UTC')
             AND o.created_at < ((r.day + 1)::timestamp AT TIME ZONE 'UTC') AND NOT o.deleted
"""
RECOMPUTE_DAYS = f"""
INSERT INTO insight_days
SELECT r.day, o.store_id, o.list_id, o.currency, o.status, count(*), sum(o.net_total),
       count(*) FILTER (WHERE o.created_at = (SELECT min(s.first_order_at) FROM contact_order_stats s
                                              WHERE s.contact_id = o.contact_id))
{_DAY_ORDERS}
GROUP BY 1, 2, 3, 4, 5
"""
RECOMPUTE_ITEMS = f"""
INSERT INTO insight_day_items
SELECT r.day, o.store_id, o.list_id, o.currency, 'product', i.name, sum(i.quantity), sum(i.total)
{_DAY_ORDERS} AND o.status <> 'CANCELED'
JOIN order_items i USING (store_id, source_order_id)
GROUP BY 1, 2, 3, 4, 6
UNION ALL
SELECT r.day, o.store_id, o.list_id, o.currency, 'category', c.category, sum(i.quantity), sum(i.total)
{_DAY_ORDERS} AND o.status <> 'CANCELED'
JOIN order_items i USING (store_id, source_order_id)
CROSS JOIN LATERAL unnest(i.categories) AS c(category)
GROUP BY 1, 2, 3, 4, 6
"""
RECOMPUTE_MONTHS = """
CREATE TEMP TABLE IF NOT EXISTS refreshing_months (month date) ON COMMIT DELETE ROWS;
INSERT INTO refreshing_months SELECT DISTINCT date_trunc('month', day)::date FROM refreshing_days;
DELETE FROM insight_month_items WHERE month IN (SELECT month FROM refreshing_months);
INSERT INTO insight_month_items
SELECT m.month, store_id, list_id, currency, kind, name, sum(quantity), sum(revenue)
FROM refreshing_months m
JOIN insight_day_items d ON d.day >= m.month AND d.day < (m.month + interval '1 month')
GROUP BY 1, 2, 3, 4, 5, 6
"""


def pending(conn: psycopg.Connection[Any]) -> int:
    """Days the sink changed that are not summarised yet."""
    row = conn.execute(PENDING).fetchone()
    return int(row[0]) if row else 0


def refresh(conn: psycopg.Connection[Any], today: dt.date | None = None, at_most: int | None = None) -> int:
    """Recompute the stale days, unless another refresher is at it or there are more than ``at_most``;
    how many stale days were taken (those past the horizon are forgotten, not recomputed)."""
    horizon = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=HORIZON_DAYS)
    with conn.transaction():
        locked = conn.execute(TRY_LOCK).fetchone()
        if not locked or not locked[0] or (at_most is not None and pending(conn) > at_most):
            return 0
        conn.execute(CLAIM_STALE_DAYS)
        claimed = conn.execute("SELECT count(*) FROM refreshing_days").fetchone()
        if not claimed or not claimed[0]:
            return 0
        for statement in FORGET_DAYS:
            conn.execute(statement, {"horizon": horizon})
        conn.execute(RECOMPUTE_DAYS)
        conn.execute(RECOMPUTE_ITEMS)
        conn.execute(RECOMPUTE_MONTHS)
        return int(claimed[0])  # claimed: the days past the horizon were only forgotten

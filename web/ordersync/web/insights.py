"""Insights from per-day summaries (migration 009): recompute the days the sink marked stale, then read.

A page recomputes the few days that changed since the last refresh (usually today) before it reads. A
larger backlog (after a backfill or a replay) is left to the app's background refresher, and the page
says how many days are still being summarised instead of making the reader wait.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]
Lists = tuple[str, ...] | None

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

_SCOPE = """day >= %(since)s AND (%(store)s::text IS NULL OR store_id = %(store)s)
  AND (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))"""
REVENUE = f"""
SELECT date_trunc(%(unit)s, day::timestamp) AS period, currency, sum(orders)::int AS orders, sum(net_revenue) AS revenue
FROM insight_days
WHERE status <> 'CANCELED' AND {_SCOPE}
GROUP BY 1, 2
ORDER BY 1, 2
"""
BY_STATUS = f"SELECT status, sum(orders)::int AS orders FROM insight_days WHERE {_SCOPE} GROUP BY status"
CUSTOMERS = f"""
SELECT date_trunc(%(unit)s, day::timestamp) AS period, sum(first_orders)::int AS new,
       (sum(orders) - sum(first_orders))::int AS returning
FROM insight_days
WHERE {_SCOPE}
GROUP BY 1
ORDER BY 1
"""
_STORE_AND_LISTS = """(%(store)s::text IS NULL OR store_id = %(store)s)
  AND (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))"""
# Whole months from the monthly rows, the days of the partial first month from the daily ones.
TOP_ITEMS = f"""
SELECT name, currency, sum(quantity) AS quantity, sum(revenue) AS revenue
FROM (
    SELECT name, currency, quantity, revenue FROM insight_month_items
    WHERE kind = %(kind)s AND month >= %(whole_months_from)s AND {_STORE_AND_LISTS}
    UNION ALL
    SELECT name, currency, quantity, revenue FROM insight_day_items
    WHERE kind = %(kind)s AND day >= %(since)s AND day < %(whole_months_from)s AND {_STORE_AND_LISTS}
) items
GROUP BY name, currency
ORDER BY revenue DESC, name
LIMIT 10
"""
# The stores with orders in the lists (of the last 400 days, from the small summary).
STORES = """
SELECT DISTINCT store_id FROM insight_days WHERE (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))
ORDER BY store_id
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


def _rows(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def stores(conn: psycopg.Connection[Any], lists: Lists) -> list[str]:
    """Stores that sold to the lists (all stores: ``lists`` None)."""
    return [row["store_id"] for row in _rows(conn, STORES, {"lists": list(lists) if lists is not None else None})]


def whole_months_from(since: dt.date) -> dt.date:
    """The first day of the first month that lies wholly after ``since`` (``since`` itself on a 1st)."""
    if since.day == 1:
        return since
    return (since.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def load(conn: psycopg.Connection[Any], unit: str, since: dt.date, store: str | None, lists: Lists) -> dict[str, Any]:
    """Everything the Insights page shows, for days from ``since`` (UTC), a store (or all), the lists."""
    refresh(conn, at_most=IN_REQUEST_DAYS)
    scope = {"unit": unit, "since": since, "store": store, "lists": list(lists) if lists is not None else None,
             "whole_months_from": whole_months_from(since)}  # fmt: skip
    return {
        "pending": pending(conn),
        "revenue": _rows(conn, REVENUE, scope),
        "statuses": _rows(conn, BY_STATUS, scope),
        "customers": _rows(conn, CUSTOMERS, scope),
        "products": _rows(conn, TOP_ITEMS, {**scope, "kind": "product"}),
        "categories": _rows(conn, TOP_ITEMS, {**scope, "kind": "category"}),
        "stores": stores(conn, lists),
    }

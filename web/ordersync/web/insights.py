"""Insights from per-day summaries (migration 009): recompute the days the sink marked stale, then read.

A page recomputes the few days that changed since the last refresh (usually today) before it reads. A
larger backlog (after a backfill or a replay) is left to the refresher that ``ordersync run`` supervises
(ordersync.segmentation.refresher), and the page says how many days are still being summarised instead of
making the reader wait.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ordersync.segmentation.insight_days import IN_REQUEST_DAYS, pending, refresh

Row = dict[str, Any]
Lists = tuple[str, ...] | None

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

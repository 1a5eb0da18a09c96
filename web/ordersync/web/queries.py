"""The SQL behind each page (explicit, parameterised) and the small functions that run it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

PAGE_SIZE = 25

SEARCH_CONTACTS = """
SELECT c.contact_id, c.list_id, c.email, c.first_name, c.last_name,
       coalesce(sum(s.order_count), 0) AS orders
FROM contacts c LEFT JOIN contact_order_stats s USING (contact_id)
WHERE (%(list)s::text IS NULL OR c.list_id = %(list)s)
  AND (%(lists)s::text[] IS NULL OR c.list_id = ANY(%(lists)s))
  AND (%(q)s::text IS NULL
       OR c.email LIKE %(prefix)s
       OR lower(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) LIKE %(anywhere)s)
GROUP BY c.contact_id
ORDER BY c.email
LIMIT %(limit)s
"""
LISTS = "SELECT DISTINCT list_id FROM contacts ORDER BY list_id"
CONTACT = "SELECT * FROM contacts WHERE contact_id = %s"
STATS = "SELECT * FROM contact_order_stats WHERE contact_id = %s ORDER BY currency"
CONTACT_ORDERS = """
SELECT store_id, source_order_id, order_number, status, store_status, store_status_label, currency,
       total, refunded_total, net_total, created_at, deleted
FROM orders WHERE contact_id = %s
ORDER BY created_at DESC, store_id, source_order_id
LIMIT %s OFFSET %s
"""
# The contact's timeline: what happened to its orders, the automations they triggered, and the campaign
# touches it received (type CAMPAIGN_SEND, CAMPAIGN_OPEN, ...; the campaign's name in ``rule``), and the
# changes of its marketing consent (CONSENT_GIVEN, CONSENT_WITHDRAWN; where it was stated in ``rule``).
CONTACT_ACTIVITY = """
SELECT type, order_key, store_id, source_order_id, occurred_at, from_status, to_status, from_store_status,
       to_store_status, currency, total, changed_fields, version, NULL AS rule, false AS is_trigger
FROM activity WHERE contact_id = %(contact)s
UNION ALL
SELECT kind, order_key, store_id, source_order_id, fired_at, NULL, NULL, NULL, NULL, currency, total, '{}', 0, rule,
       true
FROM triggers WHERE contact_id = %(contact)s
UNION ALL
SELECT 'CAMPAIGN_' || type, NULL, NULL, NULL, occurred_at, NULL, NULL, NULL, NULL, NULL, NULL,
       ARRAY[CASE WHEN holdout THEN 'holdout' WHEN machine THEN 'machine' ELSE '' END], 0,
       coalesce(campaign_name, campaign_id), false
FROM campaign_events WHERE contact_id = %(contact)s
UNION ALL
SELECT CASE WHEN (s->>'consent')::boolean THEN 'CONSENT_GIVEN' ELSE 'CONSENT_WITHDRAWN' END, NULL, NULL, NULL,
       (s->>'at')::timestamptz, NULL, NULL, NULL, NULL, NULL, NULL, '{}', 0, s->>'source', false
FROM contacts c CROSS JOIN LATERAL jsonb_array_elements(c.consent_history) s WHERE c.contact_id = %(contact)s
ORDER BY occurred_at DESC, version DESC, type
LIMIT %(limit)s OFFSET %(offset)s
"""
# The Automations page: triggers per day and kind, the latest ones, each destination's delivery health.
TRIGGERS_PER_DAY = """
SELECT (fired_at AT TIME ZONE 'UTC')::date AS day, kind, count(*) AS fired
FROM triggers
WHERE fired_at >= %(since)s AND (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))
GROUP BY 1, 2 ORDER BY 1 DESC, 2
"""
# Marketing triggers withheld for lack of consent, per kind, since a time.
SUPPRESSED_PER_KIND = """
SELECT kind, count(*) AS withheld FROM suppressed_triggers
WHERE fired_at >= %(since)s AND (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))
GROUP BY 1 ORDER BY 1
"""
LATEST_TRIGGERS = """
SELECT t.trigger_id, t.kind, t.list_id, t.contact_id, c.email, t.order_key, t.store_id, t.source_order_id,
       t.currency, t.total, t.rule, t.fired_at
FROM triggers t LEFT JOIN contacts c USING (contact_id)
WHERE (%(lists)s::text[] IS NULL OR t.list_id = ANY(%(lists)s))
ORDER BY t.fired_at DESC, t.trigger_id
LIMIT %(limit)s
"""
DESTINATIONS = "SELECT * FROM trigger_destinations ORDER BY name"
ORDER = "SELECT * FROM orders WHERE store_id = %s AND source_order_id = %s"
ORDER_ITEMS = "SELECT * FROM order_items WHERE store_id = %s AND source_order_id = %s ORDER BY item_id"
ORDER_ACTIVITY = """
SELECT * FROM activity WHERE store_id = %s AND source_order_id = %s
ORDER BY occurred_at DESC, version DESC, type
"""

Row = dict[str, Any]
Lists = tuple[str, ...] | None  # the lists a reader may see; None: all


def _array(lists: Lists) -> list[str] | None:
    return list(lists) if lists is not None else None


def _rows(conn: psycopg.Connection[Any], query: str, params: Any) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def search_contacts(
    conn: psycopg.Connection[Any], q: str | None, list_id: str | None, lists: Lists, limit: int = 50
) -> list[Row]:
    """Contacts whose e-mail starts with, or whose name contains, ``q``; in ``list_id`` and ``lists``."""
    text = q.strip().lower() if q and q.strip() else None
    like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if text else None
    params = {"q": text, "prefix": f"{like}%", "anywhere": f"%{like}%", "list": list_id or None, "limit": limit,
              "lists": _array(lists)}  # fmt: skip
    return _rows(conn, SEARCH_CONTACTS, params)


def lists(conn: psycopg.Connection[Any], scope: Lists) -> list[str]:
    return [row["list_id"] for row in _rows(conn, LISTS, ()) if scope is None or row["list_id"] in scope]


def contact(conn: psycopg.Connection[Any], contact_id: str) -> Row | None:
    found = _rows(conn, CONTACT, (contact_id,))
    return found[0] if found else None


def stats(conn: psycopg.Connection[Any], contact_id: str) -> list[Row]:
    return _rows(conn, STATS, (contact_id,))


def contact_orders(conn: psycopg.Connection[Any], contact_id: str, page: int) -> list[Row]:
    return _rows(conn, CONTACT_ORDERS, (contact_id, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE))


def contact_activity(conn: psycopg.Connection[Any], contact_id: str, page: int) -> list[Row]:
    return _rows(
        conn, CONTACT_ACTIVITY, {"contact": contact_id, "limit": PAGE_SIZE + 1, "offset": (page - 1) * PAGE_SIZE}
    )


def triggers_per_day(conn: psycopg.Connection[Any], since: Any, scope: Lists) -> list[Row]:
    return _rows(conn, TRIGGERS_PER_DAY, {"since": since, "lists": _array(scope)})


def suppressed_per_kind(conn: psycopg.Connection[Any], since: Any, scope: Lists) -> dict[str, int]:
    return {
        r["kind"]: r["withheld"] for r in _rows(conn, SUPPRESSED_PER_KIND, {"since": since, "lists": _array(scope)})
    }


def latest_triggers(conn: psycopg.Connection[Any], scope: Lists, limit: int = 50) -> list[Row]:
    return _rows(conn, LATEST_TRIGGERS, {"lists": _array(scope), "limit": limit})


def destinations(conn: psycopg.Connection[Any]) -> list[Row]:
    return _rows(conn, DESTINATIONS, ())


def order(conn: psycopg.Connection[Any], store_id: str, source_order_id: str) -> Row | None:
    found = _rows(conn, ORDER, (store_id, source_order_id))
    return found[0] if found else None


def order_items(conn: psycopg.Connection[Any], store_id: str, source_order_id: str) -> list[Row]:
    return _rows(conn, ORDER_ITEMS, (store_id, source_order_id))


def order_activity(conn: psycopg.Connection[Any], store_id: str, source_order_id: str) -> list[Row]:
    return _rows(conn, ORDER_ACTIVITY, (store_id, source_order_id))

"""A contact's page: the contact, their Orders (with items) and their Activity timeline, newest first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ordersync.schemas import consent

CONTACT = "SELECT * FROM contacts WHERE list_id = %s AND email = %s"
ORDERS = """
SELECT o.*, coalesce(json_agg(json_build_object(
           'name', i.name, 'sku', i.sku, 'product_id', i.product_id, 'quantity', i.quantity,
           'unit_price', i.unit_price::text, 'total', i.total::text, 'categories', i.categories)
         ORDER BY i.item_id) FILTER (WHERE i.item_id IS NOT NULL), '[]') AS items
FROM orders o LEFT JOIN order_items i USING (store_id, source_order_id)
WHERE o.contact_id = %s
GROUP BY o.store_id, o.source_order_id
ORDER BY o.created_at DESC
"""
ACTIVITY = "SELECT * FROM activity WHERE contact_id = %s ORDER BY occurred_at DESC, version DESC, type"
STATS = "SELECT * FROM contact_order_stats WHERE contact_id = %s ORDER BY currency"
CONSENT_WORDS = {True: "given", False: "withdrawn", None: "unknown"}


def load(conn: psycopg.Connection[Any], list_id: str, email: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        contact = cur.execute(CONTACT, (list_id, email.strip().lower())).fetchone()
        if contact is None:
            return None
        cid = contact["contact_id"]
        return {
            "contact": contact,
            "stats": cur.execute(STATS, (cid,)).fetchall(),
            "orders": cur.execute(ORDERS, (cid,)).fetchall(),
            "activity": cur.execute(ACTIVITY, (cid,)).fetchall(),
        }


def render_text(view: dict[str, Any], max_orders: int | None = None, max_activity: int | None = None) -> str:
    c = view["contact"]
    name = " ".join(x for x in (c["first_name"], c["last_name"]) if x) or "(no name)"
    lines = [f"{name} <{c['email']}>  list {c['list_id']}  id {c['contact_id']}  origin {c['origin']}"]
    history = c.get("consent_history") or []
    stated = f" ({consent.describe(history[-1]['source'])}, since {history[-1]['at'][:10]})" if history else ""
    lines.append(f"  marketing consent: {CONSENT_WORDS[c['marketing_consent']]}{stated}")
    for s in view["stats"]:
        lines.append(
            f"  {s['currency']}: {s['order_count']} orders, {s['completed_count']} completed, spent {s['spent']:.2f},"
            f" average {s['average_order_value']:.2f}, first {s['first_order_at']:%Y-%m-%d}, last {s['last_order_at']:%Y-%m-%d}"
        )
    lines.append("")
    lines.append(f"Orders ({len(view['orders'])})")
    for o in view["orders"][:max_orders]:
        flag = " [deleted]" if o["deleted"] else ""
        lines.append(
            f"  {o['created_at']:%Y-%m-%d %H:%M} UTC  {o['store_id']} #{o['order_number'] or o['source_order_id']}"
            f"  {o['status']:<9} ({o['store_status_label'] or o['store_status']})  {o['total']:.2f} {o['currency']}"
            f"  net {o['net_total']:.2f}{flag}"
        )
        for item in o["items"]:
            cats = ", ".join(item["categories"])
            lines.append(f"      {item['quantity']} x {item['name']}  {item['total']}  [{cats}]")
    if max_orders is not None and len(view["orders"]) > max_orders:
        lines.append(f"  … {len(view['orders']) - max_orders} older orders")
    lines.append("")
    changes = [
        {
            "type": "CONSENT_GIVEN" if s["consent"] else "CONSENT_WITHDRAWN",
            "occurred_at": dt.datetime.fromisoformat(s["at"]).astimezone(dt.UTC),
            "source": s["source"],
        }
        for s in history
    ]
    timeline = sorted([*view["activity"], *changes], key=lambda a: a["occurred_at"], reverse=True)
    lines.append(f"Activity ({len(timeline)})")
    for a in timeline[:max_activity]:
        if a["type"].startswith("CONSENT_"):
            lines.append(f"  {a['occurred_at']:%Y-%m-%d %H:%M} UTC  {a['type']:<21} {consent.describe(a['source'])}")
            continue
        detail = ""
        if a["type"] == "ORDER_STATUS_CHANGED":
            detail = f"{a['from_status']} → {a['to_status']} ({a['from_store_status']} → {a['to_store_status']})"
        elif a["type"] == "ORDER_UPDATED":
            detail = "changed: " + ", ".join(a["changed_fields"])
        elif a["type"] == "ORDER_CREATED":
            detail = f"{a['to_status']}, {a['total']:.2f} {a['currency']}"
        lines.append(f"  {a['occurred_at']:%Y-%m-%d %H:%M} UTC  {a['type']:<21} {a['order_key']}  {detail}")
    return "\n".join(lines)

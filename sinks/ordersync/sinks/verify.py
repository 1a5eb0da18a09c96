"""Comparing two databases built by ordersync (live and replayed): counts and checksums per table.

Everything an order produces is deterministic (ids, versions, statuses, amounts, event ids), so those
tables must match row for row. Contacts are compared by identity only (id, list, e-mail): which source
first created a contact, and so its origin, names and version, depends on the interleaving of customer
and order events, which two runs need not share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from ordersync.sinks.rows import ATTRIBUTION_COLUMNS, ORDER_COLUMNS

COMPARED: dict[str, tuple[str, str]] = {
    # table: (columns, order)
    "orders": (", ".join(ORDER_COLUMNS), "store_id, source_order_id"),  # not synced_at: when, not what
    "order_items": ("*", "store_id, source_order_id, item_id"),
    "activity": ("*", "event_id"),
    "contact_order_stats": ("*", "contact_id, currency"),
    "contact_categories": ("*", "contact_id, category"),
    "contact_checkout": ("*", "contact_id"),
    "contacts": ("contact_id, list_id, email", "contact_id"),
    "campaign_events": ("*", "list_id, event_id"),
    # not historical: a replay's orders are all history, so its credits are too (how, not what)
    "attributions": (", ".join(c for c in ATTRIBUTION_COLUMNS if c != "historical"), "store_id, source_order_id"),
}


@dataclass(frozen=True)
class TableComparison:
    table: str
    live_count: int
    rebuilt_count: int
    live_checksum: str
    rebuilt_checksum: str

    @property
    def equal(self) -> bool:
        return self.live_count == self.rebuilt_count and self.live_checksum == self.rebuilt_checksum


def _summary(conn: psycopg.Connection[Any], table: str) -> tuple[int, str]:
    columns, order = COMPARED[table]
    row = conn.execute(
        f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {order})), '') FROM (SELECT {columns} FROM {table}) t"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def compare(live_url: str, rebuilt_url: str) -> list[TableComparison]:
    out = []
    with psycopg.connect(live_url) as live, psycopg.connect(rebuilt_url) as rebuilt:
        for table in COMPARED:
            lc, lsum = _summary(live, table)
            rc, rsum = _summary(rebuilt, table)
            out.append(TableComparison(table, lc, rc, lsum, rsum))
    return out

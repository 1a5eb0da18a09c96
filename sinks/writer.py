"""One batch → one PostgreSQL transaction: rows, statistics and consumed offsets together.

Because the offsets commit with the rows, a sink killed at any moment resumes exactly after the last
batch that landed: nothing lost, nothing applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from sinks import statements as q
from sinks.rows import activity_row, contact_row, item_rows, latest_by, order_row


@dataclass
class Batch:
    orders: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    purged_orders: list[tuple[str, str]] = field(default_factory=list)  # (store_id, source_order_id)
    purged_contacts: list[tuple[str, str]] = field(default_factory=list)  # (list_id, email)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) → next offset
    messages: int = 0

    def __len__(self) -> int:
        return self.messages


@dataclass(frozen=True)
class WriteResult:
    orders: int
    activities: int
    contacts: int


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Per-connection staging tables (temporary, emptied at every commit)."""
    with conn.transaction():
        conn.execute(q.CREATE_STAGING)


def write_batch(conn: psycopg.Connection[Any], batch: Batch, consumer: str) -> WriteResult:
    # Live versions and deletes are staged separately: a batch can hold an order's last live version
    # and, later, its delete; the upsert applies the first, then the delete marks it.
    key = lambda o: (o["store_id"], o["source_order_id"])  # noqa: E731
    orders = latest_by((o for o in batch.orders if not o["deleted"]), key) + latest_by(
        (o for o in batch.orders if o["deleted"]), key
    )
    contacts = latest_by(batch.contacts, lambda c: c["contact_id"])
    activities = list({a["event_id"]: a for a in batch.activities}.values())
    with conn.transaction(), conn.cursor() as cur:
        if contacts:
            _copy(cur, q.COPY_CONTACTS, (contact_row(c) for c in contacts))
            cur.execute(q.UPSERT_CONTACTS)
        if batch.purged_contacts:
            lists, emails = zip(*batch.purged_contacts, strict=True)
            cur.execute(q.PURGE_CONTACTS, (list(lists), list(emails)))
        recompute: set[Any] = set()  # contacts whose summaries are rebuilt from their orders
        add_new: set[Any] = set()  # contacts that only gained new orders: those are added to their summaries
        if orders:
            _copy(cur, q.COPY_ORDERS, (order_row(o) for o in orders))
            _copy(cur, q.COPY_ITEMS, (row for o in orders if not o["deleted"] for row in item_rows(o)))
            cur.execute(q.ANALYZE_STAGED_ORDERS)
            cur.execute(q.FIND_EXISTING_ORDERS)
            cur.execute(q.FIND_NEW_ORDERS)
            recompute |= {row[0] for row in cur.execute(q.CONTACTS_OF_EXISTING)}
            add_new |= {row[0] for row in cur.execute(q.CONTACTS_OF_NEW)}
            cur.execute(q.UPSERT_ORDERS)
            cur.execute(q.ANALYZE_APPLIED_ORDERS)
            cur.execute(q.MARK_DELETED)
            cur.execute(q.REPLACE_ITEMS_DELETE)
            cur.execute(q.REPLACE_ITEMS_INSERT)
        if batch.purged_orders:
            stores, ids = zip(*batch.purged_orders, strict=True)
            recompute |= {row[0] for row in cur.execute(q.CONTACTS_OF_ORDERS, (list(stores), list(ids)))}
            cur.execute(q.PURGE_ORDERS, (list(stores), list(ids)))
        add_new -= recompute  # a recomputation reads the new orders too
        if recompute:
            _recompute(cur, q.SUMMARIES, list(recompute))
        if add_new:
            cur.execute(q.ADD_NEW_TO_STATS, (list(add_new),))
            cur.execute(q.ADD_NEW_TO_CATEGORIES, (list(add_new),))
            _recompute(cur, ["contact_checkout"], list(add_new))
        if activities:
            _copy(cur, q.COPY_ACTIVITY, (activity_row(a) for a in activities))
            cur.execute(q.UPSERT_ACTIVITY)
        if batch.offsets:
            cur.executemany(q.SAVE_OFFSET, [(consumer, t, p, o) for (t, p), o in batch.offsets.items()])
    return WriteResult(len(orders), len(activities), len(contacts))


def _recompute(cur: psycopg.Cursor[Any], tables: Iterable[str], contacts: list[Any]) -> None:
    """Rebuild these summaries of these contacts from their orders."""
    for table in tables:
        delete, insert = q.RECOMPUTE[table]
        cur.execute(delete, (contacts,))
        cur.execute(insert, (contacts,))


def _copy(cur: psycopg.Cursor[Any], statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def stored_offsets(conn: psycopg.Connection[Any], consumer: str) -> dict[tuple[str, int], int]:
    return {(t, p): o for t, p, o in conn.execute(q.LOAD_OFFSETS, (consumer,))}

"""One batch → one PostgreSQL transaction: rows, statistics and consumed offsets together.

Because the offsets commit with the rows, a sink killed at any moment resumes exactly after the last
batch that landed: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg.copy import Copy, FileWriter

from ordersync.schemas.records import Activity, Attribution, CampaignEvent, Contact, Order, Trigger
from ordersync.sinks import statements as q
from ordersync.sinks.rows import (
    activity_row,
    attribution_row,
    campaign_event_row,
    contact_row,
    item_rows,
    latest_by,
    order_row,
    trigger_row,
    without_nul,
)


@dataclass
class Batch:
    orders: list[Order] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    suppressed_triggers: list[Trigger] = field(default_factory=list)  # withheld for lack of consent
    campaign_events: list[CampaignEvent] = field(default_factory=list)
    attributions: list[Attribution] = field(default_factory=list)
    purged_orders: list[tuple[str, str]] = field(default_factory=list)  # (store_id, source_order_id)
    purged_contacts: list[tuple[str, str]] = field(default_factory=list)  # (list_id, email)
    # Orders credited to nothing any more, by order key (a record after its tombstone takes it out again).
    unattributed: set[str] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) → next offset
    messages: int = 0


@dataclass(frozen=True)
class WriteResult:
    orders: int
    activities: int
    contacts: int


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Per-connection staging tables (temporary, emptied at every commit)."""
    with conn.transaction():
        conn.execute(q.CREATE_STAGING)


@dataclass(frozen=True)
class Staged:
    """A batch made ready for PostgreSQL: one version per key, its rows as COPY data (text format) per
    staging table. Only bytes, strings and numbers: it is built where the batch was decoded and sent to
    the writer process, which then spends its time waiting on the server, not formatting rows."""

    contacts: bytes
    orders: bytes
    items: bytes
    activity: bytes
    triggers: bytes
    suppressed_triggers: bytes
    campaign_events: bytes
    attributions: bytes
    purged_orders: list[tuple[str, str]]
    purged_contacts: list[tuple[str, str]]
    unattributed: list[tuple[str, str]]
    offsets: dict[tuple[str, int], int]
    counts: WriteResult


def stage(batch: Batch, adapters: psycopg.Cursor[Any]) -> Staged:
    """Format ``batch`` for COPY with the type adapters of ``adapters`` (no statement is run on it).
    Text holding U+0000, which PostgreSQL cannot store and the formatting refuses, is cleaned of it: the
    check costs nothing while no record has one."""
    try:
        return _stage(batch, adapters)
    except psycopg.DataError:
        return _stage(without_nul_batch(batch), adapters)


def without_nul_batch(batch: Batch) -> Batch:
    """Every record of the batch cleaned of U+0000 (a campaign name with one stopped the sink for good)."""
    return replace(
        batch,
        orders=without_nul(batch.orders),
        activities=without_nul(batch.activities),
        contacts=without_nul(batch.contacts),
        triggers=without_nul(batch.triggers),
        suppressed_triggers=without_nul(batch.suppressed_triggers),
        campaign_events=without_nul(batch.campaign_events),
        attributions=without_nul(batch.attributions),
    )


def _stage(batch: Batch, adapters: psycopg.Cursor[Any]) -> Staged:
    # Live versions and deletes are staged separately: a batch can hold an order's last live version
    # and, later, its delete; the upsert applies the first, then the delete marks it.
    key = lambda o: (o["store_id"], o["source_order_id"])  # noqa: E731
    orders = latest_by((o for o in batch.orders if not o["deleted"]), key) + latest_by(
        (o for o in batch.orders if o["deleted"]), key
    )
    contacts = latest_by(batch.contacts, lambda c: c["contact_id"])
    activities = list({a["event_id"]: a for a in batch.activities}.values())
    return Staged(
        contacts=_copy_data(adapters, (contact_row(c) for c in contacts)),
        orders=_copy_data(adapters, (order_row(o) for o in orders)),
        items=_copy_data(adapters, (row for o in orders if not o["deleted"] for row in item_rows(o))),
        activity=_copy_data(adapters, (activity_row(a) for a in activities)),
        triggers=_copy_data(adapters, (trigger_row(t) for t in {t["trigger_id"]: t for t in batch.triggers}.values())),
        suppressed_triggers=_copy_data(
            adapters, (trigger_row(t) for t in {t["trigger_id"]: t for t in batch.suppressed_triggers}.values())
        ),
        campaign_events=_copy_data(
            adapters,
            (campaign_event_row(e) for e in {(e["list_id"], e["event_id"]): e for e in batch.campaign_events}.values()),
        ),
        attributions=_copy_data(
            adapters, (attribution_row(a) for a in {a["order_key"]: a for a in batch.attributions}.values())
        ),
        purged_orders=batch.purged_orders,
        purged_contacts=batch.purged_contacts,
        unattributed=[(store, order) for store, _, order in (key.partition(":") for key in sorted(batch.unattributed))],
        offsets=batch.offsets,
        counts=WriteResult(len(orders), len(activities), len(contacts)),
    )


class SinkFenced(RuntimeError):
    """Another sink with this consumer name started since this one did: this one must write nothing."""


def write_staged(
    conn: psycopg.Connection[Any], staged: Staged, consumer: str, generation: int | None = None
) -> WriteResult:
    """Write ``staged`` and its offsets in one transaction; with ``generation``, only while this sink is
    still the newest of its consumer name (else SinkFenced, nothing written)."""
    with conn.transaction(), conn.cursor() as cur:
        if generation is not None:
            newest = cur.execute(q.CHECK_SINK_OWNER, (consumer,)).fetchone()
            if newest is None or newest[0] != generation:
                raise SinkFenced(
                    f"another sink named {consumer!r} started (generation {newest[0] if newest else '?'}, this one "
                    f"{generation}): this one stops without writing"
                )
        if staged.contacts:
            _copy(cur, q.COPY_CONTACTS, staged.contacts)
            cur.execute(q.UPSERT_CONTACTS)
        if staged.purged_contacts:
            lists, emails = zip(*staged.purged_contacts, strict=True)
            cur.execute(q.PURGE_CONTACTS, (list(lists), list(emails)))
        if staged.orders:
            _copy(cur, q.COPY_ORDERS, staged.orders)
            _copy(cur, q.COPY_ITEMS, staged.items)
            cur.execute(q.ANALYZE_STAGED_ORDERS)
            cur.execute(q.FIND_EXISTING_ORDERS)
            cur.execute(q.FIND_NEW_ORDERS)
            cur.execute(q.ANALYZE_FOUND_ORDERS)
            cur.execute(q.FIND_CONTACTS_OF_EXISTING)
            cur.execute(q.MARK_STALE_DAYS)
            cur.execute(q.MARK_RFM_STALE)
            cur.execute(q.MARK_CAMPAIGNS_STALE)
            cur.execute(q.UPSERT_ORDERS)
            cur.execute(q.ANALYZE_APPLIED_ORDERS)
            cur.execute(q.MARK_DELETED)
            cur.execute(q.INSERT_TOMBSTONES)
            cur.execute(q.REPLACE_ITEMS_DELETE)
            cur.execute(q.REPLACE_ITEMS_INSERT)
        if staged.purged_orders:
            stores, ids = zip(*staged.purged_orders, strict=True)
            cur.execute(q.FIND_CONTACTS_OF_PURGED, (list(stores), list(ids)))
            cur.execute(q.MARK_STALE_DAYS_OF_PURGED, (list(stores), list(ids)))
            cur.execute(q.MARK_RFM_STALE_OF_PURGED, (list(stores), list(ids)))
            cur.execute(q.MARK_CAMPAIGNS_STALE_OF_PURGED, {"stores": list(stores), "ids": list(ids)})
            cur.execute(q.PURGE_ORDERS, (list(stores), list(ids)))
        if staged.orders or staged.purged_orders:
            for statement in q.MAINTAIN_SUMMARIES:
                cur.execute(statement)
        if staged.orders:
            cur.execute(q.MARK_NEXT_FIRST_ORDER_DAYS)
        if staged.activity:
            _copy(cur, q.COPY_ACTIVITY, staged.activity)
            cur.execute(q.UPSERT_ACTIVITY)
        if staged.triggers:
            _copy(cur, q.COPY_TRIGGERS, staged.triggers)
            cur.execute(q.INSERT_TRIGGERS)
        if staged.suppressed_triggers:
            _copy(cur, q.COPY_SUPPRESSED, staged.suppressed_triggers)
            cur.execute(q.INSERT_SUPPRESSED)
        _write_campaigns(cur, staged)
        if staged.offsets:
            cur.executemany(q.SAVE_OFFSET, [(consumer, t, p, o) for (t, p), o in staged.offsets.items()])
    return staged.counts


def _write_campaigns(cur: psycopg.Cursor[Any], staged: Staged) -> None:
    if staged.campaign_events:
        _copy(cur, q.COPY_CAMPAIGN_EVENTS, staged.campaign_events)
        cur.execute(q.INSERT_CAMPAIGN_EVENTS)
    if staged.unattributed:
        stores, ids = zip(*staged.unattributed, strict=True)
        cur.execute(q.DELETE_ATTRIBUTIONS, (list(stores), list(ids)))
    if staged.attributions:
        _copy(cur, q.COPY_ATTRIBUTIONS, staged.attributions)
        cur.execute(q.INSERT_ATTRIBUTIONS)


def write_batch(
    conn: psycopg.Connection[Any], batch: Batch, consumer: str, generation: int | None = None
) -> WriteResult:
    """Stage and write ``batch`` in one go (tests, tools); the sink stages on its reading thread."""
    with conn.cursor() as adapters:
        return write_staged(conn, stage(batch, adapters), consumer, generation)


def claim(conn: psycopg.Connection[Any], consumer: str) -> int | None:
    """Make this connection's sink the one writing as ``consumer``: its generation, or None while another
    sink of that name holds the lock (held until this connection closes)."""
    locked = conn.execute(q.SINK_LOCK, (consumer,)).fetchone()
    if not locked or not locked[0]:
        return None
    row = conn.execute(q.CLAIM_SINK, (consumer,)).fetchone()
    assert row is not None  # INSERT … RETURNING
    return int(row[0])


def _copy_data(adapters: psycopg.Cursor[Any], rows: Iterable[tuple[Any, ...]]) -> bytes:
    out = io.BytesIO()
    with Copy(adapters, writer=FileWriter(out)) as copy:
        for row in rows:
            copy.write_row(row)
    return out.getvalue()


def _copy(cur: psycopg.Cursor[Any], statement: str, data: bytes) -> None:
    with cur.copy(statement) as copy:
        copy.write(data)


def stored_offsets(conn: psycopg.Connection[Any], consumer: str) -> dict[tuple[str, int], int]:
    return {(t, p): o for t, p, o in conn.execute(q.LOAD_OFFSETS, (consumer,))}

"""Checks on a database the sink wrote, shared by the sink, reliability and fault tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from ordersync.sinks import statements as q


def summaries_match_recomputation(url: str) -> None:
    """Every per-contact summary the sink keeps equals a recomputation from the orders."""
    with psycopg.connect(url) as conn:
        for table in q.SUMMARIES:
            kept = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            fresh = sorted(conn.execute(q.from_scratch(table)).fetchall())
            assert kept == fresh and kept, table


def db_state(url: str) -> dict[tuple[str, str], tuple[str, bool, Decimal, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.store_id, o.source_order_id, o.store_status, o.deleted, o.total, count(i.item_id)"
            " FROM orders o LEFT JOIN order_items i USING (store_id, source_order_id) GROUP BY o.store_id, o.source_order_id"
        ).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


def expected_state(truths: dict[str, dict[str, Any]]) -> dict[tuple[str, str], tuple[str | None, bool, Decimal, int]]:
    out: dict[tuple[str, str], tuple[str | None, bool, Decimal, int]] = {}
    for store, truth in truths.items():
        for oid, o in truth.items():
            # A trashed order keeps its last live status in the database, marked deleted.
            out[(store, oid)] = (None if o["trashed"] else o["status"], o["trashed"], Decimal(o["total"]), o["lines"])
    return out


def matches(db: dict[Any, Any], want: dict[Any, Any]) -> list[str]:
    problems = []
    for key, (status, trashed, total, lines) in want.items():
        got = db.get(key)
        if got is None:
            problems.append(f"{key} missing")
        elif (
            (status is not None and got[0] != status)
            or got[1] != trashed
            or (not trashed and (got[2] != total or got[3] != lines))
        ):
            problems.append(f"{key}: have {got}, want {(status, trashed, total, lines)}")
    problems += [f"{key} not in any shop" for key in db.keys() - want.keys()]
    return problems


def orders_without_their_contact(url: str) -> list[str]:
    """Orders naming a contact the contacts table does not hold: its record was lost on the way."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.order_key, o.contact_id FROM orders o WHERE o.contact_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.contact_id = o.contact_id) ORDER BY 1 LIMIT 20"
        ).fetchall()
    return [f"{key}: its contact {cid} is not in contacts" for key, cid in rows]

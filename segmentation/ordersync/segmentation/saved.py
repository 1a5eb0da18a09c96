"""Saved segments: a name, an optional list and a segment document, kept in PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ordersync.segmentation.conditions import SegmentError, compile_segment

MAX_NAME = 200

SAVE = """
INSERT INTO saved_segments (name, list_id, document) VALUES (%s, %s, %s)
ON CONFLICT ON CONSTRAINT saved_segments_list_name_key DO UPDATE SET document = EXCLUDED.document, updated_at = now()
RETURNING segment_id
"""
BY_ID = "SELECT segment_id, name, list_id, document, updated_at FROM saved_segments WHERE segment_id = %s"
BY_NAME = "SELECT segment_id, name, list_id, document, updated_at FROM saved_segments WHERE name = %s ORDER BY list_id"
ALL = "SELECT segment_id, name, list_id, document, updated_at FROM saved_segments ORDER BY lower(name)"
DELETE = "DELETE FROM saved_segments WHERE segment_id = %s"


@dataclass(frozen=True)
class SavedSegment:
    segment_id: int
    name: str
    list_id: str | None
    document: dict[str, Any]
    updated_at: dt.datetime


def _row(row: tuple[Any, ...] | None) -> SavedSegment | None:
    return SavedSegment(*row) if row else None


def clean_name(name: str) -> str:
    """The name as stored, or a SegmentError saying why it cannot be one."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise SegmentError(f"a segment needs a name of 1 to {MAX_NAME} characters")
    return cleaned


def save(conn: psycopg.Connection[Any], name: str, list_id: str | None, document: dict[str, Any]) -> int:
    """Store (or replace) the segment ``name`` of ``list_id`` after checking the document compiles; its id.
    Names are unique per list: another list's segment of the same name is never touched."""
    compile_segment(document, dt.datetime.now(dt.UTC))
    row = conn.execute(SAVE, (clean_name(name), list_id, Jsonb(document))).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row
    return int(row[0])


def by_id(conn: psycopg.Connection[Any], segment_id: int) -> SavedSegment | None:
    return _row(conn.execute(BY_ID, (segment_id,)).fetchone())


def by_name(conn: psycopg.Connection[Any], name: str, list_id: str | None = None) -> SavedSegment | None:
    """The segment ``name`` of ``list_id`` (else the one for every list); without a list, the only one of
    that name, or a SegmentError naming the lists that have one."""
    found = [SavedSegment(*row) for row in conn.execute(BY_NAME, (" ".join(name.split()),)).fetchall()]
    if list_id is not None:
        return next((s for s in found if s.list_id == list_id), None) or next(
            (s for s in found if s.list_id is None), None
        )
    if len(found) > 1:
        lists = ", ".join(s.list_id or "(every list)" for s in found)
        raise SegmentError(f"segments named {name!r} exist for lists {lists}: give --list")
    return found[0] if found else None


def every(conn: psycopg.Connection[Any]) -> list[SavedSegment]:
    return [SavedSegment(*row) for row in conn.execute(ALL).fetchall()]


def delete(conn: psycopg.Connection[Any], segment_id: int) -> bool:
    return conn.execute(DELETE, (segment_id,)).rowcount == 1

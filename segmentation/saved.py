"""Saved segments: a name, an optional list and a segment document, kept in PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ordersync.segmentation.conditions import SegmentError, compile_condition

MAX_NAME = 200

SAVE = """
INSERT INTO saved_segments (name, list_id, document) VALUES (%s, %s, %s)
ON CONFLICT (name) DO UPDATE SET list_id = EXCLUDED.list_id, document = EXCLUDED.document, updated_at = now()
RETURNING segment_id
"""
BY_ID = "SELECT segment_id, name, list_id, document, updated_at FROM saved_segments WHERE segment_id = %s"
BY_NAME = "SELECT segment_id, name, list_id, document, updated_at FROM saved_segments WHERE name = %s"
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
    """Store (or replace) the segment ``name`` after checking the document compiles; its id."""
    compile_condition(document, dt.datetime.now(dt.UTC))
    row = conn.execute(SAVE, (clean_name(name), list_id, Jsonb(document))).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row
    return int(row[0])


def by_id(conn: psycopg.Connection[Any], segment_id: int) -> SavedSegment | None:
    return _row(conn.execute(BY_ID, (segment_id,)).fetchone())


def by_name(conn: psycopg.Connection[Any], name: str) -> SavedSegment | None:
    return _row(conn.execute(BY_NAME, (" ".join(name.split()),)).fetchone())


def every(conn: psycopg.Connection[Any]) -> list[SavedSegment]:
    return [SavedSegment(*row) for row in conn.execute(ALL).fetchall()]


def delete(conn: psycopg.Connection[Any], segment_id: int) -> bool:
    return conn.execute(DELETE, (segment_id,)).rowcount == 1

"""Checks on a database the sink wrote, shared by the sink and reliability tests."""

from __future__ import annotations

import psycopg

from sinks import statements as q


def summaries_match_recomputation(url: str) -> None:
    """Every per-contact summary the sink keeps equals a recomputation from the orders."""
    with psycopg.connect(url) as conn:
        for table in q.SUMMARIES:
            kept = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            fresh = sorted(conn.execute(q.from_scratch(table)).fetchall())
            assert kept == fresh and kept, table

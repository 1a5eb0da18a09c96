"""The derived tables' refresher is a pipeline component, and the web app only reads: it neither
refreshes the summaries nor migrates the database (a real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ordersync.segmentation import insight_days, rfm
from tests.processes import ordersync
from tests.sink_data import load_segment_fixture, segment_fixture


def run(args: list[str], database_url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return ordersync(*args, env={**os.environ, "ORDERSYNC_DATABASE_URL": database_url}, timeout=timeout)


def test_the_refresher_brings_every_summary_up_to_date(database_url: str) -> None:
    """Before, only the web app's lifespan refreshed Insights, RFM and the campaign summaries: without a
    web app open, they went stale. `ordersync refresh` (which `ordersync run` supervises) does it."""
    contacts, orders = segment_fixture(dt.datetime.now(dt.UTC).replace(microsecond=0))
    load_segment_fixture(database_url, contacts, orders)
    with psycopg.connect(database_url) as conn:
        assert insight_days.pending(conn) > 0 and rfm.stale(conn) > 0  # what the sink left to summarise

    done = run(["refresh", "--once"], database_url)

    assert done.returncode == 0, done.stderr
    assert "insight days:" in done.stdout and "rfm lists:" in done.stdout
    with psycopg.connect(database_url) as conn:
        assert insight_days.pending(conn) == 0 and rfm.stale(conn) == 0
        days = conn.execute("SELECT count(*) FROM insight_days").fetchone()
        assert days is not None and days[0] > 0


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database of its own with nothing in it (the module's database is migrated by the test above)."""
    name = f"empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_web_app_does_not_migrate_the_database(empty_database: str) -> None:
    """The web app reads; migrating is the job of `ordersync db migrate` (or the sink). On a database
    that lacks migrations it says so and exits 2, and leaves the database as it was."""
    answer = run(["web", "--port", "1"], empty_database, timeout=60)

    assert answer.returncode == 2
    assert "ordersync db migrate" in answer.stderr
    with psycopg.connect(empty_database) as conn:
        table = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        assert table == (None,), "the web app migrated the database"

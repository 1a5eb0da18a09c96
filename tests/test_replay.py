"""Replay: rebuild from the raw topics with a fresh identity; --verify compares with the live database.
The typical reason to replay is a changed status map, so that is what is tested."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ordersync.runtime.settings import Settings
from ordersync.schemas import encode
from ordersync.topics_admin import create_topics
from tests.endpoints import Endpoints
from tests.kafka_helpers import produce
from tests.processes import ordersync, running, wait_for
from tests.raw_events import woo_doc, woo_event


@pytest.fixture
def target_db(endpoints: Endpoints) -> Iterator[str]:
    name = f"replay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(endpoints.database_url, dbname=name)
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def events() -> list[tuple[bytes, bytes]]:
    out = []
    for i, (status, refunds) in enumerate(
        [("completed", []), ("refunded", [{"id": 9, "reason": "x", "total": "-35.95"}]), ("processing", [])]
    ):
        for minute, st in ((1, "pending"), (2, status)):
            doc = woo_doc(
                100 + i,
                status=st,
                date_modified_gmt=f"2024-03-14T10:0{minute}:00",
                refunds=refunds if minute == 2 else [],
            )
            out.append((f"woo-ch:{100 + i}".encode(), encode("raw_order_event", woo_event(doc))))
    return out


def stores(path: Path, refunded: str | None) -> Path:
    body = '[[store]]\nid = "woo-ch"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:9"\nlist_id = "7"\n'
    body += '[attribution."7"]\n'
    if refunded:
        body += f'[store.status_overrides]\nrefunded = "{refunded}"\n'
    path.write_text(body)
    return path


def test_replay_after_a_status_map_change(
    subprocess_env: dict[str, str],
    topic_prefix: str,
    kafka_bootstrap: str,
    database_url: str,
    target_db: str,
    tmp_path: Path,
) -> None:
    env = {
        **subprocess_env,
        "ORDERSYNC_TOPIC_PREFIX": topic_prefix,
        "ORDERSYNC_PARTITIONS": "2",
        "ORDERSYNC_DATABASE_URL": database_url,
    }
    create_topics(Settings.from_env(env))
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", events())
    new_map = stores(tmp_path / "new.toml", "COMPLETED")  # the change: refunded orders count as completed
    # The live pipeline, already running with the new map.
    with running(["process", "--config", str(new_map), "--data-dir", str(tmp_path / "live"), "--loglevel", "warn"], env, tmp_path / "p.log") as proc, \
         running(["sink"], env, tmp_path / "s.log") as sink:  # fmt: skip
        # Contacts come out of the contact stage on their own topic, so the sink may write an order's
        # activity before its contact: the live database is complete only when both have landed.
        def landed(campaign_events: int, attributions: int) -> bool:
            if not proc.alive() or not sink.alive():
                return True
            with psycopg.connect(database_url) as conn:
                if not _has_tables(conn):  # the sink migrates the database as it starts
                    return False
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM contacts),"
                    " (SELECT count(*) FROM campaign_events), (SELECT count(*) FROM attributions)"
                ).fetchone()
            return row is not None and row[0] >= 7 and row[1] >= 1 and row[2:] == (campaign_events, attributions)

        wait_for(lambda: landed(0, 0), 180, "the live pipeline")
        assert proc.alive() and sink.alive(), proc.output()[-2000:] + sink.output()[-2000:]
        # Campaign events are history too, imported here after the orders they led to: the late touches
        # credit the orders already seen (they did not: a contact's orders were decided once, with the
        # touches read by then). The replay's sink reads them where they were imported (it read
        # "{replay prefix}campaign.events", which nobody writes, and --verify did not compare them).
        campaign_csv = tmp_path / "campaign.csv"
        campaign_csv.write_text(
            "type,campaign_id,campaign_name,email,occurred_at,holdout\n"
            "send,spring,Spring sale,zoe.muller@example.com,2024-03-13T09:00:00Z,false\n"
            "open,spring,Spring sale,zoe.muller@example.com,2024-03-13T10:00:00Z,\n"
            "click,spring,Spring sale,zoe.muller@example.com,2024-03-13T10:01:00Z,\n"
        )
        assert ordersync("campaigns", "import", str(campaign_csv), "--list", "7", env=env).returncode == 0
        wait_for(lambda: landed(3, 3), 180, "the live pipeline's attributions")
        assert proc.alive() and sink.alive(), proc.output()[-2000:] + sink.output()[-2000:]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM orders WHERE source_order_id = '101'").fetchone() == ("COMPLETED",)

    # Rebuilt with the new map: equal to live, row for row.
    with running(
        ["replay", "--target-database", target_db, "--config", str(new_map), "--verify", "--timeout", "300"],
        env,
        tmp_path / "r1.log",
    ) as replay:
        code = replay.wait(400)
        assert code == 0, replay.output()[-3000:]
        assert "orders" in replay.output() and "DIFFERENT" not in replay.output()
        assert any(line.split()[:3] == ["campaign_events", "3", "3"] for line in replay.output().splitlines())
        assert any(line.split()[:3] == ["attributions", "3", "3"] for line in replay.output().splitlines())

    # Rebuilt with the old map: the difference is found and reported.
    with psycopg.connect(target_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    old_map = stores(tmp_path / "old.toml", None)
    with running(
        ["replay", "--target-database", target_db, "--config", str(old_map), "--verify", "--timeout", "300"],
        env,
        tmp_path / "r2.log",
    ) as replay:
        assert replay.wait(400) == 1, replay.output()[-3000:]
        out = replay.output()
    assert "differs" in out
    assert any(line.startswith("orders") and "DIFFERENT" in line for line in out.splitlines())
    with psycopg.connect(target_db) as conn:
        assert conn.execute("SELECT status FROM orders WHERE source_order_id = '101'").fetchone() == ("CANCELED",)


def _has_tables(conn: psycopg.Connection) -> bool:  # type: ignore[type-arg]
    """Every table the test reads exists (migrations run one after the other: activity can be there
    before campaign_events; CI once read in between)."""
    found = conn.execute(
        "SELECT to_regclass('activity') IS NOT NULL AND to_regclass('contacts') IS NOT NULL"
        " AND to_regclass('campaign_events') IS NOT NULL AND to_regclass('attributions') IS NOT NULL"
    ).fetchone()
    return found == (True,)

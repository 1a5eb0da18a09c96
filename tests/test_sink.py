"""The PostgreSQL sink against the real broker and database: exactly once under SIGKILL, PostgreSQL
restarts, version guards, deletes; migrations."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ordersync.runtime.settings import Settings
from ordersync.schemas import encode, registry
from ordersync.schemas.headers import order_headers
from ordersync.schemas.serde import MARKER
from ordersync.sinks.migrate import MigrationError, migrate
from ordersync.topics_admin import create_topics
from tests.db_checks import summaries_match_recomputation
from tests.endpoints import Endpoints
from tests.kafka_helpers import consume_until, drain, produce, set_topic_config
from tests.processes import Proc, ordersync, running, wait_for
from tests.sink_data import activity, contact, item, order, random_history
from tests.sink_data import dt as _dt

UTC = _dt.UTC


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str, database_url: str) -> dict[str, str]:
    env = {
        **subprocess_env,
        "ORDERSYNC_TOPIC_PREFIX": topic_prefix,
        "ORDERSYNC_PARTITIONS": "3",
        "ORDERSYNC_DATABASE_URL": database_url,
    }
    create_topics(Settings.from_env(env))
    return env


@pytest.fixture
def clean_db(database_url: str) -> str:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "TRUNCATE contacts, orders, order_items, activity, contact_order_stats, contact_categories,"
            " contact_checkout, sink_offsets"
        )
    return database_url


def publish(
    bootstrap: str,
    prefix: str,
    orders: list[dict[str, Any]],
    acts: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    *,
    headers: bool = True,  # as the processor writes them; without, the sink must decode every version
) -> None:
    produce(
        bootstrap,
        f"{prefix}contacts",
        [(f"{c['list_id']}:{c['email']}".encode(), encode("contact", c)) for c in contacts],
    )
    produce(
        bootstrap,
        f"{prefix}orders",
        [(o["order_key"].encode(), encode("order", o), order_headers(o) if headers else []) for o in orders],
    )
    produce(bootstrap, f"{prefix}activity", [(a["order_key"].encode(), encode("activity", a)) for a in acts])


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("orders", "activity", "contacts", "order_items")
        }  # type: ignore[index]


def test_migrations_are_idempotent_and_guarded(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    assert migrate(database_url) == []
    changed = tmp_path / "migrations"
    changed.mkdir()
    from ordersync.sinks.migrate import MIGRATIONS_DIR

    for f in MIGRATIONS_DIR.glob("*.sql"):
        (changed / f.name).write_text(f.read_text() + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database_url, changed)


def test_sink_killed_repeatedly_lands_every_event_once(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    orders, acts, contacts = random_history(4000, 500)
    publish(kafka_bootstrap, topic_prefix, orders, acts, contacts)
    total_messages = len(orders) + len(acts) + len(contacts)
    args = ["sink", "--batch-size", "300"]
    rng = random.Random(3)
    kills = 0
    for round_ in range(4):
        proc = Proc(args, env, tmp_path / f"sink-{round_}.log")
        try:
            target = (round_ + 1) * total_messages // 6
            wait_for(lambda p=proc, t=target: not p.alive() or _landed(clean_db) >= t, 120, "progress")
            assert proc.alive(), proc.output()[-2000:]
            _sleep_a_little(rng)
            proc.kill()
            kills += 1
        finally:
            proc.close()
    assert kills == 4
    with running([*args, "--idle-exit", "5"], env, tmp_path / "sink-final.log") as proc:
        assert proc.wait(300) == 0, proc.output()[-2000:]
    c = counts(clean_db)
    assert c["orders"] == 4000 and c["activity"] == 8000 and c["contacts"] == 500
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE version <> 2").fetchone() == (0,)
        expected_items = sum(len(o["items"]) for o in orders if o["version"] == 2)
        assert c["order_items"] == expected_items
        stored = dict(((t, p), o) for t, p, o in conn.execute("SELECT topic, partition, next_offset FROM sink_offsets"))
    assert sum(stored.values()) == total_messages  # offsets cover exactly what was consumed
    summaries_match_recomputation(clean_db)


def _landed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM sink_offsets").fetchone()
    return int(row[0]) if row else 0


def _sleep_a_little(rng: random.Random) -> None:
    import time

    time.sleep(rng.random() * 0.3)  # a random moment inside the next batch, on purpose not a condition


def test_postgres_restart_during_consumption_loses_nothing(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, endpoints: Endpoints
) -> None:
    from ordersync.stack import LocalPostgres

    pg = LocalPostgres(Settings.from_env({k: v for k, v in env.items() if k != "ORDERSYNC_DATABASE_URL"}))
    if pg.pid() is None:
        pytest.skip(f"restarting PostgreSQL needs the local stack ({endpoints.source} is in use)")
    orders, acts, contacts = random_history(2000, 200, seed=9)
    publish(kafka_bootstrap, topic_prefix, orders, acts, contacts)
    with running(["sink", "--batch-size", "200", "--idle-exit", "8"], env, tmp_path / "sink.log") as proc:
        wait_for(lambda: not proc.alive() or _landed(clean_db) > 1000, 120, "some progress")
        pg.down()
        pg.up()
        assert proc.wait(300) == 0, proc.output()[-2000:]
        assert "PostgreSQL unavailable" in proc.output()
    c = counts(clean_db)
    assert (c["orders"], c["activity"], c["contacts"]) == (2000, 4000, 200)
    summaries_match_recomputation(clean_db)


@pytest.mark.parametrize("headers", [True, False], ids=["with-version-headers", "without-headers"])
def test_versions_deletes_and_tombstones(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, headers: bool
) -> None:
    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    v1 = order(1, "a@example.com", status="PENDING", created=created, version=1)
    v3 = order(1, "a@example.com", status="COMPLETED", created=created, version=3, total="12.00")
    v2 = order(1, "a@example.com", status="CANCELED", created=created, version=2)
    gone = order(2, "a@example.com", created=created, version=1)
    deleted = {**order(2, None, created=created, version=5, total="0", items=[]), "deleted": True}
    purge = order(3, "a@example.com", created=created, version=1)
    publish(
        kafka_bootstrap,
        topic_prefix,
        [v1, v3, v2, gone, deleted, purge],
        [activity(v1)],
        [contact("1", "a@example.com")],
        headers=headers,
    )
    # a tombstone, and a corrupt value whose headers claim the newest version of order 1
    corrupt = MARKER + registry().current("order").fingerprint_bytes + b"not avro"
    garbage = (b"s:1", corrupt, order_headers({"version": 9, "deleted": False}) if headers else [])
    produce(kafka_bootstrap, f"{topic_prefix}orders", [(b"s:3", None), garbage])
    with running(["sink", "--idle-exit", "5"], env, tmp_path / "sink.log") as proc:
        assert proc.wait(120) == 0, proc.output()
    with psycopg.connect(clean_db) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute("SELECT source_order_id, status, version, total, deleted, contact_email FROM orders")
        }
        stats = conn.execute("SELECT order_count, spent FROM contact_order_stats").fetchall()
    assert rows["1"][:3] == ("COMPLETED", 3, 12)  # the older v2, arriving later, did not overwrite v3
    assert rows["2"][3:] == (True, "a@example.com")  # deleted, the rest of the row kept
    assert "3" not in rows  # a tombstone purges
    assert stats == [(1, 12)]  # deleted and purged orders no longer count
    dead = consume_until(kafka_bootstrap, f"{topic_prefix}dlq", lambda got: len(got) >= 1)
    assert [(m.key(), m.value()) for m in dead] == [garbage[:2]]
    assert dict(dead[0].headers() or [])["dlq.reason"].startswith(b"corrupt order")


def test_a_record_of_an_unknown_schema_stops_the_sink_before_its_batch(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A writer deployed before its readers: the sink stops with a clear message and stores nothing of the
    batch (no offsets past it, nothing dead-lettered), instead of emptying the topic into the DLQ."""
    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    publish(kafka_bootstrap, topic_prefix, [order(1, "a@example.com", created=created, version=1)], [], [])
    newer = MARKER + (0x1234_5678_9ABC_DEF0).to_bytes(8, "little") + b"a newer order schema"
    produce(kafka_bootstrap, f"{topic_prefix}orders", [(b"s:2", newer)])
    with running(["sink", "--idle-exit", "5"], env, tmp_path / "sink.log") as proc:
        assert proc.wait(120) != 0, proc.output()
        assert "upgrade the readers" in proc.output()
    with psycopg.connect(clean_db) as conn:
        stored = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM sink_offsets").fetchone()
        assert stored == (0,)
    assert not drain(kafka_bootstrap, f"{topic_prefix}dlq")


def test_summaries_add_new_orders_and_recompute_the_rest(clean_db: str) -> None:
    """New orders are added to their owners' summaries, everything else recomputes them: after every
    batch, each summary equals a recomputation from the orders."""
    from ordersync.sinks.writer import Batch, prepare, write_batch

    at = _dt.datetime(2024, 6, 1, tzinfo=UTC)
    day = _dt.timedelta(days=1)

    def o(n: int, email: str | None, **kw: Any) -> dict[str, Any]:
        return order(n, email, created=kw.pop("created", at), items=kw.pop("items", None), **kw)

    batches = [
        # new orders only: two contacts, two currencies, a cancelled one, one new order deleted at once
        [o(1, "a@example.com"), o(2, "a@example.com", currency="CHF", total="7.50"),
         o(3, "b@example.com", status="CANCELED"), o(4, "b@example.com", status="PENDING", created=at + day),
         o(5, "a@example.com"), {**o(5, "a@example.com", version=2), "deleted": True}],
        # a's new order beside b's existing order moving to a (both recomputed), and c's new orders only
        [o(6, "a@example.com", created=at + 2 * day), o(3, "a@example.com", status="COMPLETED", version=2),
         o(7, "c@example.com", status="PENDING", created=at - day), o(8, "c@example.com", created=at + day)],
        # c completes an order after its open one; d arrives with an order whose version is older
        [o(9, "c@example.com", created=at + 3 * day), o(10, "d@example.com", version=3),
         o(10, "d@example.com", status="CANCELED", version=1)],
    ]  # fmt: skip
    with psycopg.connect(clean_db, autocommit=True) as conn:
        prepare(conn)
        for orders in batches:
            write_batch(conn, Batch(orders=orders, messages=len(orders)), "test")
            summaries_match_recomputation(clean_db)
        checkout = dict(
            conn.execute(
                "SELECT o.contact_email, k.open_since FROM contact_checkout k"
                " JOIN (SELECT DISTINCT contact_id, contact_email FROM orders) o USING (contact_id)"
            ).fetchall()
        )
    assert checkout["c@example.com"] is None  # completed after its open order: nothing abandoned
    assert checkout["b@example.com"] == at + day  # still open


def test_text_with_nul_characters_lands_cleaned(clean_db: str) -> None:
    """PostgreSQL refuses U+0000 in text and jsonb; one such string must not stop the sink for everyone."""
    from ordersync.sinks.writer import Batch, prepare, write_batch

    at = _dt.datetime(2024, 6, 1, tzinfo=UTC)
    nul_item = item("1", "P\x001", "Sh\x00oes", name="Wool\x00 Boot", sku="S\x00KU")
    poisoned = {
        **order(1, "a@example.com", created=at, items=[nul_item]),
        "coupons": [{"code": "SALE\x00", "note": "a \\u0000 backslash stays"}],
        "store_status_label": "Done\x00",
    }
    person = {**contact("1", "a@example.com"), "first_name": "An\x00a", "store_customers": [{"name": "x\x00y"}]}
    with psycopg.connect(clean_db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[poisoned], contacts=[person], messages=2), "test")
        assert conn.execute("SELECT name, sku, product_id, categories FROM order_items").fetchone() == (
            "Wool Boot", "SKU", "P1", ["Shoes"],
        )  # fmt: skip
        assert conn.execute("SELECT coupons, store_status_label FROM orders").fetchone() == (
            [{"code": "SALE", "note": "a \\u0000 backslash stays"}], "Done",
        )  # fmt: skip
        assert conn.execute("SELECT first_name, store_customers FROM contacts").fetchone() == ("Ana", [{"name": "xy"}])


def test_a_row_postgresql_refuses_is_dead_lettered_alone_and_the_rest_lands(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Two orders of 90 trillion for one contact: each fits its column, but their sum overflows the
    contact's spent (numeric(20, 6)), so PostgreSQL refuses the batch. The order that breaks it goes to
    the dead-letter topic with the reason; everything else in the batch lands and the sink goes on."""
    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    fine = [order(n, f"c{n}@example.com", created=created) for n in range(1, 6)]
    huge = [order(n, "rich@example.com", created=created, total="90000000000000") for n in (10, 11)]
    publish(kafka_bootstrap, topic_prefix, [*fine[:3], *huge, *fine[3:]], [activity(o) for o in fine], [])
    with running(["sink", "--idle-exit", "5"], env, tmp_path / "sink.log") as proc:
        assert proc.wait(180) == 0, proc.output()
    with psycopg.connect(clean_db) as conn:
        landed = {r[0] for r in conn.execute("SELECT source_order_id FROM orders")}
        offsets = conn.execute("SELECT sum(next_offset) FROM sink_offsets").fetchone()
    assert landed == {o["source_order_id"] for o in fine} | {"10"}
    assert offsets == (len(fine) + len(huge) + len(fine),)  # every message consumed, the refused one too
    dead = consume_until(kafka_bootstrap, f"{topic_prefix}dlq", lambda got: len(got) >= 1)
    assert [m.key() for m in dead] == [b"s:11"]
    assert b"NumericValueOutOfRange" in dict(dead[0].headers() or [])["dlq.reason"]


def test_offsets_never_pass_a_dead_letter_kafka_refused(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A dead letter the broker refuses leaves the producer's queue like an acknowledged one: the sink
    must see the failure and not store offsets past the message it could not keep."""
    set_topic_config(kafka_bootstrap, f"{topic_prefix}dlq", {"max.message.bytes": "1000"})
    # undecodable (a corrupt body of a known schema), and too big for the dead-letter topic
    garbage = MARKER + registry().current("order").fingerprint_bytes + os.urandom(20_000)
    produce(kafka_bootstrap, f"{topic_prefix}orders", [(b"s:2", garbage)])
    with running(["sink", "--idle-exit", "5"], env, tmp_path / "sink.log") as proc:
        code = proc.wait(120)
        output = proc.output()
    assert code != 0 and "dead letters were not acknowledged" in output, output[-2000:]
    with psycopg.connect(clean_db) as conn:
        stored = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM sink_offsets").fetchone()
    assert stored == (0,), "offsets moved past a message that is neither written nor dead-lettered"


def test_one_sink_per_consumer_name_and_offsets_only_move_forward(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A second sink of the same name is refused at start (exit 2); a sink that lost its place to a newer
    one (a zombie) writes nothing; a late batch never moves an offset back."""
    from ordersync.sinks.migrate import migrate
    from ordersync.sinks.writer import Batch, SinkFenced, claim, prepare, stored_offsets, write_batch

    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    publish(kafka_bootstrap, topic_prefix, [order(1, "a@example.com", created=created, version=1)], [], [])
    with running(["sink"], env, tmp_path / "first.log") as first:
        wait_for(lambda: counts(clean_db)["orders"] == 1 or not first.alive(), 60, "the first sink")
        second = ordersync("sink", "--idle-exit", "5", env=env)
        assert second.returncode == 2, second.stderr
        assert f"another sink named '{topic_prefix}sink' is writing to this database" in second.stderr
        assert first.alive()
    migrate(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as zombie, psycopg.connect(clean_db, autocommit=True) as newer:
        prepare(zombie)
        old = claim(zombie, "fenced")
        assert old is not None
        assert claim(newer, "fenced") is None  # the zombie still holds the lock: refused
        zombie.execute("SELECT pg_advisory_unlock_all()")  # its session lost the lock (say, a reconnect)
        young = claim(newer, "fenced")
        assert young == old + 1
        late = Batch(orders=[order(2, "b@example.com", created=created, version=1)], offsets={("t", 0): 10})
        with pytest.raises(SinkFenced, match="another sink named 'fenced' started"):
            write_batch(zombie, late, "fenced", old)
        assert stored_offsets(zombie, "fenced") == {}
        write_batch(newer, Batch(offsets={("t", 0): 10}, messages=1), "fenced", young)
        write_batch(newer, Batch(offsets={("t", 0): 4}, messages=1), "fenced", young)
        assert stored_offsets(newer, "fenced") == {("t", 0): 10}


def test_a_delete_that_arrives_before_its_order_keeps_it_deleted(clean_db: str) -> None:
    """The processor can emit an order's delete before its live version (they may leave through different
    stages; a replay reads them in any order across topics): the delete leaves a tombstone row, so the
    older live version arriving later does not bring the order back. A newer version (a restore) does."""
    from ordersync.sinks.writer import Batch, prepare, write_batch

    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    live = order(7, "a@example.com", created=created, version=3)
    deleted = {**order(7, None, created=created, version=5, total="0", items=[]), "deleted": True}
    with psycopg.connect(clean_db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[deleted], messages=1), "test")
        write_batch(conn, Batch(orders=[live], messages=1), "test")
        row = conn.execute("SELECT deleted, version FROM orders WHERE source_order_id = '7'").fetchone()
        assert row == (True, 5)
        assert conn.execute("SELECT count(*) FROM contact_order_stats").fetchone() == (0,)
        write_batch(conn, Batch(orders=[{**live, "version": 9}], messages=1), "test")
        assert conn.execute("SELECT deleted, version FROM orders WHERE source_order_id = '7'").fetchone() == (False, 9)
    summaries_match_recomputation(clean_db)


def test_a_campaign_event_with_nul_does_not_stop_the_sink(
    env: dict[str, str], clean_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A signed webhook or CSV row with U+0000 in its campaign name was accepted, and the sink then exited
    with "PostgreSQL text fields cannot contain NUL" on that batch and on every restart: nothing more
    reached PostgreSQL. Every record is cleaned now, and whatever PostgreSQL's types still refuse is
    written message by message, the refused one dead-lettered."""
    from tests.samples import campaign_event

    created = _dt.datetime(2024, 5, 1, tzinfo=UTC)
    poisoned = {**campaign_event(), "campaign_name": "Spring\x00 sale", "url": "https://x.example/\x00"}
    produce(
        kafka_bootstrap, f"{topic_prefix}campaign.events", [(b"7:zoe@example.ch", encode("campaign_event", poisoned))]
    )
    fine = [order(n, f"c{n}@example.com", created=created) for n in range(1, 4)]
    publish(kafka_bootstrap, topic_prefix, fine, [activity(o) for o in fine], [])
    with running(["sink", "--idle-exit", "5"], env, tmp_path / "sink.log") as proc:
        assert proc.wait(180) == 0, proc.output()[-3000:]
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT campaign_name, url FROM campaign_events").fetchall() == [
            ("Spring sale", "https://x.example/")
        ]
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (3,)

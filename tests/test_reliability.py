"""Reliability: a 20,000-order backfill with live changes while the processor and the sink are
SIGKILLed at random moments (five times each), the Kafka broker is restarted once and later stays down
longer than the processor's delivery timeout, PostgreSQL is restarted once, the processor's data
directory is wiped once (a new disk: its tables come back from the changelogs), and a second sink keeps
trying to start beside the first. At the end PostgreSQL must equal the simulators' own state: no order
lost, none duplicated, every order's contact there, every order's timeline consistent, nothing
dead-lettered. Parts are supervised (restarted when they die), as `ordersync run` does."""

from __future__ import annotations

import ast
import random
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from ordersync.runtime.settings import Settings
from ordersync.stack import LocalKafka, LocalPostgres
from ordersync.supervisor import Child, Supervisor
from ordersync.topics_admin import create_topics
from tests.db_checks import (
    db_state,
    expected_state,
    matches,
    orders_without_their_contact,
    summaries_match_recomputation,
)
from tests.kafka_helpers import drain, raw_order_records
from tests.processes import wait_for
from tests.shops import SECRETS, shop, stores_toml

WOO_ORDERS, PS_ORDERS = 12_000, 8_000


def trace_missing(bootstrap: str, prefix: str, problems: list[str]) -> str:
    """Where the first missing orders got to, so a failure names the stage that lost them."""
    missing = [ast.literal_eval(p.removesuffix(" missing")) for p in problems if p.endswith(" missing")][:5]
    keys = {f"{store}:{oid}" for store, oid in missing}
    found = {}
    for topic in ("raw.orders", "orders", "activity", "dlq"):
        if topic == "raw.orders":
            hits = Counter(key for key, _ in raw_order_records(bootstrap, prefix + topic))
        else:
            hits = Counter(
                (m.key() or b"").decode(errors="replace")
                for m in drain(bootstrap, prefix + topic)
                if m.key() is not None
            )
        found[topic] = {k: hits[k] for k in keys}
    dead = len(drain(bootstrap, prefix + "dlq"))
    return f"seen on topics: {found}; dead letters: {dead}"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_pipeline_survives_kills_and_restarts(
    subprocess_env: dict[str, str], topic_prefix: str, database_url: str, tmp_path: Path
) -> None:
    base = Settings.from_env(
        {k: v for k, v in subprocess_env.items() if k not in ("ORDERSYNC_KAFKA_BOOTSTRAP", "ORDERSYNC_DATABASE_URL")}
    )
    kafka, pg = LocalKafka(base), LocalPostgres(base)
    if kafka.pid() is None or pg.pid() is None:
        pytest.skip("restarting the broker and PostgreSQL needs the local stack")
    env = {
        **subprocess_env,
        **SECRETS,
        "ORDERSYNC_TOPIC_PREFIX": topic_prefix,
        "ORDERSYNC_PARTITIONS": "4",
        "ORDERSYNC_DATABASE_URL": database_url,
        "ORDERSYNC_DELIVERY_TIMEOUT_MS": "8000",
    }
    create_topics(Settings.from_env(env))
    rng = random.Random(20261127)
    with shop("woocommerce", "w", env, tmp_path, "--rate", "10", orders=WOO_ORDERS, seed=7) as woo, \
         shop("prestashop", "p", env, tmp_path, "--rate", "10", orders=PS_ORDERS, seed=8) as ps:  # fmt: skip
        config = stores_toml(tmp_path / "stores.toml", woo, ps, poll_interval_s=1)
        children = [
            Child(
                "processor",
                ["process", "--config", str(config), "--data-dir", str(tmp_path / "state"), "--loglevel", "warn"],
                env,
            ),
            Child("sink", ["sink", "--batch-size", "2000"], env),
            # One sink per database: this one is refused while the first runs, and may take over after a kill.
            Child("second-sink", ["sink", "--batch-size", "2000"], env),
            Child("connectors", ["connect", "--config", str(config), "--follow"], env),
        ]
        supervisor = Supervisor(children, tmp_path / "logs")
        watcher = threading.Thread(target=supervisor.watch, daemon=True)
        watcher.start()
        by_name = {c.name: c for c in children}
        try:
            wait_for(lambda: all(by_name[n].up for n in ("processor", "sink", "connectors")), 60, "all parts started")
            kills: Counter[str] = Counter()
            plan = ["processor", "sink"] * 5
            rng.shuffle(plan)
            for step, victim in enumerate(plan):
                time.sleep(rng.uniform(1.5, 4.0))  # a random moment: deliberately not a condition
                child = by_name[victim]
                wait_for(lambda c=child: c.up, 120, f"{victim} restarted")
                assert child.proc is not None
                child.proc.send_signal(signal.SIGKILL)
                kills[victim] += 1
                if victim == "processor" and kills[victim] == 2:
                    # A new disk; the supervisor waits at least a second before the restart.
                    shutil.rmtree(tmp_path / "state", ignore_errors=True)
                if step == 3:
                    kafka.down()
                    kafka.up()
                if step == 6:
                    pg.down()
                    pg.up()
                if step == 8:
                    kafka.down()
                    time.sleep(12)  # the outage itself: longer than the processor's 8 s delivery timeout
                    kafka.up()
            assert kills == {"processor": 5, "sink": 5}
            woo.faults(live_paused=True)
            ps.faults(live_paused=True)
            want = expected_state({"w": woo.truth(), "p": ps.truth()})
            assert len(want) >= WOO_ORDERS + PS_ORDERS
            last: list[str] = []

            def converged() -> bool:
                nonlocal last
                last = matches(db_state(database_url), want) + orders_without_their_contact(database_url)
                return not last

            try:
                wait_for(converged, 420, "PostgreSQL to equal the shops' state", interval_s=3)
            except AssertionError as exc:
                where = trace_missing(env["ORDERSYNC_KAFKA_BOOTSTRAP"], topic_prefix, last)
                raise AssertionError(f"{exc}: {len(last)} differences, e.g. {last[:8]}; {where}") from None
        finally:
            supervisor.stop()
            supervisor.shutdown(grace_s=30)
            watcher.join(10)
        assert not last, last[:10]
        assert by_name["processor"].restarts >= 5 and by_name["sink"].restarts >= 5
    dead = drain(env["ORDERSYNC_KAFKA_BOOTSTRAP"], f"{topic_prefix}dlq")
    sink_dead = [m for m in dead if dict(m.headers() or []).get("dlq.stage") == b"sink"]
    assert not sink_dead, [dict(m.headers() or []).get("dlq.reason") for m in sink_dead[:3]]
    with psycopg.connect(database_url) as conn:
        created = conn.execute(
            "SELECT count(*), count(DISTINCT order_key) FROM activity WHERE type = 'ORDER_CREATED'"
        ).fetchone()
        assert created == (len(want), len(want))  # one creation event per order, never two
        with_contact = conn.execute("SELECT count(*) FROM orders WHERE contact_id IS NOT NULL").fetchone()
        assert with_contact and with_contact[0] > 0  # so the contact check above checked something
        # Every order's latest status change ends where the order is now.
        stale = conn.execute(
            "SELECT count(*) FROM orders o JOIN LATERAL (SELECT to_store_status FROM activity a WHERE a.store_id = o.store_id"
            " AND a.source_order_id = o.source_order_id AND a.type IN ('ORDER_CREATED', 'ORDER_STATUS_CHANGED')"
            " ORDER BY a.version DESC, a.type DESC LIMIT 1) last ON true WHERE NOT o.deleted AND last.to_store_status <> o.store_status"
        ).fetchone()
        assert stale == (0,)
    summaries_match_recomputation(database_url)

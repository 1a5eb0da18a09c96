"""More than one processor worker: a second worker joins mid-stream and leaves again (partitions and
their tables move both ways), and a worker is SIGKILLed while its group rebalances. PostgreSQL must still
equal the shops, with one ORDER_CREATED per order and every order's contact, and the triggers must be
right: no trigger id twice with different content, one thank-you per order, none missing."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from ordersync.runtime.settings import Settings
from ordersync.schemas import decode
from ordersync.topics_admin import create_topics
from tests.db_checks import db_state, expected_state, matches, orders_without_their_contact
from tests.kafka_helpers import drain
from tests.processes import Proc, running, wait_for
from tests.shops import SECRETS, Shop, shop, stores_toml

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REBALANCING = {ConsumerGroupState.PREPARING_REBALANCING, ConsumerGroupState.COMPLETING_REBALANCING}


def group(admin: AdminClient, group_id: str) -> tuple[ConsumerGroupState, int]:
    described = admin.describe_consumer_groups([group_id])[group_id].result(30)
    return described.state, len(described.members)


class LiveChanges:
    """Changes both shops now and then (new orders, status changes) until stopped: the live traffic the
    workers process while partitions move."""

    def __init__(self, *shops: Shop) -> None:
        self.shops = shops
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.5):  # load pacing, not synchronisation
            for s in self.shops:
                s.tick(creates=3, updates=6)

    def __enter__(self) -> LiveChanges:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def worker(env: dict[str, str], config: Path, data_dir: Path, log: Path) -> Proc:
    args = ["process", "--config", str(config), "--data-dir", str(data_dir), "--loglevel", "warn"]
    return Proc(args, env, log)


@pytest.mark.timeout(1200)
def test_a_worker_joins_and_leaves_and_one_is_killed_mid_rebalance(
    subprocess_env: dict[str, str], topic_prefix: str, database_url: str, tmp_path: Path
) -> None:
    env = {**subprocess_env, **SECRETS, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "4",
           "ORDERSYNC_DATABASE_URL": database_url}  # fmt: skip
    bootstrap = env["ORDERSYNC_KAFKA_BOOTSTRAP"]
    group_id = f"{topic_prefix}processor"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(Settings.from_env(env))
    with shop("woocommerce", "w", env, tmp_path, orders=1500, seed=11) as woo, \
         shop("prestashop", "p", env, tmp_path, orders=1000, seed=12) as ps:  # fmt: skip
        config = stores_toml(tmp_path / "stores.toml", woo, ps, poll_interval_s=1)
        with config.open("a") as f:  # thank-yous and first orders only: what fires is decided by the data
            f.write(
                '\n[automations."1"]\nabandoned_after_h = 0\nwin_back_after_days = 0\nmarketing_needs_consent = false\n'
            )
        first = worker(env, config, tmp_path / "state-1", tmp_path / "w1.log")
        second: Proc | None = None
        try:
            with running(["sink"], env, tmp_path / "sink.log") as sink, \
                 running(["connect", "--config", str(config), "--follow"], env, tmp_path / "c.log") as connectors:  # fmt: skip
                history = expected_state({"w": woo.truth(), "p": ps.truth()})

                def landed() -> bool:
                    assert first.alive() and sink.alive() and connectors.alive()
                    try:
                        return not matches(db_state(database_url), history)
                    except psycopg.errors.UndefinedTable:  # the sink has not created its tables yet
                        return False

                wait_for(landed, 300, "the history in PostgreSQL", interval_s=2)
                began = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
                with LiveChanges(woo, ps):
                    # A second worker joins: partitions (and their tables) move to it. The first is
                    # killed while the group rebalances, and comes back on its own disk.
                    second = worker(env, config, tmp_path / "state-2", tmp_path / "w2.log")

                    # Killed as soon as the group starts moving partitions (or, on a quick machine where the
                    # rebalance is over before it is seen, as soon as the second worker is a member).
                    def moving() -> bool:
                        state, members = group(admin, group_id)
                        return state in REBALANCING or members == 2

                    wait_for(moving, 120, "a rebalance", interval_s=0.05)
                    first.kill()
                    first.close()
                    first = worker(env, config, tmp_path / "state-1", tmp_path / "w1b.log")
                    wait_for(lambda: group(admin, group_id) == (ConsumerGroupState.STABLE, 2), 180, "two workers")
                    progressed(database_url)  # live orders land while two workers share the partitions
                    # The second worker leaves: its partitions move back.
                    assert second.stop() == 0, second.output()[-2000:]
                    wait_for(lambda: group(admin, group_id) == (ConsumerGroupState.STABLE, 1), 180, "one worker")
                    progressed(database_url)
                woo.faults(live_paused=True)
                ps.faults(live_paused=True)
                want = expected_state({"w": woo.truth(), "p": ps.truth()})
                last: list[str] = []

                def converged() -> bool:
                    nonlocal last
                    assert first.alive(), first.output()[-3000:]
                    last = matches(db_state(database_url), want) + orders_without_their_contact(database_url)
                    return not last

                try:
                    wait_for(converged, 300, "PostgreSQL to equal the shops", interval_s=3)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: {last[:8]}") from None
                thanked = wait_thank_yous(database_url, began, first)
        finally:
            first.close()
            if second is not None:
                second.close()
    with psycopg.connect(database_url) as conn:
        created = conn.execute(
            "SELECT count(*), count(DISTINCT order_key) FROM activity WHERE type = 'ORDER_CREATED'"
        ).fetchone()
    assert created == (len(want), len(want))  # one creation per order, never two
    copies: dict[str, list[dict[str, Any]]] = {}
    for m in drain(bootstrap, f"{topic_prefix}triggers"):
        record = decode(m.value(), "trigger")
        copies.setdefault(record["trigger_id"], []).append(record)
    assert all(c == same[0] for same in copies.values() for c in same)  # a repeat is the same trigger
    thank_yous = [same[0]["order_key"] for same in copies.values() if same[0]["kind"] == "ORDER_THANK_YOU"]
    assert len(thank_yous) == len(set(thank_yous)) == len(thanked) > 0  # one per order, none missing
    assert set(thank_yous) == thanked


def progressed(url: str) -> None:
    def count() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        return int(row[0]) if row else 0

    before = count()
    wait_for(lambda: count() > before + 20, 120, "more live orders in PostgreSQL", interval_s=1)


def wait_thank_yous(url: str, began: dt.datetime, proc: Proc) -> set[str]:
    """The orders a live change completed (with a contact): each must be thanked once. Waits until the
    triggers table holds a thank-you for each; returns them."""
    query = (
        "SELECT DISTINCT a.order_key FROM activity a JOIN orders o USING (store_id, source_order_id)"
        " WHERE a.to_status = 'COMPLETED' AND a.occurred_at >= %s AND o.contact_id IS NOT NULL"
        " AND (a.from_status IS DISTINCT FROM 'COMPLETED')"
    )
    due: set[str] = set()

    def all_thanked() -> bool:
        nonlocal due
        assert proc.alive(), proc.output()[-3000:]
        with psycopg.connect(url) as conn:
            due = {r[0] for r in conn.execute(query, (began,))}
            fired = {r[0] for r in conn.execute("SELECT order_key FROM triggers WHERE kind = 'ORDER_THANK_YOU'")}
        return bool(due) and due <= fired

    wait_for(all_thanked, 120, "a thank-you for every order a live change completed", interval_s=2)
    return due

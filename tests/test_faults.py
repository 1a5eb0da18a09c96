"""Faults through the whole pipeline (``ordersync run``): a shop serving poison documents among its good
orders, an outage (503) longer than the HTTP retries, refused credentials (401), and a Kafka broker
restarted while webhooks arrive. At the end every good order is in PostgreSQL exactly once and as the
shop has it, every poison document is in PostgreSQL (cleaned) or in the dead-letter topic with a reason,
no process stopped for good, and /health showed the failing store while it failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ordersync.producers.simulators.woocommerce import POISONS
from ordersync.runtime.settings import Settings
from ordersync.stack import LocalKafka
from ordersync.topics_admin import create_topics
from tests.db_checks import db_state, expected_state, matches
from tests.kafka_helpers import drain
from tests.processes import free_port, http_json, running, wait_for
from tests.shops import SECRETS, shop, stores_toml


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        status, body = http_json(f"http://127.0.0.1:{port}/health")
    except OSError:
        return 0, {}
    return status, json.loads(body)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_poison_outages_and_a_broker_restart_lose_no_order(
    subprocess_env: dict[str, str], topic_prefix: str, database_url: str, tmp_path: Path
) -> None:
    local = Settings.from_env(
        {k: v for k, v in subprocess_env.items() if k not in ("ORDERSYNC_KAFKA_BOOTSTRAP", "ORDERSYNC_DATABASE_URL")}
    )
    kafka = LocalKafka(local)
    if kafka.pid() is None:
        pytest.skip("restarting the broker needs the local stack")
    env = {
        **subprocess_env, **SECRETS, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "2",
        "ORDERSYNC_DATABASE_URL": database_url, "ORDERSYNC_STORE_RETRY_MAX_S": "2",
        "ORDERSYNC_STORE_REFUSED_RETRY_S": "2", "ORDERSYNC_STORE_FAILING_AFTER_S": "3",
    }  # fmt: skip
    create_topics(Settings.from_env(env))
    hook_port, metrics_port = free_port(), free_port()
    hooks = ["--webhook-url", f"http://127.0.0.1:{hook_port}/webhooks/woocommerce/w", "--webhook-secret-env", "T_HOOK"]
    with (
        shop("woocommerce", "w", env, tmp_path, "--rate", "4", *hooks, orders=1500, seed=31) as woo,
        shop("prestashop", "p", env, tmp_path, "--rate", "4", orders=1000, seed=32) as ps,
    ):
        poisoned = woo.poison(*POISONS)
        config = stores_toml(tmp_path / "stores.toml", woo, ps, poll_interval_s=1)
        args = ["run", "--config", str(config), "--webhook-port", str(hook_port), "--metrics-port", str(metrics_port)]
        with running([*args, "--log-dir", str(tmp_path / "run")], env, tmp_path / "run.log") as proc:
            wait_for(lambda: health(metrics_port)[0] == 200 or not proc.alive(), 120, "ordersync run to be healthy")

            def store_w() -> dict[str, Any]:
                return dict(health(metrics_port)[1].get("stores", {}).get("w", {}))

            # An outage longer than the HTTP retries, then refused credentials: /health names the store.
            woo.faults(failing=503)
            wait_for(lambda: store_w().get("failing") or not proc.alive(), 120, "/health to show the outage")
            assert health(metrics_port)[0] == 503 and "HTTP 503" in store_w()["last_error"]
            woo.faults(failing=401)
            wait_for(lambda: "refused" in (store_w().get("last_error") or "") or not proc.alive(), 60, "the 401s")
            assert store_w()["failing"]
            woo.faults(failing=None)
            wait_for(lambda: health(metrics_port)[0] == 200 or not proc.alive(), 120, "the store to recover")
            # The broker goes away and comes back while the shop keeps sending webhooks.
            kafka.down()
            kafka.up()
            wait_for(lambda: health(metrics_port)[0] == 200 or not proc.alive(), 180, "health after the restart")
            woo.faults(live_paused=True)
            ps.faults(live_paused=True)
            truths = {"w": woo.truth(), "p": ps.truth()}
            bad = {str(oid) for oid in poisoned.values()}
            good = {k: v for k, v in expected_state(truths).items() if not (k[0] == "w" and k[1] in bad)}
            last: list[str] = []

            def converged() -> bool:
                nonlocal last
                state = {k: v for k, v in db_state(database_url).items() if not (k[0] == "w" and k[1] in bad)}
                last = matches(state, good)
                return not last

            wait_for(lambda: converged() or not proc.alive(), 300, "every good order in PostgreSQL", interval_s=3)
            assert not last, last[:10]
            assert proc.alive(), proc.output()
            assert woo.stats()["injected"] > 0
    dead = drain(env["ORDERSYNC_KAFKA_BOOTSTRAP"], f"{topic_prefix}dlq")
    assert all(dict(m.headers() or []).get("dlq.reason") for m in dead), "a dead letter without its reason"
    with psycopg.connect(database_url) as conn:
        landed = {r[0] for r in conn.execute("SELECT source_order_id FROM orders WHERE store_id = 'w'")}
        nul_item = conn.execute(
            "SELECT i.name, o.contact_email FROM order_items i JOIN orders o USING (store_id, source_order_id)"
            " WHERE store_id = 'w' AND source_order_id = %s ORDER BY item_id LIMIT 1",
            (str(poisoned["nul"]),),
        ).fetchone()
    for kind, oid in poisoned.items():
        lettered = [m for m in dead if m.key() == f"w:{oid}".encode() or f'"id":{oid},'.encode() in (m.value() or b"")]
        assert str(oid) in landed or lettered, f"poison {kind} (order {oid}) is neither in PostgreSQL nor dead-lettered"
    assert nul_item is not None and "\x00" not in nul_item[0]  # the NUL order landed, cleaned
    for kind in ("not_utf8", "deep"):  # unreadable as JSON: dead-lettered by the connector, bytes as received
        oid = poisoned[kind]
        letters = [m for m in dead if f'"id":{oid},'.encode() in (m.value() or b"")]
        assert letters and all(dict(m.headers() or [])["dlq.stage"] == b"connector" for m in letters)
        assert str(oid) not in landed

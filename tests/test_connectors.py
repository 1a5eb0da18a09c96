"""Connectors against the simulators and the real broker: backfill, resume after SIGKILL, polling,
webhooks, faults, bad input."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from ordersync.schemas import decode
from tests.kafka_helpers import drain, raw_order_records
from tests.processes import http_json, running, wait_for
from tests.shops import SECRETS, shop, sign, stores_toml, webhook_receiver
from tests.shops import WOO_SECRET as T_WOO_SECRET_VALUE


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str) -> dict[str, str]:
    return {**subprocess_env, **SECRETS, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "2"}


def raw_keys(bootstrap: str, topic: str) -> Counter[str]:
    if topic.endswith("raw.orders"):
        return Counter(key for key, _ in raw_order_records(bootstrap, topic))
    return Counter(m.key().decode() for m in drain(bootstrap, topic))


def connect(env: dict[str, str], config: Path, log: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    with running(["connect", "--config", str(config), *args], env, log) as proc:
        code = proc.wait(timeout)
        return code, proc.output()


@pytest.mark.parametrize(
    ("platform", "extra"),
    [("woocommerce", ()), ("prestashop", ("--typing", "strings")), ("prestashop", ("--typing", "ints"))],
)
def test_backfill_gives_every_order_exactly_once_plus_customers(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, platform: str, extra: tuple[str, ...]
) -> None:
    with shop(platform, "s1", env, tmp_path, *extra, orders=450, seed=11) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        code, output = connect(env, config, tmp_path / "connect.log")
        assert code == 0, output
        truth = s.truth()
    keys = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")
    assert set(keys) == {f"s1:{oid}" for oid in truth}
    assert len(keys) == 450
    events = [e for _, e in raw_order_records(kafka_bootstrap, f"{topic_prefix}raw.orders")]
    assert all(e["obtained_by"] == "BACKFILL" and e["list_id"] == "1" for e in events)
    if platform == "prestashop":
        assert all(e["context"]["currency_iso"] in ("EUR", "USD", "CHF") for e in events)
        assert all(e["context"]["order_state"]["name"] for e in events)
    assert any(
        e["context"]["product_categories"] and e["context"]["product_categories"][0]["categories"] for e in events
    )
    customers = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.customers")
    assert len(customers) == 150  # the simulator makes orders / 3 customers
    assert "published 450 orders and 150 customers" in output


def test_killed_backfill_resumes_without_missing_orders(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with shop("woocommerce", "w", env, tmp_path, "--latency-ms", "150", orders=5000, seed=5) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        with running(["connect", "--config", str(config)], env, tmp_path / "first.log") as first:
            # Kill once a checkpoint exists and the backfill is not finished.
            def checkpointed() -> bool:
                cursors = [decode(m.value()) for m in drain(kafka_bootstrap, f"{topic_prefix}connector-state")]
                return any(
                    c["stream"] == "ORDERS" and c["backfill_position"] and not c["backfill_complete"] for c in cursors
                )

            wait_for(lambda: not first.alive() or checkpointed(), 120, "a backfill checkpoint")
            assert first.alive(), "the backfill finished before it could be killed; make the shop slower"
            first.kill()
        before = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")
        assert 0 < len(before) < 5000
        s.faults(latency_s=0)
        code, output = connect(env, config, tmp_path / "second.log")
        assert code == 0, output
        truth = s.truth()
    keys = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")
    assert set(keys) == {f"w:{oid}" for oid in truth}
    # It resumed: the second run did not re-import the whole history.
    second_run = int(output.split("published ")[1].split(" orders")[0])
    assert second_run < 5000


def test_orders_trashed_during_the_backfill_do_not_hide_other_orders(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Trashing an order moves it out of ``status=any``: with offset paging every later order moves up
    one place and one is skipped. The backfill must still deliver every order (trashed ones too)."""
    with shop("woocommerce", "w", env, tmp_path, "--latency-ms", "150", orders=4000, seed=21) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        trashed: list[int] = []
        with running(["connect", "--config", str(config)], env, tmp_path / "connect.log") as proc:
            while proc.alive() and len(trashed) < 1000:
                trashed += s.tick(trashes=1)
                time.sleep(0.02)  # pacing the load (not synchronisation): trash orders all through the scan
            assert proc.wait(10) == 0, proc.output()
        truth = s.truth()
    assert len(trashed) > 30, "the shop trashed too few orders to exercise the scan"
    keys = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")
    missing = {f"w:{oid}" for oid in truth} - set(keys)
    assert not missing, f"{len(missing)} orders never published, e.g. {sorted(missing)[:5]}"


def test_customers_deleted_during_the_backfill_do_not_hide_other_customers(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The customers list pages only by offset: a deletion moves every later customer a place down."""
    orders = 4000  # the simulator makes orders // 3 customers, ids 1..n
    with shop("woocommerce", "w", env, tmp_path, "--latency-ms", "150", orders=orders, seed=22) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        deleted: list[int] = []
        with running(["connect", "--config", str(config)], env, tmp_path / "connect.log") as proc:
            while proc.alive() and len(deleted) < 600:
                deleted += s.delete_customers(1)
                time.sleep(0.02)  # pacing the load (not synchronisation): delete all through the scan
            assert proc.wait(10) == 0, proc.output()
    assert len(deleted) > 30, "the shop deleted too few customers to exercise the scan"
    published = set(raw_keys(kafka_bootstrap, f"{topic_prefix}raw.customers"))
    missing = {f"w:{cid}" for cid in range(1, orders // 3 + 1)} - {f"w:{cid}" for cid in deleted} - published
    assert not missing, f"{len(missing)} customers never published, e.g. {sorted(missing)[:5]}"


def test_woocommerce_customer_changes_without_a_webhook_are_found_by_the_rescan(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """WooCommerce cannot list customers changed since a time; its customer.updated webhooks can be
    missed (here they go nowhere). The periodic rescan publishes exactly the customers that changed."""
    with shop("woocommerce", "w", env, tmp_path, orders=300) as woo:
        customers = 300 // 3  # the simulator makes orders // 3 customers
        config = stores_toml(tmp_path / "stores.toml", woo, customer_rescan_s=1.0)
        with running(["connect", "--config", str(config), "--follow"], env, tmp_path / "follow.log") as proc:

            def events() -> list[dict[str, object]]:
                return [decode(m.value()) for m in drain(kafka_bootstrap, f"{topic_prefix}raw.customers")]

            wait_for(lambda: len(events()) >= customers or not proc.alive(), 120, "the customer backfill")
            edited = woo.update_customers(5)
            assert len(edited) == 5

            def rescanned() -> set[str]:
                return {str(e["source_customer_id"]) for e in events() if e["obtained_by"] == "POLL"}

            wait_for(lambda: {str(c) for c in edited} <= rescanned() or not proc.alive(), 60, "the rescan")
            assert proc.alive(), proc.output()
        assert rescanned() == {str(c) for c in edited}  # the unchanged customers were not sent again
        for cid in edited:
            latest = [json.loads(str(e["document"])) for e in events() if str(e["source_customer_id"]) == str(cid)][-1]
            backfilled = next(
                json.loads(str(e["document"]))
                for e in events()
                if str(e["source_customer_id"]) == str(cid) and e["obtained_by"] == "BACKFILL"
            )
            assert latest["billing"]["phone"] != backfilled["billing"]["phone"]


def test_polling_picks_up_changes_after_the_backfill(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with (
        shop("woocommerce", "w", env, tmp_path, orders=200) as woo,
        shop("prestashop", "p", env, tmp_path, orders=200, seed=2) as ps,
    ):
        config = stores_toml(tmp_path / "stores.toml", woo, ps)
        with running(["connect", "--config", str(config), "--follow"], env, tmp_path / "follow.log") as proc:
            wait_for(
                lambda: len(raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")) >= 400 or not proc.alive(),
                120,
                "backfill",
            )
            changed_w = woo.tick(creates=3, updates=4, trashes=1)
            changed_p = ps.tick(creates=2, updates=3)

            def polled() -> set[str]:
                return {
                    key
                    for key, e in raw_order_records(kafka_bootstrap, f"{topic_prefix}raw.orders")
                    if e["obtained_by"] == "POLL"
                }

            wanted = {f"w:{i}" for i in changed_w} | {f"p:{i}" for i in changed_p}
            wait_for(lambda: wanted <= polled() or not proc.alive(), 60, "polled changes")
            assert proc.alive(), proc.output()
            assert proc.stop() == 0
    deletes = [e for _, e in raw_order_records(kafka_bootstrap, f"{topic_prefix}raw.orders")]
    assert any(e["operation"] == "DELETE" and e["obtained_by"] == "POLL" for e in deletes)  # the trashed order


def test_429s_and_500s_are_survived(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with shop("woocommerce", "w", env, tmp_path, "--fail-rate", "0.3", orders=600, seed=3) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        code, output = connect(env, config, tmp_path / "connect.log")
        assert code == 0, output
        assert s.stats()["injected"] > 0
        truth = s.truth()
    assert set(raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")) == {f"w:{oid}" for oid in truth}
    assert "retry" in output


def test_html_error_pages_end_in_a_clear_error_and_no_cursor(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with shop("prestashop", "p", env, tmp_path, orders=50) as s:
        s.faults(next=[200] * 50)  # an HTML page with status 200, again and again
        config = stores_toml(tmp_path / "stores.toml", s)
        code, output = connect(env, config, tmp_path / "connect.log", timeout=240)
    assert code == 1
    assert "store p:" in output and "not JSON" in output and f"127.0.0.1:{s.port}/api/" in output
    cursors = [decode(m.value()) for m in drain(kafka_bootstrap, f"{topic_prefix}connector-state")]
    assert not any(c["stream"] == "ORDERS" and c["backfill_complete"] for c in cursors)


def test_wrong_credentials_fail_fast_without_leaking_them(env: dict[str, str], tmp_path: Path) -> None:
    with shop("woocommerce", "w", env, tmp_path, orders=10) as s:
        config = stores_toml(tmp_path / "stores.toml", s)
        code, output = connect({**env, "T_WOO_SECRET": "cs_wrong_value"}, config, tmp_path / "connect.log")
    assert code == 1 and "credentials refused" in output
    assert "cs_wrong_value" not in output


def test_webhooks_signed_ping_tampered(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with shop("woocommerce", "w", env, tmp_path, orders=5) as s, webhook_receiver(s, env, tmp_path) as (url, _):
        order = json.dumps({"id": 1001, "status": "completed", "date_modified_gmt": "2026-01-01T10:00:00",
                            "_links": {"self": [{"href": "https://shop/x"}]}}).replace("/", "\\/").encode()  # fmt: skip
        topic = {"X-WC-Webhook-Topic": "order.updated", "Content-Type": "application/json"}

        assert http_json(url, b"webhook_id=12", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 200
        assert http_json(url, order, {**topic, "X-WC-Webhook-Signature": sign(order)})[0] == 202
        tampered = order.replace(b"completed", b"cancelled")
        assert http_json(url, tampered, {**topic, "X-WC-Webhook-Signature": sign(order)})[0] == 401
        assert http_json(url, order, {**topic, "X-WC-Webhook-Signature": sign(order, "wrong")})[0] == 401
        assert http_json(url, order, topic)[0] == 401
        deleted = b'{"id":999002}'  # an order the shop does not have (any more): confirmed gone
        delete_headers = {"X-WC-Webhook-Topic": "order.deleted", "X-WC-Webhook-Signature": sign(deleted)}
        assert http_json(url, deleted, delete_headers)[0] == 202
        garbage = b"{not json"
        assert http_json(url, garbage, {**topic, "X-WC-Webhook-Signature": sign(garbage)})[0] == 400
        # Customers: WooCommerce cannot list customers changed since a time, so webhooks carry them.
        customer = json.dumps({"id": 77, "email": "ana@example.com", "first_name": "Ana",
                               "date_modified_gmt": "2026-01-02T09:00:00"}).encode()  # fmt: skip
        updated = {"X-WC-Webhook-Topic": "customer.updated", "X-WC-Webhook-Signature": sign(customer)}
        assert http_json(url, customer, updated)[0] == 202
        gone = b'{"id":78}'
        removed = {"X-WC-Webhook-Topic": "customer.deleted", "X-WC-Webhook-Signature": sign(gone)}
        assert http_json(url, gone, removed)[0] == 200  # acknowledged, ignored: the contact stays
        assert http_json(url, customer, {**updated, "X-WC-Webhook-Signature": sign(customer, "wrong")})[0] == 401
    events = [e for _, e in raw_order_records(kafka_bootstrap, f"{topic_prefix}raw.orders")]
    assert [(e["source_order_id"], e["operation"], e["obtained_by"]) for e in events] == [
        ("1001", "UPSERT", "WEBHOOK"),
        ("999002", "DELETE", "WEBHOOK"),
    ] or sorted((e["source_order_id"], e["operation"]) for e in events) == [("1001", "UPSERT"), ("999002", "DELETE")]
    assert events[0]["document"].encode() == order or events[1]["document"].encode() == order  # exactly as received
    dlq = drain(kafka_bootstrap, f"{topic_prefix}dlq")
    assert [m.value() for m in dlq] == [garbage]
    customers = [(m.key(), decode(m.value())) for m in drain(kafka_bootstrap, f"{topic_prefix}raw.customers")]
    assert [(k, e["source_customer_id"], e["obtained_by"], e["document"].encode()) for k, e in customers] == [
        (b"w:77", "77", "WEBHOOK", customer)
    ]


def test_a_failing_store_is_retried_forever_and_never_stops_the_others(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """An outage longer than the HTTP retries, then refused credentials: the store shows as failing in
    the health file and is tried again until it recovers; the other store keeps publishing meanwhile."""
    from ordersync.runtime.store_health import read

    health_file = tmp_path / "stores.health.json"
    patient = {**env, "ORDERSYNC_STORE_HEALTH_FILE": str(health_file), "ORDERSYNC_STORE_RETRY_MAX_S": "1",
               "ORDERSYNC_STORE_REFUSED_RETRY_S": "1"}  # fmt: skip
    with (
        shop("woocommerce", "w", env, tmp_path, orders=100) as woo,
        shop("prestashop", "p", env, tmp_path, orders=100, seed=2) as ps,
    ):
        config = stores_toml(tmp_path / "stores.toml", woo, ps, poll_interval_s=0.5)
        with running(["connect", "--config", str(config), "--follow"], patient, tmp_path / "follow.log") as proc:

            def published() -> set[str]:
                return set(raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders"))

            wait_for(lambda: len(published()) >= 200 or not proc.alive(), 120, "the backfill")
            woo.faults(failing=503)
            during = {f"p:{i}" for i in ps.tick(creates=2)}
            wait_for(lambda: during <= published() or not proc.alive(), 60, "the healthy store's new orders")

            def woo_health() -> tuple[int, str]:
                h = read(health_file).get("w")
                return (h.consecutive_failures, h.last_error or "") if h else (0, "")

            wait_for(lambda: woo_health()[0] >= 1 or not proc.alive(), 90, "the outage to show as failing")
            assert "HTTP 503" in woo_health()[1]
            woo.faults(failing=401)
            wait_for(lambda: "credentials refused" in woo_health()[1] or not proc.alive(), 60, "refused credentials")
            assert woo_health()[0] >= 2
            woo.faults(failing=None)
            after = {f"w:{i}" for i in woo.tick(creates=3)}
            wait_for(lambda: after <= published() or not proc.alive(), 90, "the recovered store's new orders")
            wait_for(lambda: woo_health()[0] == 0 or not proc.alive(), 30, "the store to show healthy again")
            assert proc.alive(), proc.output()
            assert T_WOO_SECRET_VALUE not in health_file.read_text()


class _Collector(http.server.BaseHTTPRequestHandler):
    """Another host a store redirects to: it records what reaches it."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *_: object) -> None:
        pass


def test_a_stores_bad_answers_fail_that_store_alone_and_keep_its_credentials(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """One shop redirects its product lookups to another host, one sends ``X-WP-Total: n/a``: each fails
    by itself with a message naming it, the login never reaches the other host, and the healthy shop's
    history is published in full."""
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        with (
            shop("woocommerce", "redirecting", env, tmp_path, orders=20) as redirecting,
            shop("woocommerce", "garbled", env, tmp_path, orders=20, seed=3) as garbled,
            shop("prestashop", "healthy", env, tmp_path, orders=50, seed=2) as healthy,
            shop("woocommerce", "huge", env, tmp_path, orders=20, seed=4) as huge,
        ):
            redirecting.faults(redirect_to=f"http://127.0.0.1:{collector.server_port}/steal")
            garbled.faults(headers={"X-WP-Total": "n/a"})
            # All digits, but past what int() reads (4,300): a ValueError that ended every store's connector.
            huge.faults(headers={"X-WP-Total": "9" * 5000})
            config = stores_toml(tmp_path / "stores.toml", redirecting, garbled, healthy, huge)
            code, output = connect(env, config, tmp_path / "connect.log")
            history = {f"healthy:{order_id}" for order_id in healthy.truth()}
    finally:
        collector.shutdown()
    assert code == 1, output
    assert "store redirecting: HTTP 302 redirects to another origin" in output, output
    assert "store garbled: unreadable X-WP-Total header 'n/a'" in output, output
    assert "store huge: unreadable X-WP-Total header '9999" in output, output
    assert not any("Authorization" in headers for headers in _Collector.seen), _Collector.seen
    assert T_WOO_SECRET_VALUE not in output
    published = raw_keys(kafka_bootstrap, f"{topic_prefix}raw.orders")
    assert {key for key in published if key.startswith("healthy:")} == history


def test_a_store_asking_to_wait_forever_is_asked_again_within_an_hour_and_shows_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`Retry-After: 1e308` stalled a connector silently while its health showed no failure. The wait is
    capped at an hour, and the health board says until when and why (the Stores page and /health read it)."""
    import json
    import time

    from ordersync.producers.http_client import _retry_after

    assert _retry_after("1e308") == 3600 and _retry_after("inf") == 3600 and _retry_after("nan") is None
    assert _retry_after("-5") == 0 and _retry_after("2") == 2 and _retry_after("Wed, 21 Oct 2015") is None
    health_file = tmp_path / "stores.health.json"
    with shop("woocommerce", "slow", env, tmp_path, orders=10) as slow:
        slow.faults(failing=429, headers={"Retry-After": "1e308"})
        config = stores_toml(tmp_path / "stores.toml", slow)
        args = ["connect", "--config", str(config), "--follow"]
        with running(args, {**env, "ORDERSYNC_STORE_HEALTH_FILE": str(health_file)}, tmp_path / "c.log") as proc:

            def waiting() -> bool:
                assert proc.alive(), proc.output()[-2000:]
                health = json.loads(health_file.read_text()) if health_file.exists() else {}
                return bool(health.get("slow", {}).get("waiting_until"))

            wait_for(waiting, 60, "the store's wait on the health board")
    slow_health = json.loads(health_file.read_text())["slow"]
    assert time.time() + 3000 < slow_health["waiting_until"] <= time.time() + 3600
    assert "HTTP 429" in slow_health["waiting_reason"] and "Retry-After" in slow_health["waiting_reason"]
    assert slow_health["failing_since"] is not None

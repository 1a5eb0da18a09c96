"""The webhook receiver against replayed, mislabelled, oversized and malformed deliveries (real broker).

WooCommerce signs the body only, not the topic header: a captured signed body must not become a
delete or a customer by changing the header."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ordersync.runtime.store_health import read as read_health
from ordersync.schemas import decode
from tests.kafka_helpers import drain
from tests.processes import http_json
from tests.shops import SECRETS, WOO_KEY, WOO_SECRET, Shop, shop, sign, webhook_receiver


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str) -> dict[str, str]:
    return {**subprocess_env, **SECRETS, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "1"}


@pytest.mark.broker
def test_mislabelled_replayed_oversized_and_malformed_deliveries(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {**env, "ORDERSYNC_STORE_HEALTH_FILE": str(tmp_path / "stores.health.json")}
    with shop("woocommerce", "w", env, tmp_path, orders=5) as s, webhook_receiver(s, env, tmp_path) as (url, proc):
        order = json.dumps({"id": 501, "status": "completed", "date_modified_gmt": "2026-01-01T10:00:00",
                            "billing": {"email": "ana@example.com"}, "line_items": []}).encode()  # fmt: skip

        def post(body: bytes, topic: str, delivery: str | None = None, signature: str | None = None) -> int:
            headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": signature or sign(body)}
            if delivery:
                headers["X-WC-Webhook-Delivery-ID"] = delivery
            return http_json(url, body, headers)[0]

        # The captured order body, relabelled: neither a delete nor a customer.
        assert post(order, "order.deleted") == 400
        assert post(order, "customer.updated") == 400
        # The same delivery twice: acknowledged twice, published once.
        assert read_health(tmp_path / "stores.health.json") == {}
        assert post(order, "order.updated", delivery="d-1") == 202
        assert read_health(tmp_path / "stores.health.json")["w"].last_webhook is not None  # for the Stores page
        assert post(order, "order.updated", delivery="d-1") == 200
        # A delete is confirmed with the store first and versioned by the store's time, never by the body:
        # an order the store no longer has is deleted as of the store's clock (its Date header) ...
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        deleted = b'{"id":502,"date_modified_gmt":"2026-01-03T08:00:00"}'
        assert post(deleted, "order.deleted", delivery="d-2") == 202
        # ... a trashed one as of its modification time in the trash ...
        (trashed,) = s.tick(trashes=1)
        assert post(f'{{"id":{trashed}}}'.encode(), "order.deleted") == 202
        trashed_at = next(o for o in _orders(s) if o["id"] == trashed)["date_modified_gmt"]
        # ... and a captured deletion body replayed for an order the store still has deletes nothing.
        live = next(o["id"] for o in _orders(s) if o["status"] != "trash")
        replayed = f'{{"id":{live}}}'.encode()
        assert post(replayed, "order.deleted", delivery="d-3") == 400
        # An id that is not a whole number is refused at the door.
        not_an_id = b'{"id":true,"status":"completed"}'
        assert post(not_an_id, "order.updated") == 400
        # Too big: refused before anything is parsed. A signature header that is not even ASCII: 401.
        huge = b'{"id":503,"status":"x","pad":"' + b"y" * (2 * 1024 * 1024) + b'"}'
        assert post(huge, "order.updated") == 413
        assert post(order, "order.updated", signature="sig\xff\xfe") == 401
        assert proc.alive(), proc.output()
    events = [decode(m.value()) for m in drain(kafka_bootstrap, f"{topic_prefix}raw.orders")]
    assert [(e["source_order_id"], e["operation"]) for e in events] == [
        ("501", "UPSERT"), ("502", "DELETE"), (str(trashed), "DELETE")]  # fmt: skip
    assert before <= events[1]["source_modified_at"] <= dt.datetime.now(dt.UTC)
    assert events[2]["source_modified_at"] == dt.datetime.fromisoformat(trashed_at).replace(tzinfo=dt.UTC)
    assert not drain(kafka_bootstrap, f"{topic_prefix}raw.customers")
    dlq = drain(kafka_bootstrap, f"{topic_prefix}dlq")
    assert [m.value() for m in dlq] == [order, order, replayed, not_an_id]
    reasons = [dict(m.headers() or [])["dlq.reason"].decode() for m in dlq]
    assert all("does not fit its topic" in r for r in reasons[:2]), reasons
    assert "which the store still has" in reasons[2] and "not a whole number" in reasons[3], reasons


def _orders(s: Shop) -> list[dict[str, Any]]:
    """The shop's orders as its REST API lists them (both the live ones and the trash)."""
    found: list[dict[str, Any]] = []
    for status in ("any", "trash"):
        url = f"{s.base_url}/wp-json/wc/v3/orders?status={status}&per_page=100"
        request = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            found.extend(json.loads(answer.read()))
    return found


@pytest.mark.broker
def test_a_body_that_never_finishes_is_cut_off(env: dict[str, str], tmp_path: Path) -> None:
    """A sender that announces a body and stops half-way gets a 408 after the body deadline, and the
    socket is closed: a few hundred of them cannot hold the receiver."""
    env = {**env, "ORDERSYNC_WEBHOOK_BODY_TIMEOUT_S": "1"}
    with shop("woocommerce", "w", env, tmp_path, orders=1) as s, webhook_receiver(s, env, tmp_path) as (url, _):
        parsed = urllib.parse.urlsplit(url)
        slow = [socket.create_connection((parsed.hostname, parsed.port), timeout=15) for _ in range(20)]
        for sock in slow:
            sock.sendall(
                f"POST {parsed.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'X-WC-Webhook-Topic: order.updated\r\nContent-Length: 1000\r\n\r\n{"id": 1'.encode()
            )
        for sock in slow:
            answer = sock.recv(200)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()


@pytest.mark.broker
def test_concurrent_webhooks_leave_in_batches_each_answered_after_kafka_and_in_order_per_order(
    env: dict[str, str], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.kafka_helpers import raw_order_records
    from tests.processes import http_json

    env = {**env, "ORDERSYNC_PARTITIONS": "2", "ORDERSYNC_WEBHOOK_LINGER_MS": "50"}
    orders, versions = 40, 4

    def body(order_id: int, version: int) -> bytes:
        doc = {"id": order_id, "status": "processing", "date_modified_gmt": f"2026-01-01T10:00:0{version}"}
        return json.dumps(doc).encode()

    with shop("woocommerce", "w", env, tmp_path, orders=5) as s, webhook_receiver(s, env, tmp_path) as (url, _):

        def send_versions(order_id: int) -> list[int]:  # one order's versions, each after the last was answered
            statuses = []
            for version in range(versions):
                data = body(order_id, version)
                headers = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Signature": sign(data)}
                statuses.append(http_json(url, data, headers)[0])
            return statuses

        with ThreadPoolExecutor(orders) as pool:
            statuses = [st for result in pool.map(send_versions, range(5000, 5000 + orders)) for st in result]
    assert statuses == [202] * (orders * versions)
    messages = drain(kafka_bootstrap, f"{topic_prefix}raw.orders")
    events = raw_order_records(kafka_bootstrap, f"{topic_prefix}raw.orders")
    assert len(events) == orders * versions  # every answered webhook is in Kafka
    assert len(messages) <= orders * versions // 4  # grouped: concurrent webhooks share messages
    for order_id in range(5000, 5000 + orders):
        seen = [json.loads(e["document"])["date_modified_gmt"] for k, e in events if k == f"w:{order_id}"]
        assert seen == sorted(seen) and len(seen) == versions  # one order's versions in the order sent

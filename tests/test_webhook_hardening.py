"""The webhook receiver against replayed, mislabelled, oversized and malformed deliveries (real broker).

WooCommerce signs the body only, not the topic header: a captured signed body must not become a
delete or a customer by changing the header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ordersync.runtime.store_health import read as read_health
from ordersync.schemas import decode
from tests.kafka_helpers import drain
from tests.processes import http_json
from tests.shops import SECRETS, shop, sign, webhook_receiver


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
        # A delete carrying the shop's modification time is versioned by it, not by our clock.
        deleted = b'{"id":502,"date_modified_gmt":"2026-01-03T08:00:00"}'
        assert post(deleted, "order.deleted", delivery="d-2") == 202
        # Too big: refused before anything is parsed. A signature header that is not even ASCII: 401.
        huge = b'{"id":503,"status":"x","pad":"' + b"y" * (2 * 1024 * 1024) + b'"}'
        assert post(huge, "order.updated") == 413
        assert post(order, "order.updated", signature="sig\xff\xfe") == 401
        assert proc.alive(), proc.output()
    events = [decode(m.value()) for m in drain(kafka_bootstrap, f"{topic_prefix}raw.orders")]
    assert [(e["source_order_id"], e["operation"]) for e in events] == [("501", "UPSERT"), ("502", "DELETE")]
    assert str(events[1]["source_modified_at"]) == "2026-01-03 08:00:00+00:00"
    assert not drain(kafka_bootstrap, f"{topic_prefix}raw.customers")
    dlq = drain(kafka_bootstrap, f"{topic_prefix}dlq")
    assert [m.value() for m in dlq] == [order, order]
    reasons = [dict(m.headers() or [])["dlq.reason"].decode() for m in dlq]
    assert all("does not fit its topic" in r for r in reasons), reasons

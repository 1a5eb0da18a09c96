"""Each caller's events are judged by their own delivery results (real broker): one store's failed event
never stops another store, and never lets its own cursor move past it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os

import pytest

from ordersync.producers.connector import Connector
from ordersync.producers.cursors import CursorStore
from ordersync.producers.publisher import Publisher, PublishError
from ordersync.producers.source import Page
from ordersync.producers.woocommerce import WooCommerceSource
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas import decode
from ordersync.schemas.topics import TopicNames
from tests.kafka_helpers import create_topic, drain, raw_order_records


def store(store_id: str) -> StoreConfig:
    return StoreConfig(id=store_id, platform="woocommerce", base_url="http://127.0.0.1:9", list_id="1")


def page_of(*order_ids: int, padding: int = 0) -> Page:
    # Random (incompressible) padding: the producer compresses with lz4.
    docs = [
        {
            "id": oid,
            "status": "processing",
            "date_modified_gmt": "2026-01-02T03:04:05",
            "note": base64.b64encode(os.urandom(padding)).decode(),
        }
        for oid in order_ids
    ]
    return Page([(json.dumps(d), d) for d in docs], "2026-01-02T03:04:05")


@pytest.mark.broker
def test_one_stores_failed_event_is_its_own_and_its_cursor_stays(kafka_bootstrap: str, topic_prefix: str) -> None:
    good = TopicNames.with_prefix(topic_prefix)
    # Store "a" publishes into a topic whose broker limit rejects its (large) events.
    tiny = dataclasses.replace(good, raw_orders=topic_prefix + "tiny.raw.orders")
    for name in (good.raw_orders, good.raw_customers, good.connector_state):
        create_topic(kafka_bootstrap, name, 1)
    create_topic(kafka_bootstrap, tiny.raw_orders, 1, {"max.message.bytes": "2000"})
    publisher = Publisher(kafka_bootstrap)
    cursors = CursorStore(kafka_bootstrap, good.connector_state, publisher)

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        a_store, b_store = store("a"), store("b")
        a = Connector(a_store, WooCommerceSource(a_store, None), publisher, cursors, tiny)  # type: ignore[arg-type]
        b = Connector(b_store, WooCommerceSource(b_store, None), publisher, cursors, good)  # type: ignore[arg-type]
        await a.publish_orders(page_of(1, padding=20_000), "POLL")
        await b.publish_orders(page_of(7, 8), "POLL")
        results = []
        for connector in (b, a):  # b saves first: with one shared error list it would take a's failure
            try:
                await connector.save(cursors.get(connector.store.id, "ORDERS").advanced(backfill_position="p"))
                results.append(None)
            except PublishError as exc:
                results.append(exc)
        return results[0], results[1]

    b_error, a_error = asyncio.run(scenario())
    assert b_error is None, f"store b failed because of store a's event: {b_error}"
    assert isinstance(a_error, PublishError)
    saved = {decode(m.value())["store_id"] for m in drain(kafka_bootstrap, good.connector_state)}
    assert saved == {"b"}, "store a's cursor moved past an event Kafka rejected"
    assert {key for key, _ in raw_order_records(kafka_bootstrap, good.raw_orders)} == {"b:7", "b:8"}

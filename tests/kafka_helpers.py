"""Small helpers for tests that read and write the real broker (no mocks)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType


def create_topic(bootstrap: str, name: str, partitions: int = 2, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    for future in futures.values():
        future.result(30)


def set_topic_config(bootstrap: str, name: str, config: dict[str, str]) -> None:
    """Change settings of an existing topic (the others stay as they are)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in config.items()]
    for future in admin.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)]
    ).values():
        future.result(30)


Headers = list[tuple[str, bytes]]


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, Headers]],
) -> None:
    """Produce (key, value) or (key, value, headers) records and wait until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value, *headers in records:
        producer.produce(topic, key=key, value=value, headers=headers[0] if headers else None)
    if producer.flush(30) != 0:
        raise AssertionError("produce did not complete within 30 s")


def consume_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Message]], bool],
    *,
    deadline_s: float = 60,
    isolation: str = "read_committed",
    alive: Callable[[], bool] | None = None,
) -> list[Message]:
    """Read ``topic`` from the beginning until ``done(messages)`` holds; fail at the deadline, or as soon
    as ``alive()`` (the process expected to produce the data) says it died."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    end = time.monotonic() + deadline_s
    try:
        while not done(messages):
            if time.monotonic() > end:
                raise AssertionError(f"{topic}: condition not met within {deadline_s}s; got {len(messages)} messages")
            if alive is not None and not alive():
                raise AssertionError(f"{topic}: the producing process died; got {len(messages)} messages")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().retriable() or msg.error().code() in (
                    KafkaError._PARTITION_EOF,
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                ):
                    continue
                raise KafkaException(msg.error())
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def drain(bootstrap: str, topic: str, *, deadline_s: float = 60, isolation: str = "read_committed") -> list[Message]:
    """Everything currently in ``topic``: every partition read from offset 0 to its end (EOF)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    at_end: set[int] = set()
    messages: list[Message] = []
    end = time.monotonic() + deadline_s
    try:
        while len(at_end) < len(partitions):
            if time.monotonic() > end:
                raise AssertionError(f"{topic}: did not reach the end of every partition within {deadline_s}s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def raw_order_records(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, raw_order_event) of every order event in a raw.orders topic, batches opened (docs/contract.md
    "Batches"), each partition in order."""
    from ordersync.schemas import decode

    out: list[tuple[str, dict[str, Any]]] = []
    for message in drain(bootstrap, topic):
        record = decode(message.value(), ("raw_order_event", "raw_order_batch"))
        for event in record.get("events", [record]):
            out.append((f"{event['store_id']}:{event['source_order_id']}", event))
    return out


def end_offsets(bootstrap: str, *topics: str) -> int:
    """The sum of the topics' high watermarks: what a consumer group that has read nothing lags by."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"end-offsets-{uuid.uuid4()}"})
    try:
        total = 0
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high
        return total
    finally:
        consumer.close()

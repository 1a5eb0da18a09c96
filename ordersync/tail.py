"""``ordersync tail``: print a topic's events as JSON lines, decoded with the contract's schemas."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from ordersync.runtime.settings import Settings
from ordersync.schemas import DecodeError, UnknownSchema, decode
from ordersync.schemas.json_view import to_json
from ordersync.schemas.topics import find


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def render(msg: Message, subject: str | None) -> dict[str, Any]:
    key = msg.key()
    value = msg.value()
    line: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_ms": msg.timestamp()[1],
        "key": _text(key),
    }
    headers = msg.headers()
    if headers:
        pairs = headers.items() if isinstance(headers, dict) else headers
        line["headers"] = {k: _text(v) for k, v in pairs}
    if subject is None or value is None:
        # Not an Avro topic (dead letters keep the original bytes) or a tombstone.
        line["value_raw"] = _text(value)
        return line
    try:
        line["value"] = decode(value)
    except DecodeError as exc:
        line["undecodable"] = exc.reason
        line["value_hex"] = value.hex()
    except UnknownSchema as exc:  # a viewer shows it; readers that write (processor, sink) stop on it
        line["undecodable"] = str(exc)
        line["value_hex"] = value.hex()
    return line


def messages(settings: Settings, topic: str, from_beginning: bool, idle_timeout: float | None) -> Iterator[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"ordersync-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    last = time.monotonic()
    try:
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise KafkaException(error)
            last = time.monotonic()
            yield msg
    finally:
        consumer.close()


def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    idle_timeout: float | None,
    out: TextIO = sys.stdout,
) -> int:
    spec = find(settings.topic_prefix, topic)
    full_name = settings.topic_prefix + spec.short_name if spec else topic
    subject = spec.value_subject if spec else "auto"
    count = 0
    for msg in messages(settings, full_name, from_beginning, idle_timeout):
        out.write(to_json(render(msg, subject)) + "\n")
        out.flush()
        count += 1
        if limit is not None and count >= limit:
            break
    return count

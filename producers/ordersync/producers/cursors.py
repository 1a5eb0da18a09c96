"""Connector cursors in the compacted connector-state topic, the way Kafka Connect keeps source offsets.

A cursor is written only after the events it covers were acknowledged (the publisher's flush), so a
killed connector resumes at or before where it was: re-sent events are harmless duplicates downstream.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ordersync.producers.publisher import Deliveries, Publisher
from ordersync.schemas import DecodeError, decode, encode


@dataclass(frozen=True)
class Cursor:
    store_id: str
    stream: str  # ORDERS or CUSTOMERS
    backfill_complete: bool = False
    backfill_position: str | None = None
    high_water_mark: dt.datetime | None = None
    published: int = 0

    @property
    def key(self) -> str:
        return f"{self.store_id}:{self.stream}"

    def advanced(self, **changes: Any) -> Cursor:
        return replace(self, **changes)

    def record(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "stream": self.stream,
            "backfill_complete": self.backfill_complete,
            "backfill_position": self.backfill_position,
            "high_water_mark": self.high_water_mark,
            "published": self.published,
            "updated_at": dt.datetime.now(dt.UTC),
        }


class CursorStore:
    def __init__(self, bootstrap: str, topic: str, publisher: Publisher) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.publisher = publisher
        self.cursors: dict[str, Cursor] = {}

    def load(self, timeout_s: float = 60) -> dict[str, Cursor]:
        """Read the whole topic (latest value per key wins)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"ordersync-cursor-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=timeout_s)
            partitions = list(metadata.topics[self.topic].partitions)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            done: set[int] = set()
            while len(done) < len(partitions):
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.add(msg.partition() or 0)
                    continue
                key = (msg.key() or b"").decode()
                if msg.value() is None:
                    self.cursors.pop(key, None)
                    continue
                try:
                    r = decode(msg.value(), "connector_cursor")
                except DecodeError:
                    continue  # not ours; the topic is ours alone, so this is only a defensive skip
                self.cursors[key] = Cursor(
                    r["store_id"],
                    r["stream"],
                    r["backfill_complete"],
                    r["backfill_position"],
                    r["high_water_mark"],
                    r["published"],
                )
        finally:
            consumer.close()
        return self.cursors

    def get(self, store_id: str, stream: str) -> Cursor:
        return self.cursors.get(f"{store_id}:{stream}") or Cursor(store_id, stream)

    async def save(self, cursor: Cursor, deliveries: Deliveries) -> None:
        """Persist ``cursor`` after (and only after) every event in ``deliveries`` (the events it
        covers: its store's) is acknowledged."""
        await self.publisher.wait(deliveries)
        self.publisher.publish(deliveries, self.topic, cursor.key, encode("connector_cursor", cursor.record()))
        await self.publisher.wait(deliveries)
        self.cursors[cursor.key] = cursor

    async def reset(self, store_id: str) -> None:
        deliveries = Deliveries()
        for stream in ("ORDERS", "CUSTOMERS"):
            await self.save(Cursor(store_id, stream), deliveries)

"""What Kafka says about the pipeline's progress, for the supervisor's metrics and the web app's Stores
page: end offsets, consumer lag per group, and the dead letters of a recent window. One admin client,
reused for every question."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from ordersync.schemas.dead_letters import REASON, SOURCE, STAGE


@dataclass
class DeadLetter:
    """One dead letter as the Stores page shows it."""

    at: float  # epoch seconds (the message's timestamp)
    store_id: str
    stage: str
    reason: str


@dataclass
class StoreDeadLetters:
    count: int = 0
    last: list[DeadLetter] = field(default_factory=list)  # newest first, a few


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


class KafkaStatus:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin: AdminClient | None = None

    def _kafka(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        """The next offset of every partition of ``topics`` that exist."""
        admin = self._kafka()
        metadata = admin.list_topics(timeout=5).topics
        wanted = [
            TopicPartition(t, p)
            for t in topics
            if t in metadata and metadata[t].error is None
            for p in metadata[t].partitions
        ]
        if not wanted:
            return {}
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = admin.list_offsets(dict.fromkeys(wanted, latest), request_timeout=5)
        return {tp: future.result().offset for tp, future in futures.items()}

    def lag(self, groups: dict[str, list[str]]) -> dict[str, int]:
        """Messages not yet consumed (committed) per consumer group (group id → the topics it reads)."""
        admin, out = self._kafka(), {}
        for group, topics in groups.items():
            ends = self.end_offsets(topics)
            request = [ConsumerGroupTopicPartitions(group, [TopicPartition(tp.topic, tp.partition) for tp in ends])]
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in admin.list_consumer_group_offsets(request)[group].result(5).topic_partitions
            }
            out[group] = sum(end - max(committed.get((tp.topic, tp.partition), 0), 0) for tp, end in ends.items())
        return out

    def dead_letters_since(self, topic: str, since: float, keep: int = 5) -> dict[str, StoreDeadLetters]:
        """Dead letters written after ``since`` (epoch seconds), per store: how many and the last few.
        The store is the ``dlq.source.store`` header (connectors, webhooks) or the key's prefix
        (``{store_id}:...``, the processor's)."""
        ends = self.end_offsets([topic])
        if not ends:
            return {}
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "ordersync-status", "enable.auto.commit": False}
        )
        try:
            starts = consumer.offsets_for_times(
                [TopicPartition(topic, tp.partition, int(since * 1000)) for tp in ends], 5
            )
            todo = {tp.partition: end for tp, end in ends.items()}
            assign = [tp for tp in starts if tp.offset >= 0 and tp.offset < todo[tp.partition]]
            if not assign:
                return {}
            consumer.assign(assign)
            remaining = {tp.partition: todo[tp.partition] for tp in assign}
            out: dict[str, StoreDeadLetters] = {}
            deadline = time.monotonic() + 10
            while remaining and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    if msg.error() is not None:
                        continue
                    part, offset = msg.partition() or 0, msg.offset() or 0
                    if offset + 1 >= remaining.get(part, 0):
                        remaining.pop(part, None)
                    raw_headers = msg.headers() or []
                    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
                    headers = {k: _text(v) for k, v in pairs}
                    key = (msg.key() or b"").decode("utf-8", "replace")
                    store = headers.get(SOURCE + "store") or key.partition(":")[0] or "?"
                    entry = out.setdefault(store, StoreDeadLetters())
                    entry.count += 1
                    letter = DeadLetter(
                        msg.timestamp()[1] / 1000, store, headers.get(STAGE, "?"), headers.get(REASON, "")
                    )
                    entry.last = sorted([letter, *entry.last], key=lambda d: -d.at)[:keep]
            return out
        finally:
            consumer.close()

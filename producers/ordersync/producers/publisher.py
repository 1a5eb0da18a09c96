"""Publishing raw events: an idempotent producer (acks=all) shared by every store of a process, and
``Deliveries``, the delivery results of one caller's events (one store's connector, one webhook
request). A caller waits for its own events only, so one store's failure never decides another's fate
and a cursor is only advanced past events Kafka holds."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

Headers = list[tuple[str, str | bytes | None]]


class PublishError(RuntimeError):
    """Kafka did not acknowledge some events; the cursor must not move past them."""


class Deliveries:
    """Counts one caller's events in flight and keeps the failures among them. Delivery callbacks run
    on whichever thread polls the producer, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self._failures: list[str] = []

    @property
    def pending(self) -> int:
        return self._pending

    def sent(self) -> None:
        with self._lock:
            self._pending += 1

    def on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            self._pending -= 1
            if error is not None:
                self._failures.append(str(error))

    def take_failures(self) -> list[str]:
        with self._lock:
            failures, self._failures = self._failures, []
        return failures


class Publisher:
    def __init__(self, bootstrap: str, **extra: Any) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
                "delivery.timeout.ms": 120_000,
                **extra,
            }
        )
        self._partitions: dict[str, int] = {}

    def publish(
        self,
        deliveries: Deliveries,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int = -1,
    ) -> None:
        """Queue one event (in ``partition``, or where its key belongs); its result is counted in ``deliveries``."""
        raw_key = key.encode() if isinstance(key, str) else key
        while True:
            try:
                self._producer.produce(
                    topic,
                    key=raw_key,
                    value=value,
                    headers=headers,
                    partition=partition,
                    on_delivery=deliveries.on_delivery,
                )
                deliveries.sent()
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (asked once per topic)."""
        if topic not in self._partitions:
            metadata = self._producer.list_topics(topic, timeout=30).topics[topic]
            if metadata.error is not None or not metadata.partitions:
                raise PublishError(f"{topic}: no partitions ({metadata.error})")
            self._partitions[topic] = len(metadata.partitions)
        return self._partitions[topic]

    def poll(self) -> None:
        self._producer.poll(0)

    def wait_sync(self, deliveries: Deliveries, timeout_s: float = 120) -> None:
        """Return once every event of ``deliveries`` is acknowledged; PublishError if one failed or
        they are not all answered within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while deliveries.pending > 0 and time.monotonic() < deadline:
            self._producer.poll(0.05)
        self._settled(deliveries, timeout_s)

    async def wait(self, deliveries: Deliveries, timeout_s: float = 120) -> None:
        """``wait_sync`` for the event loop: polls without blocking, a short sleep between polls (many
        requests wait at once; a thread each would cost more than the waiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while deliveries.pending > 0 and loop.time() < deadline:
            self._producer.poll(0)
            if deliveries.pending > 0:
                await asyncio.sleep(0.002)
        self._settled(deliveries, timeout_s)

    @staticmethod
    def _settled(deliveries: Deliveries, timeout_s: float) -> None:
        failures = deliveries.take_failures()
        if failures:
            raise PublishError(f"{len(failures)} events failed: {failures[0]}")
        if deliveries.pending > 0:
            raise PublishError(f"{deliveries.pending} events not acknowledged within {timeout_s:.0f}s")

    def close(self, timeout_s: float = 30) -> None:
        """Give queued events (another caller's too) their chance before the process ends."""
        self._producer.flush(timeout_s)

"""Publishing raw events: an idempotent producer (acks=all) whose flush tells whether every event so
far was acknowledged, so a cursor is only advanced past events Kafka holds."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


class PublishError(RuntimeError):
    """Kafka did not acknowledge some events; the cursor must not move past them."""


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
        self._failures: list[str] = []
        self.acked = 0

    def _on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
        else:
            self.acked += 1

    def publish(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain

    def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, str | bytes | None]]
    ) -> None:
        """Publish bytes as they are (dead letters), with headers."""
        self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush_sync(self, timeout_s: float = 120) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise PublishError(f"{remaining} events not acknowledged within {timeout_s:.0f}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(f"{len(failures)} events failed: {failures[0]}")

    async def flush(self, timeout_s: float = 120) -> None:
        await asyncio.to_thread(self.flush_sync, timeout_s)

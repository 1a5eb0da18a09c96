"""Every record the processor writes (outputs, its internal topic, table changelogs, dead letters) goes
through one librdkafka producer, and an offset is committed only once everything produced before the
commit began is acknowledged (ordersync.processors.delivery asks ``confirm`` before each commit).

Why not faust's own sends: faust's producer path costs a fixed ~200 µs of Python per record, which
capped the processor at a few hundred orders a second; librdkafka queues a record in microseconds.
docs/processor.md has the measurements.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


class OutputFailed(Exception):
    """A record was not acknowledged: nothing may be committed past the events that produced it."""


class OutputProducer:
    """The processor's one producer; ``confirm`` is the commit's gate."""

    def __init__(self, bootstrap: str, linger_ms: int = 20, **extra: Any) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,  # keeps each partition's order through retries
                "acks": "all",
                "linger.ms": linger_ms,
                "compression.type": "lz4",
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "delivery.timeout.ms": 60_000,
                # Kafka's Java-compatible partitioner, as faust used: a key keeps its partition across versions.
                "partitioner": "murmur2_random",
                **extra,
            }
        )
        self._next = 0  # sequence number of the next record
        self._low = 0  # every record below this sequence number is acknowledged
        self._done: set[int] = set()  # acknowledged records at or above _low
        # Why a record was not acknowledged (or why the worker must stop): never cleared. Once one output is
        # lost, no later commit may pass the events that produced it, whatever is acknowledged after.
        self._failures: list[str] = []
        self._on_stored: dict[tuple[str, int], int] = {}  # (topic, partition) → highest acknowledged offset
        self.watched_topics: set[str] = set()  # topics whose acknowledged offsets are reported to confirm's caller

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None, partition: int = -1
    ) -> None:
        callback = functools.partial(self._delivered, self._next)
        while True:
            try:
                self._producer.produce(
                    topic, value, key, partition=partition, headers=list(headers or ()), on_delivery=callback
                )
                break
            except BufferError:  # local queue full: serve deliveries until there is room
                self._producer.poll(0.05)
        self._next += 1

    def poll(self) -> None:
        """Serve delivery reports (cheap; called after each message)."""
        self._producer.poll(0)

    def _delivered(self, seq: int, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
        elif msg.topic() in self.watched_topics:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            tp = (topic or "", partition if partition is not None else -1)
            if offset is not None and offset > self._on_stored.get(tp, -1):
                self._on_stored[tp] = offset
        self._done.add(seq)
        while self._low in self._done:
            self._done.remove(self._low)
            self._low += 1

    def fail(self, reason: str) -> None:
        """Refuse every later commit of this process (an agent met an error it cannot dead-letter)."""
        self._failures.append(reason)

    @property
    def failed(self) -> bool:
        return bool(self._failures)

    @property
    def in_flight(self) -> int:
        """Records sent and not yet answered."""
        return self._next - self._low

    async def confirm(
        self, timeout_s: float = 90, on_stored: Callable[[dict[tuple[str, int], int]], None] | None = None
    ) -> None:
        """Return once every record sent before this call is acknowledged; OutputFailed if one was not, or
        if any record since the process started was not (failures are never forgotten: faust commits again
        while it shuts down after the crash, and that commit must not pass the lost record either)."""
        target = self._next
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._low < target and not self._failures:
            self._producer.poll(0)
            if asyncio.get_running_loop().time() > deadline:
                raise OutputFailed(f"{target - self._low} records not acknowledged within {timeout_s:.0f} s")
            await asyncio.sleep(0.002)
        if self._failures:
            raise OutputFailed(
                f"{len(self._failures)} failures, no commit until the worker restarts: {self._failures[0]}"
            )
        if on_stored is not None and self._on_stored:
            stored, self._on_stored = self._on_stored, {}
            on_stored(stored)

    def close(self, timeout_s: float = 30) -> None:
        """Give queued records their chance at shutdown."""
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("%d records still unacknowledged at shutdown (the next run produces them again)", left)

"""Concurrent webhooks grouped into raw order batches: a sale-day burst costs what a backfill page costs.

Each accepted order webhook's event waits here a few milliseconds (``linger_s``) for others; then the
events that share a raw.orders partition leave as one ``raw_order_batch`` message (docs/contract.md
"Batches"), in the order they arrived, and each request is answered once its batch is acknowledged by
Kafka (a failed batch fails every request in it: each gets a 503 and WooCommerce's retry, or the next
poll, brings it again). The processor's cost is per Kafka message, so at 1,000 webhooks/s this turns
1,000 messages/s into a few dozen.
"""

from __future__ import annotations

import asyncio
import uuid

from ordersync.producers.publisher import Deliveries, Publisher, PublishError
from ordersync.schemas.batches import MAX_BATCH_EVENTS, batch_of, by_partition


class OrderBatcher:
    """Publishes raw order events to one topic in batches; ``publish`` returns when its event is stored."""

    def __init__(self, publisher: Publisher, topic: str, linger_s: float = 0.02) -> None:
        self.publisher = publisher
        self.topic = topic
        self.linger_s = linger_s
        self._held: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._waits: set[asyncio.Task[None]] = set()

    async def publish(self, key: str, value: bytes) -> None:
        """Hold one encoded raw_order_event; PublishError if Kafka did not acknowledge its batch."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._held.append((key, value, done))
        if len(self._held) >= MAX_BATCH_EVENTS:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger_s, self.flush)
        await done

    def flush(self) -> None:
        """Send what is held: one message per partition (a single event stays a raw_order_event)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        if not held:
            return
        futures = {id(value): done for _, value, done in held}
        try:
            groups = by_partition([(key, value) for key, value, _ in held], self.publisher.partitions(self.topic))
        except PublishError as exc:
            for _, _, done in held:
                done.set_exception(exc)
            return
        for partition, group in groups:
            deliveries = Deliveries()
            if len(group) == 1:
                self.publisher.publish(deliveries, self.topic, group[0][0], group[0][1])
            else:  # keyed by its first event and placed where every one of its keys belongs, as a backfill page
                value = batch_of(str(uuid.uuid4()), [v for _, v in group])
                self.publisher.publish(deliveries, self.topic, group[0][0], value, partition=partition)
            task = asyncio.create_task(self._answer(deliveries, [futures[id(v)] for _, v in group]))  # noqa: RUF006 (kept in _waits)
            self._waits.add(task)
            task.add_done_callback(self._waits.discard)
        self.publisher.poll()

    async def _answer(self, deliveries: Deliveries, waiting: list[asyncio.Future[None]]) -> None:
        try:
            await self.publisher.wait(deliveries, 30)
        except PublishError as exc:
            for done in waiting:
                if not done.done():
                    done.set_exception(exc)
            return
        for done in waiting:
            if not done.done():
                done.set_result(None)

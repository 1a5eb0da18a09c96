"""The processor's commit guard: outputs that Kafka did not acknowledge stop the commit."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from faust.exceptions import ProducerSendError
from faust.types import TP

from ordersync.processors.delivery import checked_handle_attached, unacknowledged


class Attachments:
    def __init__(self, futures: list[asyncio.Future[Any]]) -> None:
        self.futures = futures

    async def publish_for_tp_offset(self, tp: TP, offset: int) -> list[asyncio.Future[Any]]:
        return self.futures


class Producer:
    async def wait_many(self, futures: list[asyncio.Future[Any]]) -> None:
        await asyncio.wait(futures)


def consumer_with(futures: list[asyncio.Future[Any]]) -> Any:
    return SimpleNamespace(app=SimpleNamespace(_attachments=Attachments(futures), producer=Producer()))


def test_all_acknowledged_lets_the_commit_go_on() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(3)]
        for fut in futures:
            fut.set_result("metadata")
        await checked_handle_attached(consumer_with(futures), {TP("raw.orders", 0): 41})
        assert unacknowledged(futures) == []

    asyncio.run(run())


def test_a_failed_send_stops_the_commit_with_the_reason() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        ok, failed = loop.create_future(), loop.create_future()
        ok.set_result("metadata")
        failed.set_exception(TimeoutError("broker gone"))
        with pytest.raises(ProducerSendError, match=r"1 of 2 outputs for raw.orders\[3\] up to offset 7.*broker gone"):
            await checked_handle_attached(consumer_with([ok, failed]), {TP("raw.orders", 3): 7})

    asyncio.run(run())


def test_cancelled_and_unfinished_sends_count_as_unacknowledged() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        cancelled, pending = loop.create_future(), loop.create_future()
        cancelled.cancel()
        assert unacknowledged([cancelled, pending]) == ["cancelled", "still in flight"]

    asyncio.run(run())


def test_a_failed_send_is_never_forgotten() -> None:
    """Once a record was not acknowledged, every later confirmation fails, also the one faust makes while
    it shuts down after the crash (the failure used to be cleared once reported, and that commit passed)."""
    from confluent_kafka import KafkaError

    from ordersync.processors.outputs import OutputFailed, OutputProducer

    class Refused:
        def topic(self) -> str:
            return "orders"

        def partition(self) -> int:
            return 0

    outputs = OutputProducer("127.0.0.1:1", log_level=0)  # never connects: deliveries are reported by hand
    outputs._next = 2  # two records sent; the broker refuses the first, acknowledges the second
    outputs._delivered(0, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), Refused())  # type: ignore[arg-type]
    outputs._delivered(1, None, Refused())  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(OutputFailed, match="no commit until the worker restarts"):
            asyncio.run(outputs.confirm(timeout_s=1))
    assert outputs.failed and outputs.in_flight == 0


def test_the_processor_consumer_waits_at_most_the_short_fetch_wait(kafka_bootstrap: str) -> None:
    """faust's own code builds the worker consumer (with its hard-coded 1.5 s wait) and aiokafka's own
    start builds the fetcher from it: the fetcher must hold the short wait, or an idle partition's fetch
    stalls the busy ones."""
    import faust

    from ordersync.processors.delivery import FETCH_MAX_WAIT_MS, short_fetch_wait

    async def run() -> None:
        app = faust.App(f"test-fetch-wait-{uuid.uuid4().hex}", broker=f"kafka://{kafka_bootstrap}")
        short_fetch_wait()
        consumer = app.consumer._thread._create_consumer(loop=asyncio.get_running_loop())
        await consumer.start()
        try:
            assert consumer._fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
        finally:
            await consumer.stop()

    asyncio.run(run())


def test_a_faust_upgrade_that_changes_the_patched_commit_path_fails_at_start(monkeypatch: Any) -> None:
    """The delivery gate replaces one of faust's private methods: an upgrade that renamed it, or stopped
    calling it before the commit, would commit unacknowledged outputs with no error. Checked at start."""
    from faust.transport.consumer import Consumer

    from ordersync.processors.delivery import FaustChanged, check_faust_shape

    check_faust_shape()  # the pinned version

    async def commit_without_the_gate(self: Any, tps: Any, start_new_transaction: bool) -> bool:
        return await self._commit_offsets(self._filter_committable_offsets(tps))

    monkeypatch.setattr(Consumer, "_commit_tps", commit_without_the_gate)
    with pytest.raises(FaustChanged, match="_commit_tps calls _handle_attached"):
        check_faust_shape()

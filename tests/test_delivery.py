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


def test_a_message_fetched_while_the_worker_gets_ready_is_kept(tmp_path: Any) -> None:
    """faust resumes flow when restoring its tables begins and again when the worker is ready, after
    seeking its stream partitions to their committed offsets; each resume emptied every agent's queue. A
    message fetched between the seek and the second resume was dropped while the consumer's position had
    moved past it: a restarted worker said "ready" and never handled that partition (seen under load, about
    1 run in 5 of the lost-position restore test). The same steps on the worker's real app and queues:
    what a rebalance left is dropped, what was fetched since is kept."""
    from ordersync.processors.app import ProcessorOptions, create_app

    app = create_app(ProcessorOptions("127.0.0.1:1", "p.", 2, 1, "app", tmp_path, {}))
    join = next(a for a in app.agents.values() if "p.processor.by-contact" in a.channel.topics)  # type: ignore[attr-defined]
    queue = join.channel.queue

    app.flow_control.suspend()  # a rebalance began
    queue.put_nowait("fetched for the revoked assignment")
    app.flow_control.resume()  # restoring the tables begins
    assert queue.qsize() == 0, "what was fetched before the rebalance must not be handled"
    queue.put_nowait("fetched after the seek to the committed offset")
    app.flow_control.resume()  # the worker is ready
    assert queue.qsize() == 1, "the second resume dropped a fetched message: its partition stalls"
    assert app.flow_control.is_active()


def test_a_fetch_returns_only_the_partitions_it_asked_for(kafka_bootstrap: str, monkeypatch: Any) -> None:
    """faust passes aiokafka its live set of active partitions, and aiokafka reads an empty set as "every
    partition". When restoring the tables ended, the set was empty for a moment (changelogs paused, streams
    not yet resumed): aiokafka handed over a stream partition's first record and moved its position past
    it, faust dropped it as not active, and its seek to the committed offset (0) did not move the position
    back: a restarted worker never read that partition. faust's own fetch, on a real consumer and broker."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as KafkaTP
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from ordersync.processors.delivery import fetch_only_active
    from tests.kafka_helpers import create_topic, produce

    topic = f"test-fetch-asked-{uuid.uuid4().hex}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    produce(kafka_bootstrap, topic, [(b"contact", b"the first item")])
    monkeypatch.setattr(AIOKafkaConsumerThread, "_fetch_records", AIOKafkaConsumerThread._fetch_records)
    fetch_only_active()
    thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))  # what _fetch_records reads of faust

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = KafkaTP(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            fetch = AIOKafkaConsumerThread._fetch_records
            assert await fetch(thread, consumer, set(), timeout=3.0, max_records=None) == {}  # type: ignore[arg-type]
            assert await consumer.position(tp) == 0, "a partition nobody asked for was read past its first record"
            got = await fetch(thread, consumer, {tp}, timeout=30.0, max_records=None)  # type: ignore[arg-type]
            assert [r.value for r in got[tp]] == [b"the first item"]
        finally:
            await consumer.stop()

    asyncio.run(run())

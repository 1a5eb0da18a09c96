"""Where the processor changes faust's private behaviour (checked against faust-streaming 0.15 and
aiokafka 0.14, pinned in pyproject.toml; tests/test_delivery.py runs faust's real code paths).

Commit only what Kafka acknowledged
-----------------------------------
Before faust commits source offsets it calls ``Consumer._handle_attached`` (meant to publish the sends
attached to those offsets). ``checked_handle_attached`` replaces it: first every record the output
producer (ordersync.processors.outputs) sent so far must be acknowledged, then faust's own attached sends (if
any) must have succeeded; faust's version logs a failed send and commits anyway, losing that output.
A failure raises ``ProducerSendError``, which faust answers by crashing the worker *before* the
commit. The supervisor restarts it and the uncommitted events are processed again; every output is
idempotent, so that is safe.

A short fetch wait
------------------
faust builds its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. aiokafka keeps one
fetch in flight per broker; when that fetch asks only for partitions with nothing new (an idle input, an
idle partition), the broker holds it for the whole wait, and the busy partitions are not fetched until it
returns: live orders stalled for up to 1.5 s every few seconds. ``short_fetch_wait`` caps the wait.

Fetch only the partitions asked for
-----------------------------------
faust hands aiokafka its live set of active partitions, which it keeps changing while the fetch waits, and
aiokafka takes an empty set for "every partition". When restoring the tables ended (the changelog
partitions paused, the stream partitions not yet resumed) the set was empty for a moment: aiokafka
returned a stream partition's records and moved its position past them, and faust dropped them as not
active. Its later seek to the committed offsets does not move a partition whose committed offset is 0 or
none, so those records were never read: a restarted worker said "ready" and never handled that partition
(about 1 restart in 5 under load). ``fetch_only_active`` passes a copy and fetches nothing for an empty one.

Keep what was fetched when flow resumes again
---------------------------------------------
faust's ``FlowControlEvent.resume`` empties every agent's queue, meant for what was buffered before a
rebalance. But faust resumes flow twice after one: when restoring its tables begins and again when the
worker is ready, after seeking the stream partitions to their committed offsets. A message fetched in
between (after that seek) was queued, then dropped by the second resume, while the consumer's position
had moved past it: the worker was "ready" and never handled its partition until the next rebalance.
``keep_fetched_on_resume`` empties the queues only when flow was really suspended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from ordersync.processors.outputs import OutputFailed, OutputProducer


class _Guard:
    outputs: OutputProducer | None = None
    on_stored: Callable[[dict[tuple[str, int], int]], None] | None = None
    on_confirmed: Callable[[dict[tuple[str, int], int]], None] | None = None
    before_confirm: Callable[[], None] | None = None


_guard = _Guard()


def unacknowledged(pending: list[asyncio.Future[Any]]) -> list[str]:
    """Why each send that did not succeed failed (empty when all were acknowledged)."""
    reasons = []
    for fut in pending:
        if not fut.done():
            reasons.append("still in flight")
        elif fut.cancelled():
            reasons.append("cancelled")
        elif fut.exception() is not None:
            reasons.append(repr(fut.exception()))
    return reasons


async def checked_handle_attached(self: Any, commit_offsets: Mapping[TP, int]) -> None:
    if _guard.before_confirm is not None:  # sends what the handlers of the acked events still hold
        _guard.before_confirm()
    if _guard.outputs is not None:
        try:
            await _guard.outputs.confirm(on_stored=_guard.on_stored)
        except OutputFailed as exc:
            raise ProducerSendError(f"not committing {dict(commit_offsets)}: {exc}") from exc
        if _guard.on_confirmed is not None:  # events below these offsets have every output acknowledged
            _guard.on_confirmed({(tp.topic, tp.partition): offset for tp, offset in commit_offsets.items()})
    for tp, offset in commit_offsets.items():
        pending = await self.app._attachments.publish_for_tp_offset(tp, offset)
        if not pending:
            continue
        await self.app.producer.wait_many(pending)
        failed = unacknowledged(pending)
        if failed:
            raise ProducerSendError(
                f"{len(failed)} of {len(pending)} outputs for {tp.topic}[{tp.partition}] up to offset {offset}"
                f" were not acknowledged ({failed[0]}); not committing"
            )


FETCH_MAX_WAIT_MS = 50  # the longest an idle partition can hold back the others

_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def _with_short_fetch_wait(self: Any, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
    # aiokafka reads it when the consumer starts (to build its fetcher), after faust created it.
    consumer._fetch_max_wait_ms = min(consumer._fetch_max_wait_ms, FETCH_MAX_WAIT_MS)
    return consumer


def short_fetch_wait() -> None:
    """Patch faust's consumer thread (process-wide) so its consumer waits at most FETCH_MAX_WAIT_MS."""
    AIOKafkaConsumerThread._create_worker_consumer = _with_short_fetch_wait  # type: ignore[method-assign]


_fetch_records = AIOKafkaConsumerThread._fetch_records


async def _fetch_asked(
    self: Any,
    consumer: Any,
    active_partitions: set[TP] | None,
    timeout: float | None = None,
    max_records: int | None = None,
) -> Any:
    if active_partitions is None:  # a client-only app: every partition (not the processor)
        every = active_partitions  # faust's own annotation omits the None its client-only mode passes
        return await _fetch_records(self, consumer, every, timeout=timeout, max_records=max_records)  # type: ignore[arg-type]
    asked = set(active_partitions)  # faust changes its own set while the fetch waits
    if not asked:
        return {}
    return await _fetch_records(self, consumer, asked, timeout=timeout, max_records=max_records)


def fetch_only_active() -> None:
    """Patch faust's consumer thread (process-wide) so a fetch returns only the partitions it asked for."""
    AIOKafkaConsumerThread._fetch_records = _fetch_asked  # type: ignore[method-assign]


def keep_fetched_on_resume(flow: FlowControlEvent) -> None:
    """Make ``flow.resume()`` (this app's flow control only) empty the queues only after a suspend."""

    def resume() -> None:
        if flow._suspend.is_set():  # what was queued before the rebalance: never handled
            FlowControlEvent.resume(flow)
        else:  # flowing already: the queues hold what was fetched since, at the positions now current
            flow._resume.set()

    flow.resume = resume  # type: ignore[method-assign]


class FaustChanged(RuntimeError):
    """The faust methods these patches replace or rely on no longer have the shape they were written for."""


def check_faust_shape() -> None:
    """Fail loudly at start, not silently at the first commit, when a faust upgrade changed what these
    patches assume: the commit path calls ``_handle_attached(commit_offsets)`` before committing and
    crashes on ``ProducerSendError``; the consumer thread builds its consumer in
    ``_create_worker_consumer(self, transport)``; aiokafka keeps the fetch wait in ``_fetch_max_wait_ms``;
    mode's flow control clears its queues in ``resume`` and keeps its state in ``_suspend``/``_resume``."""
    import inspect

    problems = []
    if list(inspect.signature(Consumer._handle_attached).parameters) != ["self", "commit_offsets"]:
        problems.append("Consumer._handle_attached(self, commit_offsets)")
    if not inspect.iscoroutinefunction(Consumer._handle_attached):
        problems.append("Consumer._handle_attached is a coroutine")
    commit = inspect.getsource(Consumer._commit_tps)
    if "self._handle_attached(commit_offsets)" not in commit or "ProducerSendError" not in commit:
        problems.append("Consumer._commit_tps calls _handle_attached and crashes on ProducerSendError")
    if list(inspect.signature(_create_worker_consumer).parameters) != ["self", "transport"]:
        problems.append("AIOKafkaConsumerThread._create_worker_consumer(self, transport)")
    if "_fetch_max_wait_ms" not in inspect.getsource(AIOKafkaConsumer.__init__):
        problems.append("aiokafka's AIOKafkaConsumer keeps _fetch_max_wait_ms")
    fetch = ["self", "consumer", "active_partitions", "timeout", "max_records"]
    if list(inspect.signature(_fetch_records).parameters) != fetch:
        problems.append(
            "AIOKafkaConsumerThread._fetch_records(self, consumer, active_partitions, timeout, max_records)"
        )
    resume = inspect.getsource(FlowControlEvent.resume)
    if "self._suspend.clear()" not in resume or "self.clear()" not in resume:
        problems.append("mode's FlowControlEvent.resume clears _suspend and the queues")
    if problems:
        raise FaustChanged(
            "faust or aiokafka changed under ordersync.processors.delivery's patches; no longer true: "
            + "; ".join(problems)
            + ". Check the new version's commit path before running (pyproject pins faust-streaming)."
        )


def install(
    outputs: OutputProducer | None = None,
    on_stored: Callable[[dict[tuple[str, int], int]], None] | None = None,
    on_confirmed: Callable[[dict[tuple[str, int], int]], None] | None = None,
    before_confirm: Callable[[], None] | None = None,
) -> None:
    """Patch faust's consumer (process-wide; the processor is the only faust app in its process).
    ``before_confirm`` runs first at each commit: the place to send records held back for batching."""
    check_faust_shape()
    _guard.outputs, _guard.on_stored, _guard.on_confirmed = outputs, on_stored, on_confirmed
    _guard.before_confirm = before_confirm
    Consumer._handle_attached = checked_handle_attached  # type: ignore[method-assign]
    short_fetch_wait()
    fetch_only_active()

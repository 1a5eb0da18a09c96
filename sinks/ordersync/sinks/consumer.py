"""The sink's Kafka side: read orders, activity and contacts (read_committed), batch, write, repeat.

Offsets live in PostgreSQL (``sink_offsets``), written in the batch's transaction; on every partition
assignment the consumer seeks to them. Kafka's own committed offsets are not used for correctness.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ordersync.runtime import heartbeat
from ordersync.schemas import DecodeError, decode
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.headers import read_order_headers
from ordersync.schemas.records import Activity, Attribution, CampaignEvent, Contact, Order, Trigger
from ordersync.schemas.topics import Wiring
from ordersync.sinks.handoff import Handoff
from ordersync.sinks.migrate import migrate
from ordersync.sinks.reconnect import Reconnecting
from ordersync.sinks.writer import Batch, Staged, WriteResult, claim, stage, stored_offsets
from ordersync.sinks.writer_process import BatchRefused, WriterProcess

log = logging.getLogger(__name__)
R = TypeVar("R")


@contextlib.contextmanager
def collect_rarely() -> Iterator[None]:
    """Hold the cyclic garbage collector off (until the block ends). Decoded records hold no reference
    cycles, yet a batch of them is thousands of live containers that every pass of the collector walks
    again: that cost a third of decoding time. Refcounting still frees the batches."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class SinkAlreadyRunning(RuntimeError):
    """A sink with the same consumer name already writes to this database."""


@dataclass(frozen=True)
class SinkOptions:
    bootstrap: str
    database_url: str
    topic_prefix: str
    consumer_name: str  # the Kafka group id and the key of this sink's rows in sink_offsets
    batch_size: int = 5000
    batch_wait_s: float = 0.05  # a batch waits at most this long for more messages (latency vs. batch size)
    retry_max_s: float = 10.0
    input_prefix: str | None = None  # where campaign events are imported, if not under topic_prefix (a replay)


@dataclass(frozen=True)
class Unstaged:
    """A batch with a value PostgreSQL's types refuse (formatting it for COPY failed): written one
    message at a time instead, each refused one dead-lettered."""

    offsets: dict[tuple[str, int], int]
    reason: str


class PostgresSink:
    def __init__(self, opts: SinkOptions) -> None:
        self.opts = opts
        wiring = Wiring.with_prefix(opts.input_prefix or opts.topic_prefix, opts.topic_prefix)
        self.topics = {topic: str(wiring.subject(topic)) for topic in wiring.sink_reads}
        self.dlq_topic = wiring.outputs.dlq
        self.suppressed_topic = wiring.outputs.triggers_suppressed
        self._stop = threading.Event()
        self._db = Reconnecting(opts.database_url, retry_max_s=opts.retry_max_s)  # offsets, migrations
        self._writer: WriterProcess | None = None  # while run() runs
        self._assigned_at: float | None = None  # idle-exit counts only once partitions are ours
        # Bumped by every rebalance callback: a consume() call during which it changed may return
        # messages fetched for the previous assignment (confluent-kafka-python#1013), whose offsets
        # must never be stored. Such a batch is dropped and the partitions re-seeked.
        self._generation = 0
        self._assigned: set[tuple[str, int]] = set()
        self._batch = Batch()
        self._batch_messages: list[Message] = []  # the current batch's, for writing them one by one
        # Order messages whose headers give their version, undecoded, per (Kafka key, deleted): only the
        # newest of each is decoded at flush (the batch keeps only the newest anyway).
        self._held_orders: dict[tuple[bytes, bool], list[tuple[int, int, Message]]] = {}
        self._handoff: Handoff[tuple[Staged | Unstaged, list[Message]]] | None = (
            None  # passes batches to the writer process, while run() runs
        )
        self._adapters: psycopg.Cursor[Any] | None = None  # formats rows for COPY; never runs a statement
        self.totals = {"orders": 0, "activities": 0, "contacts": 0, "batches": 0, "dead_letters": 0}
        self.consumer = Consumer(
            {
                "bootstrap.servers": opts.bootstrap,
                "group.id": opts.consumer_name,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",  # eager: every rebalance revokes everything
                "fetch.max.bytes": 52428800,
                "fetch.min.bytes": 262144,
                "fetch.wait.max.ms": 50,
                # A sink killed without leaving the group holds its partitions until the session times out.
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 2000,
            }
        )
        self.dlq = Producer({"bootstrap.servers": opts.bootstrap, "enable.idempotence": True, "acks": "all"})
        self._dead_letter_failures: list[str] = []

    # -- PostgreSQL ---------------------------------------------------------------------------------
    def _with_retry(self, what: str, action: Callable[[psycopg.Connection[Any]], R]) -> R:
        """PostgreSQL gone away (restart, failover): reconnect with backoff until it is back or we stop."""
        return self._db.run(what, action, give_up=self._stop.is_set)

    def _write_counted(self, handed: tuple[Staged | Unstaged, list[Message]]) -> None:
        assert self._writer is not None, "writes happen inside run()"
        staged, messages = handed
        if isinstance(staged, Unstaged):
            result = self._write_one_by_one(messages, staged.offsets, staged.reason)
        else:
            try:
                result = self._writer.write(staged)
            except BatchRefused as exc:
                result = self._write_one_by_one(messages, staged.offsets, str(exc))
        self.totals["orders"] += result.orders
        self.totals["activities"] += result.activities
        self.totals["contacts"] += result.contacts
        self.totals["batches"] += 1

    def _write_one_by_one(
        self, messages: list[Message], offsets: dict[tuple[str, int], int], reason: str
    ) -> WriteResult:
        """PostgreSQL refused a batch: write its messages one at a time (versions make that equal to the
        batch), dead-letter each one it refuses, then store the batch's offsets. Rare, so slow is fine."""
        assert self._writer is not None
        log.warning("PostgreSQL refused a batch (%s): writing its %d messages one by one", reason, len(messages))
        adapters = self._with_retry("connect", lambda conn: conn.cursor())  # not the reading thread's
        written = [0, 0, 0]
        for msg in messages:
            single = Batch()
            self._add_to(single, msg, first_pass=False)
            single.offsets = {}
            try:
                result = self._writer.write(stage(single, adapters))
            except (BatchRefused, psycopg.DataError) as exc:
                self._dead_letter(msg, f"refused by PostgreSQL: {type(exc).__name__}: {exc}")
                continue
            written = [written[0] + result.orders, written[1] + result.activities, written[2] + result.contacts]
        self._confirm_dead_letters()
        self._writer.write(stage(Batch(offsets=offsets, messages=1), adapters))
        return WriteResult(*written)

    def _drain(self) -> None:
        """Wait for the batches handed to the writer: the stored offsets are then current."""
        if self._handoff is not None:
            self._handoff.drain()

    # -- Kafka --------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()
        offsets = self._with_retry("seek", lambda conn: stored_offsets(conn, self.opts.consumer_name))
        for tp in partitions:
            tp.offset = offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions))
        consumer.assign(partitions)
        self._generation += 1
        self._assigned = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned_at = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Unwritten messages are dropped, not lost: their offsets were not stored, so whoever owns the
        # partitions next (maybe us) reads them again from the offsets in PostgreSQL.
        self._drop_batch()
        self._drain()  # what was handed over is written while the partitions are still ours
        consumer.unassign()
        self._generation += 1
        self._assigned = set()
        self._assigned_at = None

    def _reseek(self, dropped: int) -> None:
        """A rebalance happened inside consume(): drop what it returned and restart every assigned
        partition from the offsets in PostgreSQL (nothing was written since the assignment)."""
        log.info("rebalance during consume: dropping %d messages and re-seeking", dropped)
        self._drop_batch()
        assignment = self.consumer.assignment()
        if assignment:
            self._on_assign(self.consumer, assignment)

    def _dead_letter(self, msg: Message, reason: str) -> None:
        self.totals["dead_letters"] += 1
        log.warning("dead letter from %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        headers = dead_letter_headers(
            reason, "sink", topic=msg.topic() or "", partition=msg.partition() or 0, offset=msg.offset() or 0
        )
        self.dlq.produce(
            self.dlq_topic,
            key=msg.key(),
            value=msg.value(),
            headers=list(headers),
            on_delivery=self._dead_letter_delivered,
        )

    def _dead_letter_delivered(self, error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            self._dead_letter_failures.append(str(error))

    def _add(self, msg: Message) -> None:
        self._batch_messages.append(msg)
        self._add_to(self._batch, msg, first_pass=True)

    def _add_to(self, batch: Batch, msg: Message, *, first_pass: bool) -> None:
        """Decode ``msg`` into ``batch``. On the first pass newest-version orders are held undecoded and
        a message that does not decode is dead-lettered; a second pass (one by one) skips it."""
        topic = msg.topic() or ""
        subject = self.topics[topic]
        batch.messages += 1
        tp = (topic, msg.partition() or 0)
        batch.offsets[tp] = max(batch.offsets.get(tp, 0), (msg.offset() or 0) + 1)
        value = msg.value()
        if value is None and subject == "attribution":  # the order is credited to nothing any more
            order_key = (msg.key() or b"").decode()
            batch.attributions = [a for a in batch.attributions if a["order_key"] != order_key]
            batch.unattributed.add(order_key)
            return
        if value is None and subject not in ("order", "contact"):
            return  # no tombstones are written there: nothing to forget
        if value is None:  # a tombstone on a compacted topic: forget the key
            key = (msg.key() or b"").decode()
            first, _, rest = key.partition(":")
            (batch.purged_orders if subject == "order" else batch.purged_contacts).append((first, rest))
            return
        if subject == "order" and first_pass and self._hold_newest(msg):
            return
        try:
            record = decode(value, subject)
        except DecodeError as exc:
            if first_pass:
                self._dead_letter(msg, exc.reason)
            return
        if subject == "order":
            batch.orders.append(cast(Order, record))
        elif subject == "activity":
            batch.activities.append(cast(Activity, record))
        elif subject == "trigger" and topic == self.suppressed_topic:
            batch.suppressed_triggers.append(cast(Trigger, record))
        elif subject == "trigger":
            batch.triggers.append(cast(Trigger, record))
        elif subject == "campaign_event":
            batch.campaign_events.append(cast(CampaignEvent, record))
        elif subject == "attribution":
            batch.attributions.append(cast(Attribution, record))
            batch.unattributed.discard(record["order_key"])
        else:
            batch.contacts.append(cast(Contact, record))

    def _hold_newest(self, msg: Message) -> bool:
        """Keep an order message undecoded if its headers say its version and whether it is a delete."""
        hint = read_order_headers(msg.headers())
        key = msg.key()
        if hint is None or key is None:
            return False
        version, deleted = hint
        self._held_orders.setdefault((key, deleted), []).append((version, msg.offset() or 0, msg))
        return True

    def _decode_held(self) -> None:
        """Decode the newest held message of each key (a later one wins a tie, as in latest_by). One that
        does not decode goes to the dead-letter topic and the next newest is tried."""
        for held in self._held_orders.values():
            for _, _, msg in sorted(held, key=lambda h: (h[0], h[1]), reverse=True):
                try:
                    self._batch.orders.append(cast(Order, decode(msg.value(), "order")))
                    break
                except DecodeError as exc:
                    self._dead_letter(msg, exc.reason)
        self._held_orders = {}

    def _drop_batch(self) -> None:
        self._batch = Batch()
        self._batch_messages = []
        self._held_orders = {}

    def _confirm_dead_letters(self) -> None:
        """Raise unless every dead letter so far is acknowledged: offsets must not pass an unsent one."""
        # flush() == 0 only says nothing is queued any more: a failed dead letter leaves the queue too.
        unanswered = self.dlq.flush(30)
        failures, self._dead_letter_failures = self._dead_letter_failures, []
        if unanswered or failures:
            reason = failures[0] if failures else f"{unanswered} not answered within 30 s"
            raise RuntimeError(f"dead letters were not acknowledged by Kafka ({reason}); not advancing offsets")

    def flush(self) -> None:
        """Format the current batch and hand it to the writer (which may be a batch behind)."""
        batch = self._batch
        if not batch.messages:
            return
        self._decode_held()
        self._confirm_dead_letters()
        messages, self._batch, self._batch_messages = self._batch_messages, Batch(), []
        assert self._handoff is not None and self._adapters is not None, "flush() runs inside run()"
        try:
            staged: Staged | Unstaged = stage(batch, self._adapters)
        except psycopg.DataError as exc:  # a value PostgreSQL cannot take: found and dead-lettered one by one
            staged = Unstaged(batch.offsets, f"{type(exc).__name__}: {exc}")
        self._handoff.submit((staged, messages))

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, *, idle_exit_s: float | None = None, install_signals: bool = True) -> dict[str, int]:
        """Consume until SIGTERM/SIGINT (or ``idle_exit_s`` without messages), flushing on the way out."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self._with_retry("migrate", lambda conn: migrate(self.opts.database_url))
        # Any cursor carries the type adapters COPY formatting needs, even once its connection is gone.
        self._adapters = self._with_retry("connect", lambda conn: conn.cursor())
        name = self.opts.consumer_name
        generation = self._with_retry("claim", lambda conn: claim(conn, name))
        if generation is None:
            raise SinkAlreadyRunning(
                f"another sink named {name!r} is writing to this database: run one sink per database "
                "(or give each its own --consumer-name for its own topics, as a replay does)"
            )
        self._writer = WriterProcess(self.opts.database_url, name, self.opts.retry_max_s, generation)
        self._handoff = Handoff(self._write_counted)
        self.consumer.subscribe(list(self.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_message = time.monotonic()
        batch_started = time.monotonic()
        try:
            with collect_rarely():
                while not self._stop.is_set():
                    heartbeat.beat()
                    generation = self._generation
                    messages = self.consumer.consume(num_messages=self.opts.batch_size, timeout=self.opts.batch_wait_s)
                    if generation != self._generation and messages:
                        self._reseek(len(messages))
                        continue
                    for msg in messages:
                        error = msg.error()
                        if error is not None:
                            if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                                continue
                            if error.retriable():
                                log.warning("kafka: %s", error)
                                continue
                            raise KafkaException(error)
                        if (msg.topic(), msg.partition()) not in self._assigned:
                            continue  # from a revoked assignment: its next owner reads it
                        if not self._batch.messages:
                            batch_started = time.monotonic()
                        self._add(msg)
                        last_message = time.monotonic()
                    full = self._batch.messages >= self.opts.batch_size
                    waited = time.monotonic() - batch_started >= self.opts.batch_wait_s
                    if self._batch.messages and (full or waited or not messages):
                        self.flush()
                    if idle_exit_s is not None and self._assigned_at is not None:
                        quiet_since = max(last_message, self._assigned_at)
                        if time.monotonic() - quiet_since > idle_exit_s and not self._batch.messages:
                            break
                self.flush()
        finally:
            handoff, self._handoff = self._handoff, None
            try:
                if handoff is not None:
                    handoff.close()
            finally:
                self._writer.close()
                self._writer = None
                self.consumer.close()
                self._db.close()
        return self.totals

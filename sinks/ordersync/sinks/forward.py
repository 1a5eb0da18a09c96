"""Triggers to the tool that sends the messages: each one POSTed as JSON, signed, retried, many at once.

At least once: a trigger's offset is committed only after the destination answered 2xx to the POST
itself, or after the trigger's dead letter was acknowledged by Kafka, so a forwarder killed mid-POST
sends that trigger again after its restart; the receiver deduplicates on ``trigger_id`` (also in the
``X-Ordersync-Trigger-Id`` header). Many triggers are in flight at once, but one contact's (one Kafka
key's) one at a time, in the order they fired. A redirect is never followed: a POST answered 3xx is a
misconfigured URL, and the trigger goes to the dead-letter topic naming where it was sent. docs/contract.md
"Forwarding triggers" describes the request and how to check its signature.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ordersync.schemas import DecodeError, decode
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.signatures import SIGNATURE, sign

log = logging.getLogger(__name__)

TRIGGER_ID = "X-Ordersync-Trigger-Id"
READ_AHEAD = 16  # triggers read per one in flight, at most, so that lanes never wait for the broker
RETRYABLE = {408, 425, 429}  # and every 5xx; any other answer is the destination refusing this trigger


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot encode {type(value).__name__}")


def payload(trigger: Mapping[str, Any]) -> bytes:
    """The request body: the trigger as JSON, amounts as decimal strings, times in UTC (ISO 8601)."""
    return json.dumps(trigger, default=_json, ensure_ascii=False, separators=(",", ":")).encode()


def retryable(status: int | None) -> bool:
    """None: no answer (refused, reset, timed out)."""
    return status is None or status >= 500 or status in RETRYABLE


def backoff(attempt: int, first_s: float, max_s: float) -> float:
    return float(min(max_s, first_s * 2 ** (attempt - 1)))


def plain_http_elsewhere(url: str) -> bool:
    """An ``http://`` URL to a host that is not this machine: triggers (personal data) cross the network
    unencrypted, and such URLs often redirect to https, which a POST must not follow."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


@dataclass
class Destination:
    """Where triggers go and how hard to try."""

    name: str
    url: str
    secret: bytes
    attempts: int = 8
    timeout_s: float = 10.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    in_flight: int = 64  # triggers being delivered at once (each contact's one at a time)


@dataclass
class ForwardHealth:
    """Per destination: what the Sync health page shows (written to PostgreSQL by the CLI)."""

    delivered: int = 0
    dead_lettered: int = 0
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str | None = None


# The destination's health, for the Sync health page; counts are this run's (they start at 0 again).
SAVE_HEALTH = """
INSERT INTO trigger_destinations AS d
    (name, delivered, dead_lettered, last_success, failing_since, last_error, updated_at)
VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s, now())
ON CONFLICT (name) DO UPDATE SET delivered = EXCLUDED.delivered, dead_lettered = EXCLUDED.dead_lettered,
    last_success = EXCLUDED.last_success, failing_since = EXCLUDED.failing_since,
    last_error = EXCLUDED.last_error, updated_at = now()
"""


@dataclass
class Outcome:
    """One attempt: the status (None: no answer), what went wrong, and for a redirect where to."""

    status: int | None
    problem: str = ""
    location: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def redirected(self) -> bool:
        return self.status is not None and 300 <= self.status < 400


class OffsetTracker:
    """Which consumed offsets are finished, per partition, and so how far each may be committed: up to the
    first one that is not (triggers finish out of order when many are in flight). Thread-safe: finished
    from the event loop, committed from the consumer's rebalance callback too."""

    def __init__(self) -> None:
        self._open: dict[int, set[int]] = {}
        self._next: dict[int, int] = {}  # one past the highest consumed offset
        self._lock = threading.Lock()

    def consumed(self, partition: int, offset: int) -> None:
        with self._lock:
            self._open.setdefault(partition, set()).add(offset)
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: int, offset: int) -> None:
        with self._lock:
            self._open.get(partition, set()).discard(offset)

    def committable(self, partitions: set[int] | None = None) -> dict[int, int]:
        """Per partition, the offset to commit (the next one to read after a restart)."""
        with self._lock:
            return {
                p: min(self._open[p]) if self._open.get(p) else end
                for p, end in self._next.items()
                if partitions is None or p in partitions
            }

    def forget(self, partitions: set[int]) -> None:
        with self._lock:
            for p in partitions:
                self._open.pop(p, None)
                self._next.pop(p, None)

    @property
    def open(self) -> int:
        with self._lock:
            return sum(len(o) for o in self._open.values())


@dataclass
class Lane:
    """One Kafka key's triggers: delivered one after the other, in the order they were read."""

    partition: int
    waiting: deque[Message] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


async def post(session: aiohttp.ClientSession, destination: Destination, body: bytes, trigger_id: str) -> Outcome:
    """One attempt, redirects not followed (a client that follows one turns the POST into a GET)."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE: sign(destination.secret, int(time.time()), body),
        TRIGGER_ID: trigger_id,
        "User-Agent": "ordersync-triggers",
    }
    try:
        async with session.post(destination.url, data=body, headers=headers, allow_redirects=False) as response:
            await response.read()
            if 200 <= response.status < 300:
                return Outcome(response.status)
            return Outcome(response.status, f"HTTP {response.status}", response.headers.get("Location"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Outcome(None, f"no answer: {type(exc).__name__}: {exc}")


class TriggerForwarder:
    """Reads the triggers topic as one consumer group per destination and POSTs each trigger."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        group: str,
        destination: Destination,
        on_health: Callable[[ForwardHealth], None] | None = None,
    ) -> None:
        self.destination = destination
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.health = ForwardHealth()
        self.on_health = on_health or (lambda _: None)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        self.stopping = False
        self.offsets = OffsetTracker()
        self._lanes: dict[bytes | None, Lane] = {}
        self._revoked: set[int] = set()  # by the rebalance callback, for the event loop to drop
        self._failure: BaseException | None = None
        self._quiet_since: float | None = None  # since the last trigger or assignment (None: not yet assigned)
        self._slots = asyncio.Semaphore(destination.in_flight)  # triggers being delivered, at most

    def run(self, idle_exit_s: float | None = None) -> ForwardHealth:
        """Forward until stopped (or idle this long). A trigger written with a schema this version does not
        know raises UnknownSchema, uncommitted: upgrade the forwarder first (docs/contract.md). A dead
        letter Kafka does not acknowledge stops it (KafkaException), its trigger uncommitted."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            asyncio.run(self._forward_all(idle_exit_s))
        finally:
            self.producer.flush(30)
            self.consumer.close()
        return self.health

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._quiet_since = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Runs inside consume(): commit what is finished before another member takes these partitions.
        # What is still in flight is dropped here and delivered again by the new owner (same ids).
        revoked = {tp.partition for tp in partitions if tp.topic == self.topic}
        self._commit(revoked)
        self.offsets.forget(revoked)
        self._revoked |= revoked

    async def _forward_all(self, idle_exit_s: float | None) -> None:
        timeout = aiohttp.ClientTimeout(total=self.destination.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.destination.in_flight)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            last_commit = time.monotonic()
            self._slots = asyncio.Semaphore(self.destination.in_flight)
            # Read ahead of what is in flight, up to a bound: paused there (consume() still keeps the
            # group membership alive) and resumed at half, since a resume fetches again from the broker.
            most, paused = self.destination.in_flight * READ_AHEAD, False
            try:
                while not self.stopping and self._failure is None:
                    held = self.offsets.open
                    pause = held > most // 2 if paused else held >= most
                    if pause != paused:
                        paused = pause
                        self._flow(not paused)
                    messages = await asyncio.to_thread(self.consumer.consume, max(1, most - held), 0.2)
                    self._drop_revoked()
                    for msg in messages:
                        self._take(session, msg)
                    if messages:
                        self._quiet_since = time.monotonic()
                    if time.monotonic() - last_commit >= 1.0:
                        await asyncio.to_thread(self._commit, None)
                        last_commit = time.monotonic()
                    if self._idle(idle_exit_s):
                        break
            finally:
                for lane in self._lanes.values():
                    if lane.task is not None:
                        lane.task.cancel()
                await asyncio.gather(*(lane.task for lane in self._lanes.values() if lane.task), return_exceptions=True)
                self._commit(None)
        if self._failure is not None:
            raise self._failure

    def _idle(self, idle_exit_s: float | None) -> bool:
        quiet = self._quiet_since
        return (
            idle_exit_s is not None
            and quiet is not None
            and self.offsets.open == 0
            and time.monotonic() - quiet > idle_exit_s
        )

    def _flow(self, open_: bool) -> None:
        assignment = self.consumer.assignment()
        if assignment:
            (self.consumer.resume if open_ else self.consumer.pause)(assignment)

    def _commit(self, partitions: set[int] | None) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.offsets.committable(partitions).items()]
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    raise

    def _drop_revoked(self) -> None:
        if not self._revoked:
            return
        revoked, self._revoked = self._revoked, set()
        for key, lane in list(self._lanes.items()):
            if lane.partition in revoked:
                if lane.task is not None:
                    lane.task.cancel()
                del self._lanes[key]

    def _take(self, session: aiohttp.ClientSession, msg: Message) -> None:
        if msg.error():
            raise KafkaException(msg.error())
        partition = msg.partition() or 0
        self.offsets.consumed(partition, msg.offset() or 0)
        lane = self._lanes.setdefault(msg.key(), Lane(partition))
        lane.waiting.append(msg)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drive(session, msg.key(), lane))

    async def _drive(self, session: aiohttp.ClientSession, key: bytes | None, lane: Lane) -> None:
        """Deliver a lane's triggers one after the other until it is empty."""
        try:
            while lane.waiting:
                msg = lane.waiting[0]
                async with self._slots:
                    await self._forward(session, msg)
                lane.waiting.popleft()
                self.offsets.finished(msg.partition() or 0, msg.offset() or 0)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a dead letter not acknowledged: stop, its trigger uncommitted
            self._failure = exc
            return
        finally:
            lane.task = None
        if self._lanes.get(key) is lane:
            del self._lanes[key]

    async def _forward(self, session: aiohttp.ClientSession, msg: Message) -> None:
        try:
            trigger = decode(msg.value(), "trigger")
        except DecodeError as exc:
            await self._dead(msg, f"not a trigger: {exc.reason}")
            return
        body = payload(trigger)
        attempt = 0
        while True:
            attempt += 1
            outcome = await post(session, self.destination, body, trigger["trigger_id"])
            if outcome.delivered:
                self.health.delivered += 1
                self.health.last_success = time.time()
                self.health.failing_since = None
                self.on_health(self.health)
                return
            self.health.last_error = outcome.problem
            self.health.failing_since = self.health.failing_since or time.time()
            self.on_health(self.health)
            if outcome.redirected:  # the URL is wrong, not the trigger: say where it points
                where = outcome.location or "no Location"
                await self._dead(msg, f"{self.destination.name}: {outcome.problem} redirect to {where} (not followed)")
                return
            if not retryable(outcome.status) or attempt >= self.destination.attempts:
                await self._dead(msg, f"{self.destination.name}: {outcome.problem} after {attempt} attempts")
                return
            wait = backoff(attempt, self.destination.first_backoff_s, self.destination.max_backoff_s)
            log.warning(
                "trigger %s to %s: %s; attempt %d of %d, next in %.1f s",
                trigger["trigger_id"], self.destination.name, outcome.problem, attempt, self.destination.attempts, wait,
            )  # fmt: skip
            await asyncio.sleep(wait)

    async def _dead(self, msg: Message, reason: str) -> None:
        """The trigger to the dead-letter topic; returns once Kafka acknowledged it, else raises."""
        headers = dead_letter_headers(
            reason, "forward", topic=msg.topic() or "", partition=msg.partition() or 0, offset=msg.offset() or 0
        )
        loop = asyncio.get_running_loop()
        landed: asyncio.Future[None] = loop.create_future()

        def report(err: KafkaError | None, _: Message) -> None:
            def settle() -> None:
                if landed.done():
                    return
                if err is None:
                    landed.set_result(None)
                else:
                    landed.set_exception(KafkaException(f"the dead letter was not written: {err}"))

            loop.call_soon_threadsafe(settle)

        self.producer.produce(self.dlq_topic, msg.value(), msg.key(), headers=list(headers), on_delivery=report)
        while not landed.done():  # delivery reports are served by poll()
            await asyncio.to_thread(self.producer.poll, 0.1)
        await landed
        self.health.dead_lettered += 1
        self.on_health(self.health)
        log.error("trigger at %s[%d]@%d dead-lettered: %s", msg.topic(), msg.partition(), msg.offset(), reason)

"""Triggers to the tool that sends the messages: each one POSTed as JSON, signed, retried, in order.

At least once: a trigger's offset is committed only after the destination answered 2xx or the trigger
went to the dead-letter topic, so a forwarder killed mid-POST sends that trigger again after its
restart; the receiver deduplicates on ``trigger_id`` (also in the ``X-Ordersync-Trigger-Id`` header).
One trigger at a time per forwarder: a contact's triggers (one partition) arrive in the order they
fired. docs/contract.md "Forwarding triggers" describes the request and how to check its signature.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer

from ordersync.schemas import DecodeError, decode
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.signatures import SIGNATURE, sign

log = logging.getLogger(__name__)

TRIGGER_ID = "X-Ordersync-Trigger-Id"
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


def post(destination: Destination, body: bytes, trigger_id: str) -> tuple[int | None, str]:
    """One attempt: the status (None: no answer) and a one-line description of what went wrong."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE: sign(destination.secret, int(time.time()), body),
        TRIGGER_ID: trigger_id,
        "User-Agent": "ordersync-triggers",
    }
    request = urllib.request.Request(destination.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=destination.timeout_s) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"no answer: {type(reason).__name__}: {reason}"


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

    def run(self, idle_exit_s: float | None = None, sleep: Callable[[float], None] = time.sleep) -> ForwardHealth:
        """Forward until stopped (or idle this long). A trigger written with a schema this version does not
        know raises UnknownSchema, uncommitted: upgrade the forwarder first (docs/contract.md)."""
        quiet_since: float | None = None  # since the last trigger or assignment (None: not yet assigned)

        def on_assign(consumer: Consumer, partitions: list[Any]) -> None:
            nonlocal quiet_since
            quiet_since = time.monotonic()

        self.consumer.subscribe([self.topic], on_assign=on_assign)
        try:
            while not self.stopping:
                msg = self.consumer.poll(0.5)
                if msg is None:
                    if (
                        idle_exit_s is not None
                        and quiet_since is not None
                        and time.monotonic() - quiet_since > idle_exit_s
                    ):
                        break
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                self._forward(msg, sleep)
                self.consumer.commit(message=msg, asynchronous=False)
                quiet_since = time.monotonic()
        finally:
            self.producer.flush(30)
            self.consumer.close()
        return self.health

    def _forward(self, msg: Message, sleep: Callable[[float], None]) -> None:
        try:
            trigger = decode(msg.value(), "trigger")
        except DecodeError as exc:
            self._dead(msg, f"not a trigger: {exc.reason}")
            return
        body = payload(trigger)
        attempt = 0
        while not self.stopping:
            attempt += 1
            status, problem = post(self.destination, body, trigger["trigger_id"])
            if status is not None and 200 <= status < 300:
                self.health.delivered += 1
                self.health.last_success = time.time()
                self.health.failing_since = None
                self.on_health(self.health)
                return
            self.health.last_error = problem or f"HTTP {status}"
            self.health.failing_since = self.health.failing_since or time.time()
            self.on_health(self.health)
            if not retryable(status) or attempt >= self.destination.attempts:
                self._dead(msg, f"{self.destination.name}: {self.health.last_error} after {attempt} attempts")
                return
            wait = backoff(attempt, self.destination.first_backoff_s, self.destination.max_backoff_s)
            log.warning(
                "trigger %s to %s: %s; attempt %d of %d, next in %.1f s",
                trigger["trigger_id"], self.destination.name, problem or f"HTTP {status}", attempt,
                self.destination.attempts, wait,
            )  # fmt: skip
            sleep(wait)
        raise InterruptedError("stopped before the trigger was delivered")  # not committed: sent again

    def _dead(self, msg: Message, reason: str) -> None:
        headers = dead_letter_headers(
            reason, "forward", topic=msg.topic() or "", partition=msg.partition() or 0, offset=msg.offset() or 0
        )
        self.producer.produce(self.dlq_topic, msg.value(), msg.key(), headers=list(headers))
        if self.producer.flush(30) != 0:
            raise KafkaException("the dead letter was not acknowledged within 30 s")
        self.health.dead_lettered += 1
        self.on_health(self.health)
        log.error("trigger at %s[%d]@%d dead-lettered: %s", msg.topic(), msg.partition(), msg.offset(), reason)

"""The processor's agents: each reads one topic, hands records to the pure stages and sends what they
return. faust's cost is per Kafka message, so each message carries as much as it can: a raw message may
hold a batch of orders, and what one message forwards to the contact stage leaves as one message per
destination partition.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import faust
from faust.types import EventT

from processors import envelope
from processors.contacts import customer_alias, customer_modified_at, hint_from_customer, new_contact
from processors.dead_letters import DeadLetterCounter
from processors.join import Outputs, on_alias, on_contact, on_hint, on_order
from processors.model import ContactHint
from processors.order_stage import step_order
from processors.outputs import OutputProducer
from processors.values import NormaliseError
from processors.watchdog import Watchdog
from runtime import heartbeat
from schemas import DecodeError, EncodeError, decode, encode
from schemas.dead_letters import dead_letter_headers
from schemas.headers import order_headers
from schemas.identity import contact_id, contact_key, normalise_email
from schemas.partitioning import murmur2_partition
from schemas.records import Activity, Order, RawOrderBatch, RawOrderEvent

if TYPE_CHECKING:
    from processors.app import Topology

log = logging.getLogger(__name__)

# What a store document or a record can raise when it does not fit: the event is dead-lettered.
BAD_EVENT_ERRORS = (NormaliseError, EncodeError, AttributeError, ArithmeticError, KeyError, TypeError, ValueError)
# Records of one message are told apart by position = offset * SLOTS + index (docs/processor.md).
SLOTS = 1 << 16
RAW_ORDER_SUBJECTS = ("raw_order_event", "raw_order_batch")


def _headers(event: EventT[bytes]) -> list[tuple[str, bytes]]:
    headers = event.message.headers or []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs]


class DeadLetters:
    """The one way an agent gives up on a record: its bytes to ``dlq`` with the reason in headers."""

    def __init__(self, outputs: OutputProducer, topic: str) -> None:
        self._outputs = outputs
        self._topic = topic
        self.counter = DeadLetterCounter()

    def send(
        self,
        event: EventT[bytes],
        stage: str,
        reason: str,
        key: bytes | None = None,
        value: bytes | None = None,
        **where: int,
    ) -> None:
        """``key``/``value``: one record of a batch message (default: the whole message)."""
        msg = event.message
        total = self.counter.add(stage)
        log.warning(
            "dead letter #%d (%s) from %s[%d]@%d: %s", total, stage, msg.topic, msg.partition, msg.offset, reason
        )
        headers = [
            *_headers(event),
            *dead_letter_headers(reason, stage, topic=msg.topic, partition=msg.partition, offset=msg.offset, **where),
        ]
        self._outputs.send(self._topic, msg.key if key is None else key, msg.value if value is None else value, headers)


class Forwarder:
    """Collects what one message hands to the contact stage, then sends one message per partition."""

    def __init__(self, outputs: OutputProducer, topic: str, partitions: int) -> None:
        self._outputs = outputs
        self._topic = topic
        self._partitions = partitions
        self._by_partition: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    def add(self, key: str, item: dict[str, Any]) -> None:
        partition = murmur2_partition(key.encode(), self._partitions)
        self._by_partition.setdefault(partition, []).append((key, item))

    def flush(self) -> None:
        for partition, items in self._by_partition.items():
            for start in range(0, len(items), SLOTS - 1):
                value = envelope.dumps(items[start : start + SLOTS - 1])
                self._outputs.send(self._topic, None, value, partition=partition)
        self._by_partition.clear()


class HintedContacts:
    """Contact keys this worker already sent a hint for. A later hint for the same key would find the
    contact created by the first (same partition, read in order), so it is not sent. Lost on restart,
    which only means sending such hints again."""

    def __init__(self, size: int = 250_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (as far as this memory goes)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


class Emitter:
    """Sends stage results to the output topics."""

    def __init__(self, outputs: OutputProducer, topology: Topology) -> None:
        self._outputs = outputs
        self._orders = topology.outputs.orders
        self._activity = topology.outputs.activity
        self._contacts = topology.outputs.contacts

    def order(self, order: Order, value: bytes) -> None:
        self._outputs.send(self._orders, order["order_key"].encode(), value, order_headers(order))

    def activity(self, activity: Activity, value: bytes) -> None:
        self._outputs.send(self._activity, activity["order_key"].encode(), value)

    def all(self, out: Outputs) -> None:
        for order in out.orders:
            self.order(order, encode("order", order))
        for activity in out.activities:
            self.activity(activity, encode("activity", activity))
        for contact in out.contacts:
            key = contact_key(contact["list_id"], contact["email"]).encode()
            self._outputs.send(self._contacts, key, encode("contact", contact))


def register(
    app: faust.App, topology: Topology, outputs: OutputProducer, overrides: Mapping[str, Mapping[str, str]]
) -> None:
    watchdog = Watchdog()
    dead = DeadLetters(outputs, topology.outputs.dlq)
    forward = Forwarder(outputs, topology.by_contact.get_topic_name(), app.conf.topic_partitions)
    emit = Emitter(outputs, topology)
    hinted = HintedContacts()
    order_state = topology.order_state

    def decoded(event: EventT[bytes], subjects: tuple[str, ...]) -> dict[str, Any] | None:
        """The event's record, or None once it went to the dead-letter topic."""
        try:
            return decode(event.value, subjects)
        except DecodeError as exc:
            dead.send(event, "decode", exc.reason)
            return None

    def order_events(event: EventT[bytes]) -> tuple[list[RawOrderEvent], bool]:
        """The message's raw order events, and whether it was a batch."""
        record = decoded(event, RAW_ORDER_SUBJECTS)
        if record is None:
            return [], False
        if "events" in record:
            return cast(RawOrderBatch, record)["events"], True
        return [cast(RawOrderEvent, record)], False

    def handle_order(event: EventT[bytes], raw: RawOrderEvent, index: int, batched: bool) -> None:
        partition = event.message.partition
        key = f"{raw['store_id']}:{raw['source_order_id']}"
        try:
            step = step_order(
                raw,
                order_state.get(partition, key),
                event.message.offset * SLOTS + index,
                overrides.get(raw["store_id"]),
            )
            encoded = [encode("order", order) for order in step.emit.orders]
            acts = [encode("activity", activity) for activity in step.emit.activities]
            if step.forward is not None and step.forward[1]["kind"] == "order":
                encode("order", step.forward[1]["order"])  # proves it fits the contract before it waits
        except BAD_EVENT_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if batched:  # the one event, as a raw_order_event of its own
                dead.send(event, "normalise", reason, key.encode(), encode("raw_order_event", raw), batch_index=index)
            else:
                dead.send(event, "normalise", reason)
            return
        if step.state is not None:
            order_state.put(partition, key, step.state)
        for order, value in zip(step.emit.orders, encoded, strict=True):
            emit.order(order, value)
        for activity, value in zip(step.emit.activities, acts, strict=True):
            emit.activity(activity, value)
        if step.forward is not None and (step.forward[1]["kind"] != "hint" or hinted.first(step.forward[0])):
            forward.add(*step.forward)

    @app.agent(topology.raw_orders, name="normalise")
    async def orders(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("normalise"):
                events, batched = order_events(event)
                for index, raw in enumerate(events):
                    handle_order(event, raw, index, batched)
                forward.flush()
                outputs.poll()

    @app.agent(topology.raw_customers)
    async def customers(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("customers"):
                raw = decoded(event, ("raw_customer_event",))
                if raw is None:
                    continue
                try:
                    hint, consent = hint_from_customer(raw["platform"], raw["document"], raw["source_customer_id"])
                    modified = customer_modified_at(raw["platform"], raw["document"], raw["store_timezone"])
                except BAD_EVENT_ERRORS as exc:
                    dead.send(event, "normalise", f"{type(exc).__name__}: {exc}")
                    continue
                email = normalise_email(hint.email)
                if email is None:
                    dead.send(event, "normalise", f"customer {raw['source_customer_id']} has no usable e-mail")
                    continue
                list_id = raw["list_id"]
                at = modified or raw["fetched_at"]
                contact = new_contact(list_id, email, hint, "STORE_CUSTOMER", raw["store_id"], at, consent)
                forward.add(contact_key(list_id, email), {"kind": "contact", "contact": contact})
                if hint.store_customer_id:
                    alias = customer_alias(list_id, raw["store_id"], hint.store_customer_id)
                    forward.add(alias, {"kind": "alias", "contact": contact})
                forward.flush()
                outputs.poll()

    @app.agent(topology.imports)
    async def imported(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("imported"):
                contact = decoded(event, ("contact",))
                if contact is None:
                    continue
                email, list_id = contact["email"], contact["list_id"]
                if normalise_email(email) != email or contact["contact_id"] != contact_id(list_id, email):
                    dead.send(event, "normalise", "contact: e-mail not normalised or contact_id not derived from it")
                    continue
                forward.add(contact_key(list_id, email), {"kind": "contact", "contact": contact})
                forward.flush()
                outputs.poll()

    @app.agent(topology.by_contact, name="join")
    async def contacts(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("join"):
                body = envelope.loads(event.value)
                # One item per message was the format before batching; such messages may still be queued.
                items = body if isinstance(body, list) else [(event.key.decode(), body)]
                out = Outputs()
                for index, (key, item) in enumerate(items):
                    out.extend(join_item(event.message.partition, event.message.offset * SLOTS + index, key, item))
                emit.all(out)
                outputs.poll()

    def join_item(partition: int, position: int, key: str, item: dict[str, Any]) -> Outputs:
        contacts, pending = topology.contacts.view(partition), topology.pending.view(partition)
        last = topology.join_positions.get(partition, key)
        redelivery = last is not None and position <= int(last)
        kind = item["kind"]
        if kind == "hint":
            out = on_hint(contacts, key, item)
        elif kind == "order":
            out = on_order(contacts, pending, key, item["order"], item["activities"], ContactHint(**item["hint"]))
        elif kind == "contact":
            out = on_contact(contacts, key, item["contact"])
        else:
            out = on_alias(contacts, pending, key, item["contact"], position, redelivery)
        if redelivery:
            stored_contact = contacts.get(key)
            if stored_contact is not None and not out.contacts:
                out.contacts.append(envelope.loads(stored_contact))
        elif kind != "hint" or out.contacts:  # a hint that found its contact changed nothing
            topology.join_positions.put(partition, key, str(position).encode())
        return out

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust's decorators are not typed
    async def beat() -> None:
        stuck = watchdog.stuck()
        if stuck:  # no beat: the supervisor restarts the worker once its hang timeout has passed
            log.error("agent stuck inside one event: %s", ", ".join(f"{a} for {s:.0f} s" for a, s in stuck.items()))
            return
        outputs.poll()
        heartbeat.beat()  # for the supervisor: the event loop turns and no agent is stuck

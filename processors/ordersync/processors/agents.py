"""The processor's agents: each reads one topic, hands records to the pure stages and sends what they
return. faust's cost is per Kafka message, so each message carries as much as it can: a raw message may
hold a batch of orders, and what one message forwards to the contact stage leaves as one message per
destination partition.
"""

from __future__ import annotations

import hashlib
import logging
import time
from array import array
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import faust
from faust.types import TP, EventT

from ordersync.processors import attribution, consent, envelope
from ordersync.processors.contacts import customer_alias, customer_modified_at, hint_from_customer, new_contact
from ordersync.processors.dead_letters import DeadLetterCounter
from ordersync.processors.join import Outputs, join_item
from ordersync.processors.order_stage import step_order
from ordersync.processors.outputs import OutputProducer
from ordersync.processors.provenance import HistoryPolicy
from ordersync.processors.triggers import (
    Timer,
    dump_state,
    item_time,
    load_state,
    may_send,
    on_purchase,
    on_timer,
    purchase_of,
    timers_due_by,
)
from ordersync.processors.values import DocumentError, NormaliseError, document_errors
from ordersync.processors.watchdog import Watchdog
from ordersync.runtime import heartbeat
from ordersync.runtime.automations import Automations
from ordersync.schemas import DecodeError, EncodeError, decode, encode
from ordersync.schemas import consent as sources
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.headers import order_headers
from ordersync.schemas.identity import contact_id, contact_key, normalise_email
from ordersync.schemas.partitioning import murmur2_partition
from ordersync.schemas.records import Activity, Attribution, Order, RawOrderBatch, RawOrderEvent, Trigger

if TYPE_CHECKING:
    from ordersync.processors.app import Topology

log = logging.getLogger(__name__)

# What an event's own content raises (its store document read inside document_errors, its records checked
# against the contract): the event is dead-lettered. Anything else stops the worker uncommitted.
BAD_EVENT_ERRORS = (NormaliseError, EncodeError)
# Records of one message are told apart by position = offset * SLOTS + index (docs/processor.md).
SLOTS = 1 << 16
# A Kafka record's value, at most: librdkafka refuses a larger message (message.max.bytes, 1,000,000 by
# default, checked before compression) for good, which would stop the worker on every restart. A hand-off
# message is cut below a quarter of it; one order whose records are over it is dead-lettered.
MAX_RECORD_BYTES = 1_000_000 - 4096  # room for the key and headers
MAX_MESSAGE_BYTES = MAX_RECORD_BYTES // 4
RAW_ORDER_SUBJECTS = ("raw_order_event", "raw_order_batch")


def event_reason(exc: Exception) -> str:
    """The dead letter's reason: what the document raised (as before), or the contract's complaint."""
    return str(exc) if isinstance(exc, DocumentError) else f"{type(exc).__name__}: {exc}"


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
    """Collects what messages hand to the contact stage, and sends it as one message per partition just
    before each commit (ordersync.processors.delivery calls ``flush``), or sooner when it holds ``FLUSH_AT``
    items: faust's cost is per message consumed, so fewer, fuller messages are cheaper. Nothing is lost
    by holding: an offset is committed only after this flush and the acknowledgement of what it sent."""

    FLUSH_AT = 20_000

    def __init__(self, outputs: OutputProducer, topic: str, partitions: int) -> None:
        self._outputs = outputs
        self._topic = topic
        self._partitions = partitions
        self._by_partition: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self.held = 0

    def add(self, key: str, item: dict[str, Any]) -> None:
        """Hold ``item`` for the partition of its routing ``key``."""
        partition = murmur2_partition(key.encode(), self._partitions)
        self._by_partition.setdefault(partition, []).append((key, item))
        self.held += 1

    def flush(self) -> None:
        """Send what was held: one message per partition, cut below 65,536 items and MAX_MESSAGE_BYTES."""
        for partition, items in self._by_partition.items():
            for value in pack([envelope.dumps(item) for item in items], MAX_MESSAGE_BYTES, SLOTS - 1):
                self._outputs.send(self._topic, None, value, partition=partition)
        self._by_partition.clear()
        self.held = 0


def pack(encoded: list[bytes], max_bytes: int, max_items: int) -> list[bytes]:
    """JSON arrays of the encoded items, in order, each at most ``max_bytes`` and ``max_items`` (an item
    larger than ``max_bytes`` alone: the handlers refuse any that would not fit a record)."""
    messages: list[bytes] = []
    group: list[bytes] = []
    size = 2
    for item in encoded:
        if group and (size + len(item) + 1 > max_bytes or len(group) >= max_items):
            messages.append(b"[" + b",".join(group) + b"]")
            group, size = [], 2
        group.append(item)
        size += len(item) + 1
    if group:
        messages.append(b"[" + b",".join(group) + b"]")
    return messages


class HintedContacts:
    """Contact keys this worker already sent a hint for. A later hint for the same key would find the
    contact created by the first (same partition, read in order), so it is not sent.

    A fixed table of 64-bit key hashes, one slot per hash (16 MiB for the default two million slots):
    memory is bounded whatever the number of contacts, and past its size it forgets gracefully (a key
    whose slot was taken is hinted again), where a least-recently-used list of 250,000 keys forgot every
    key once more contacts than that cycled through it. Forgetting, or a restart, only sends a hint again;
    a repeated hint finds its contact and changes nothing."""

    def __init__(self, slots: int = 1 << 21) -> None:
        self._slots = array("Q", bytes(8 * slots))
        self._size = slots

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (as far as this memory goes)."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
        slot = digest % self._size
        if self._slots[slot] == digest:
            return False
        self._slots[slot] = digest
        return True


class Emitter:
    """Sends stage results to the output topics."""

    def __init__(self, outputs: OutputProducer, topology: Topology) -> None:
        self._outputs = outputs
        self._orders = topology.outputs.orders
        self._activity = topology.outputs.activity
        self._contacts = topology.outputs.contacts
        self._triggers = topology.outputs.triggers
        self._attributions = topology.outputs.attributions
        self._suppressed = topology.outputs.triggers_suppressed

    def order(self, order: Order, value: bytes) -> None:
        """Send an order already encoded (``value``), with its version headers."""
        self._outputs.send(self._orders, order["order_key"].encode(), value, order_headers(order))

    def activity(self, activity: Activity, value: bytes) -> None:
        """Send an activity event already encoded."""
        self._outputs.send(self._activity, activity["order_key"].encode(), value)

    def trigger(self, trigger: Trigger) -> None:
        """Send a trigger, keyed by its contact so one contact's triggers stay in order."""
        key = f"{trigger['list_id']}:{trigger['contact_id']}".encode()
        self._outputs.send(self._triggers, key, encode("trigger", trigger))

    def suppressed(self, trigger: Trigger) -> None:
        """A marketing trigger withheld for lack of consent: recorded, never delivered."""
        key = f"{trigger['list_id']}:{trigger['contact_id']}".encode()
        self._outputs.send(self._suppressed, key, encode("trigger", trigger))

    def attribution(self, order_key: str, record: Attribution | None) -> None:
        """Send an order's attribution, keyed by the order (the topic is compacted: a repeat or a change
        replaces it, a tombstone says the order is credited to nothing any more)."""
        value = encode("attribution", record) if record is not None else None
        self._outputs.send(self._attributions, order_key.encode(), value)

    def all(self, out: Outputs) -> None:
        """Encode and send everything the contact stage returned."""
        for order in out.orders:
            self.order(order, encode("order", order))
        for activity in out.activities:
            self.activity(activity, encode("activity", activity))
        for contact in out.contacts:
            key = contact_key(contact["list_id"], contact["email"]).encode()
            self._outputs.send(self._contacts, key, encode("contact", contact))


class Handlers:
    """What the agents do with one message: decode it, hand its records to the pure stages, and send what
    they return. Plain methods, so each step reads (and is tested) on its own."""

    def __init__(
        self,
        topology: Topology,
        outputs: OutputProducer,
        overrides: Mapping[str, Mapping[str, str]],
        partitions: int,
        automations: Automations | None = None,
        policy: HistoryPolicy | None = None,
        consent_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.topology = topology
        self.consent_keys = consent_keys or {}  # store id → the meta key its consent plugin writes (WooCommerce)
        self.automations = automations or Automations()
        self.policy = policy or HistoryPolicy(horizons=self.automations.horizons())
        self.outputs = outputs
        self.overrides = overrides
        self.dead = DeadLetters(outputs, topology.outputs.dlq)
        self.stream_us: dict[int, int] = {}  # per by-contact partition: the latest event time seen (µs)
        self.next_offsets: dict[tuple[str, int], int] = {}  # per input partition: after the last handled
        self._by_contact = topology.by_contact.get_topic_name()
        self.forward = Forwarder(outputs, self._by_contact, partitions)
        self.emit = Emitter(outputs, topology)
        self.hinted = HintedContacts()
        # (topic, partition) → the offset below which every event's outputs are acknowledged (set before
        # each commit by ordersync.processors.delivery): state history older than that is no longer needed.
        self.confirmed: dict[tuple[str, int], int] = {}

    def _decoded(self, event: EventT[bytes], subjects: tuple[str, ...]) -> dict[str, Any] | None:
        """The event's record, or None once it went to the dead-letter topic."""
        try:
            return decode(event.value, subjects)
        except DecodeError as exc:
            self.dead.send(event, "decode", exc.reason)
            return None

    def _sent(self) -> None:
        if self.forward.held >= Forwarder.FLUSH_AT:
            self.forward.flush()
        self.outputs.poll()

    # -- raw.orders: the order stage --------------------------------------------------------------------
    def order_message(self, event: EventT[bytes]) -> None:
        """A raw.orders message: one order event or a batch, each through the order stage."""
        record = self._decoded(event, RAW_ORDER_SUBJECTS)
        if record is not None:
            batched = "events" in record
            events = cast(RawOrderBatch, record)["events"] if batched else [cast(RawOrderEvent, record)]
            for index, raw in enumerate(events):
                self._order(event, raw, index, batched)
        self._sent()

    def _order(self, event: EventT[bytes], raw: RawOrderEvent, index: int, batched: bool) -> None:
        partition = event.message.partition
        key = f"{raw['store_id']}:{raw['source_order_id']}"
        state = self.topology.order_state
        position = event.message.offset * SLOTS + index
        try:
            confirmed = self.confirmed.get((event.message.topic, partition), 0) * SLOTS
            step = step_order(
                raw, state.get(partition, key), position, self.overrides.get(raw["store_id"]), confirmed, self.policy
            )
            orders = [encode("order", order) for order in step.emit.orders]
            activities = [encode("activity", activity) for activity in step.emit.activities]
            sizes = [len(value) for value in (*orders, *activities)]
            if step.forward is not None and step.forward[1]["kind"] == "order":  # it waits for its customer
                encode("order", step.forward[1]["order"])  # proves it fits the contract before it waits
                sizes.append(len(envelope.dumps(step.forward)))
            if max(sizes, default=0) > MAX_RECORD_BYTES:
                raise EncodeError(f"the order's records are {max(sizes):,} bytes, over a record's {MAX_RECORD_BYTES:,}")
        except BAD_EVENT_ERRORS as exc:
            reason = event_reason(exc)
            if batched:  # the one event, as a raw_order_event of its own
                value = encode("raw_order_event", raw)
                self.dead.send(event, "normalise", reason, key.encode(), value, batch_index=index)
            else:
                self.dead.send(event, "normalise", reason)
            return
        if step.state is not None:
            state.put(partition, key, step.state)
        for order, value in zip(step.emit.orders, orders, strict=True):
            self.emit.order(order, value)
            self._purchased(order, step.seen_as)
        for activity, value in zip(step.emit.activities, activities, strict=True):
            self.emit.activity(activity, value)
        if step.forward is not None:
            route, item = step.forward
            if item["kind"] != "hint" or self.hinted.first(route):
                self.forward.add(route, item)

    # -- raw.customers and contacts.import: contacts for the contact stage ------------------------------
    def customer_message(self, event: EventT[bytes]) -> None:
        """A raw.customers message: the store customer's contact, and its alias for orders without e-mail."""
        raw = self._decoded(event, ("raw_customer_event",))
        if raw is None:
            return
        try:
            with document_errors():
                hint = hint_from_customer(raw["platform"], raw["document"], raw["source_customer_id"])
                at = customer_modified_at(raw["platform"], raw["document"], raw["store_timezone"]) or raw["fetched_at"]
                stated = consent.of_customer(
                    raw["platform"], raw["document"], at, raw["store_timezone"], raw["store_id"],
                    self.consent_keys.get(raw["store_id"]),
                )  # fmt: skip
        except NormaliseError as exc:
            self.dead.send(event, "normalise", event_reason(exc))
            return
        email = normalise_email(hint.email)
        if email is None:
            self.dead.send(event, "normalise", f"customer {raw['source_customer_id']} has no usable e-mail")
            return
        list_id = raw["list_id"]
        contact = new_contact(list_id, email, hint, "STORE_CUSTOMER", raw["store_id"], at, [stated] if stated else [])
        self.forward.add(contact_key(list_id, email), {"kind": "contact", "contact": contact})
        if hint.store_customer_id:
            alias = customer_alias(list_id, raw["store_id"], hint.store_customer_id)
            self.forward.add(alias, {"kind": "alias", "contact": contact})
        self._sent()

    def import_message(self, event: EventT[bytes]) -> None:
        """A contacts.import message: the contact as imported, if its identity is the derived one."""
        contact = self._decoded(event, ("contact",))
        if contact is None:
            return
        email, list_id = contact["email"], contact["list_id"]
        if normalise_email(email) != email or contact["contact_id"] != contact_id(list_id, email):
            self.dead.send(event, "normalise", "contact: e-mail not normalised or contact_id not derived from it")
            return
        self.forward.add(contact_key(list_id, email), {"kind": "contact", "contact": contact})
        self._sent()

    # -- campaign.events: touches for the contact stage ---------------------------------------------------
    def campaign_message(self, event: EventT[bytes]) -> None:
        """A campaign.events message: its touch to the contact's partition, if the list is attributed, and an
        unsubscribe as a withdrawal of the contact's marketing consent (docs/privacy.md)."""
        record = self._decoded(event, ("campaign_event",))
        if record is None:
            return
        attributed = self.automations.attributed(record["list_id"]) is not None
        if not attributed and record["type"] != "UNSUBSCRIBE":
            self._sent()
            return
        email, list_id = record["email"], record["list_id"]
        if normalise_email(email) != email or record["contact_id"] != contact_id(list_id, email):
            self.dead.send(
                event, "normalise", "campaign_event: e-mail not normalised or contact_id not derived from it"
            )
            return
        if record["type"] == "UNSUBSCRIBE":  # a withdrawal of marketing consent, as of the event
            withdrawn = consent.statement(False, record["occurred_at"], sources.unsubscribe(record["campaign_id"]))
            self.forward.add(contact_key(list_id, email), {"kind": "consent", "statement": withdrawn})
        if attributed:
            self.forward.add(contact_key(list_id, email), attribution.touch_item(cast(Any, record)))
        self._sent()

    # -- processor.by-contact: the contact stage ----------------------------------------------------------
    def contact_message(self, event: EventT[bytes]) -> None:
        """A processor.by-contact message: its items through the contact stage, in order."""
        body = envelope.loads(event.value)
        # One item per message was the format before batching; such messages may still be queued.
        items = body if isinstance(body, list) else [(cast(bytes, event.key).decode(), body)]
        out = Outputs()
        partition = event.message.partition
        for index, (key, item) in enumerate(items):
            at = item_time(item)
            if at is not None and at > self.stream_us.get(partition, -1):
                self.stream_us[partition] = at
            position = event.message.offset * SLOTS + index
            if item["kind"] in ("purchase", "credit"):
                self._purchase(event.message.partition, position, key, item)
            elif item["kind"] == "touch":
                self._touch(event.message.partition, position, key, item)
            else:
                out.extend(self._join(event.message.partition, position, key, item))
        self.emit.all(out)
        for order in out.orders:  # matched here (an order that waited for its store customer)
            self._purchased(order)
        self._sent()

    # -- triggers: each emitted order with a contact, folded into that contact's summary ----------------
    def _purchased(self, order: Order, seen_as: str | None = None) -> None:
        if not self.automations.summarised(order["list_id"]):
            return
        purchase = purchase_of(order)
        if purchase is None:
            return
        if seen_as is not None:
            purchase["seen_as"] = seen_as
        key = contact_key(purchase["list_id"], purchase["email"])
        if self.automations.enabled(purchase["list_id"]):
            self.forward.add(key, {"kind": "purchase", **purchase})
        else:  # attribution only: what a decision needs
            self.forward.add(key, attribution.credit_item(purchase))

    def _purchase(self, partition: int, position: int, key: str, item: dict[str, Any]) -> None:
        purchase = cast(Any, {k: v for k, v in item.items() if k != "kind"})
        rules = self.automations.attributed(purchase["list_id"])
        if rules is not None:
            self._attribute(partition, position, key, purchase, rules)
        if item["kind"] == "purchase" and self.automations.enabled(purchase["list_id"]):
            self._automate(partition, position, key, purchase)

    def _attribute(self, partition: int, position: int, key: str, purchase: Any, rules: Any) -> None:
        state = load_state(self.topology.attribution.get(partition, key))
        self._attributed(partition, key, attribution.on_order(state, purchase, position, rules))

    def _touch(self, partition: int, position: int, key: str, item: dict[str, Any]) -> None:
        state = load_state(self.topology.attribution.get(partition, key))
        rules = self.automations.attributed(item["list_id"]) if "list_id" in item else None
        self._attributed(partition, key, attribution.on_touch(state, item, position, rules))

    def _attributed(self, partition: int, key: str, step: attribution.AttributionStep) -> None:
        self.topology.attribution.put(partition, key, dump_state(step.state))  # also on a redelivery
        for order_key, record in step.sends:
            self.emit.attribution(order_key, record)

    def _automate(self, partition: int, position: int, key: str, purchase: Any) -> None:
        stored = self.topology.trigger_state.get(partition, key)
        confirmed = self.confirmed.get((self._by_contact, partition), 0) * SLOTS
        rules = self.automations.for_list(purchase["list_id"])
        step = on_purchase(load_state(stored), purchase, key, rules, position, confirmed)
        # Written even on a redelivery: the crash may have lost its first send to the changelog.
        self.topology.trigger_state.put(partition, key, dump_state(step.state))
        for timer in step.timers:
            self.topology.trigger_timers.put(partition, timer.key, envelope.dumps(timer.to_json()))
        for trigger in step.triggers:
            self._send_trigger(partition, key, trigger, rules)

    def _send_trigger(self, partition: int, key: str, trigger: Trigger, rules: Any) -> None:
        """Out with the contact's consent as it is now: on ``triggers`` if it may be sent, else on
        ``triggers.suppressed`` (counted on the Automations page, never delivered)."""
        stored = self.topology.contacts.get(partition, key)
        given = envelope.loads(stored).get("marketing_consent") if stored is not None else None
        trigger = {**trigger, "marketing_consent": given}
        if may_send(trigger, given, rules):
            self.emit.trigger(trigger)
        else:
            self.emit.suppressed(trigger)

    def any_due(self, partitions: list[int], wall_us: int) -> bool:
        """Whether any timer of ``partitions`` is due by the wall clock (the latest any clock can be)."""
        bound = f"{wall_us + 1:020d}"
        return any(next(iter(self.topology.trigger_timers.items_before(p, bound)), None) for p in partitions)

    def due_timers(self, partitions: list[int], wall_us: int, caught_up: bool) -> list[tuple[int, str]]:
        """Check every timer due in the active ``partitions`` (on stream time, or on the wall clock once
        ``caught_up``: ordersync.processors.triggers ``timers_due_by``): send the triggers that still hold.
        Returns the timers checked; the caller removes them once the sends are confirmed (a crash before
        that checks them again: same trigger ids)."""
        checked = []
        for partition in partitions:
            due_by = timers_due_by(self.stream_us.get(partition), wall_us, caught_up)
            if due_by is None:
                continue
            bound = f"{due_by + 1:020d}"
            for key, value in self.topology.trigger_timers.items_before(partition, bound):
                timer = Timer.from_json(envelope.loads(value))
                state = load_state(self.topology.trigger_state.get(partition, timer.contact))
                rules = self.automations.for_list(timer.purchase["list_id"])
                trigger = on_timer(state, timer, rules)
                if trigger is not None:
                    self._send_trigger(partition, timer.contact, trigger, rules)
                checked.append((partition, key))
        return checked

    def _join(self, partition: int, position: int, key: str, item: dict[str, Any]) -> Outputs:
        contacts, pending = self.topology.contacts.view(partition), self.topology.pending.view(partition)
        last = self.topology.join_positions.get(partition, key)
        out, keep = join_item(contacts, pending, key, item, position, int(last) if last is not None else None)
        if keep is not None:
            self.topology.join_positions.put(partition, key, str(keep).encode())
        return out


async def stop_without_commit(
    app: faust.App, outputs: OutputProducer, agent: str, event: EventT[bytes], exc: Exception
) -> None:
    """An error that is not the event's data (a bug, a record of an unknown schema): bad data is
    dead-lettered inside the handlers, so this is not. The worker stops and commits nothing more, not even
    what other agents acked since the last commit; its supervisor restarts it and the uncommitted events,
    this one included, are handled again. faust's default would restart the agent and ack the event."""
    msg = event.message
    reason = f"agent {agent} failed on {msg.topic}[{msg.partition}]@{msg.offset}: {type(exc).__name__}: {exc}"
    log.critical("%s; stopping the worker without committing", reason, exc_info=exc)
    outputs.fail(reason)
    await app.crash(exc)


async def caught_up(app: faust.App, handlers: Handlers, actives: set[TP]) -> bool:
    """Has this worker handled everything its partitions hold (so the wall clock may drive timers)? A
    partition with nothing handled since the start counts from the group's committed offset. Unknown (the
    broker did not answer, a rebalance began): not caught up, so timers stay on stream time."""
    try:
        return await _caught_up(app, handlers, actives)
    except Exception as exc:
        log.debug("caught up? not known (%s): timers stay on stream time", type(exc).__name__)
        return False


async def _caught_up(app: faust.App, handlers: Handlers, actives: set[TP]) -> bool:
    if not actives:
        return False
    ends = await app.consumer.highwaters(*actives)
    for tp, end in ends.items():
        if not end:
            continue
        done = handlers.next_offsets.get((tp.topic, tp.partition))
        if done is None:
            thread = app.consumer._thread  # type: ignore[attr-defined]  # faust's consumer thread (aiokafka)
            done = await thread.call_thread(thread._ensure_consumer().committed, tp) or 0
        if done < end:
            return False
    return True


def register(
    app: faust.App,
    topology: Topology,
    outputs: OutputProducer,
    overrides: Mapping[str, Mapping[str, str]],
    automations: Automations | None = None,
    policy: HistoryPolicy | None = None,
    consent_keys: Mapping[str, str] | None = None,
) -> Handlers:
    """The agents: one per topic, each a loop over its messages; their handlers."""
    handlers = Handlers(topology, outputs, overrides, app.conf.topic_partitions, automations, policy, consent_keys)
    watchdog = Watchdog()

    def agent(topic: faust.TopicT, name: str, handle: Callable[[EventT[bytes]], None]) -> None:
        async def run(stream: faust.StreamT[bytes]) -> None:
            # Acks are ours (faust's supported noack): an event is acked once handled, and its outputs are
            # confirmed before the commit that follows. One that raises is never acked.
            async for event in stream.noack().events():  # type: ignore[attr-defined]  # StreamT lacks noack
                try:
                    with watchdog.event(name):
                        handle(event)
                except Exception as exc:
                    await stop_without_commit(app, outputs, name, event, exc)
                    return
                event.ack()
                handlers.next_offsets[(event.message.topic, event.message.partition)] = event.message.offset + 1

        app.agent(topic, name=name)(run)

    agent(topology.raw_orders, "normalise", handlers.order_message)
    agent(topology.raw_customers, "customers", handlers.customer_message)
    agent(topology.imports, "imported", handlers.import_message)
    agent(topology.campaign_events, "campaigns", handlers.campaign_message)
    agent(topology.by_contact, "join", handlers.contact_message)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust's decorators are not typed
    async def beat() -> None:
        stuck = watchdog.stuck()
        if stuck:  # no beat: the supervisor restarts the worker once its hang timeout has passed
            log.error("agent stuck inside one event: %s", ", ".join(f"{a} for {s:.0f} s" for a, s in stuck.items()))
            return
        outputs.poll()
        heartbeat.beat()  # for the supervisor: the event loop turns and no agent is stuck

    read = {
        topology.raw_orders,
        topology.raw_customers,
        topology.imports,
        topology.campaign_events,
        topology.by_contact,
    }
    read_names = {t.get_topic_name() for t in read}

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def timers() -> None:
        # Only partitions this worker owns, and never while they are being restored: a standby's or a
        # half-restored table could fire what a later changelog record cancels.
        if app.rebalancing or app.in_recovery or outputs.failed:
            return
        by_contact = topology.by_contact.get_topic_name()
        actives = app.assignor.assigned_actives()
        partitions = sorted(tp.partition for tp in actives if tp.topic == by_contact)
        inputs = {tp for tp in actives if tp.topic in read_names}  # not the changelogs the assignment also holds
        wall_us = int(time.time() * 1_000_000)
        if not handlers.any_due(partitions, wall_us):  # the common case: no broker round trip
            return
        checked = handlers.due_timers(partitions, wall_us, await caught_up(app, handlers, inputs))
        if checked:
            await outputs.confirm()
            for partition, key in checked:
                topology.trigger_timers.delete(partition, key)

    return handlers

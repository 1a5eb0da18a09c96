"""The faust-streaming app: raw topics → normalised orders, contacts and activity.

Two stages, because an order's state is partitioned by order key but its contact by e-mail:

1. ``normalise`` reads ``raw.orders`` (key = order key), normalises each order, diffs it against the
   per-order state table (``order-state``) and forwards what changed to the internal repartition topic
   ``processor.by-contact``, keyed by the contact routing key. ``customers`` and ``imports`` forward
   contacts there too.
2. ``join`` reads ``processor.by-contact``; the ``contacts`` and ``pending`` tables are co-partitioned
   with it, so the contact lookup is local (faust has no stream-table join: it is a lookup in the agent).
   It emits to ``orders``, ``activity`` and ``contacts``.

Delivery is at-least-once with outputs published (and acknowledged by Kafka: processors/delivery.py
makes sure of it) before the source offsets are committed; every output is idempotent (deterministic event ids, contact ids and versions), so each
consumer's state is exactly-once. faust's ``exactly_once`` mode is deliberately NOT used: it puts a send
into the transaction of the *destination* partition, so a repartitioned record (``by-contact``) stays in
an open transaction, invisible to read_committed readers, until that partition happens to commit (we saw
records stuck for minutes, and aborted on transaction timeout). See docs/processor.md.
Tables live in RocksDB with changelog topics. Anything that cannot be decoded or normalised goes to
``dlq`` with the reason in headers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT

from processors import delivery, envelope
from processors.activity import decide, is_redelivery, state_before, to_store
from processors.contacts import customer_alias, customer_modified_at, hint_from_customer, new_contact
from processors.dead_letters import DeadLetterCounter, dead_letter_headers
from processors.join import Outputs, on_alias, on_contact, on_order, routing_key
from processors.model import ContactHint
from processors.normalise import normalise_order
from processors.values import NormaliseError
from processors.watchdog import Watchdog
from runtime import heartbeat
from schemas import DecodeError, EncodeError, decode, encode
from schemas.headers import order_headers
from schemas.identity import contact_key, normalise_email
from schemas.topics import TopicNames

log = logging.getLogger("ordersync.processor")


@dataclass(frozen=True)
class ProcessorOptions:
    bootstrap: str
    topic_prefix: str  # where the raw topics are
    partitions: int
    replication_factor: int
    app_id: str
    data_dir: Path
    status_overrides: Mapping[str, Mapping[str, str]]  # store id → overrides
    web_port: int | None = None  # None: no web server
    standby_replicas: int = 0
    commit_interval_s: float = 0.1  # each stage holds its outputs until a commit: a floor on latency
    output_prefix: str | None = None  # where outputs and internal topics go (a replay writes elsewhere)


def _headers(event: EventT) -> list[tuple[str, bytes]]:
    headers = event.message.headers or []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs]


def create_app(opts: ProcessorOptions) -> faust.App:
    p = opts.topic_prefix
    out = opts.output_prefix or opts.topic_prefix
    delivery.install()
    app = faust.App(
        opts.app_id,
        broker=f"kafka://{opts.bootstrap}",
        store="rocksdb://",
        datadir=str(opts.data_dir),
        processing_guarantee="at_least_once",
        stream_publish_on_commit=True,  # outputs acknowledged before the offsets that produced them commit
        topic_partitions=opts.partitions,
        topic_replication_factor=opts.replication_factor,
        table_standby_replicas=opts.standby_replicas,
        broker_commit_interval=opts.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=opts.web_port is not None,
        web_port=opts.web_port or 6066,
        key_serializer="raw",
        value_serializer="raw",
    )

    watchdog = Watchdog()

    def topic(name: str, internal: bool = False) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, partitions=opts.partitions, internal=internal)

    inputs, outputs = TopicNames.with_prefix(p), TopicNames.with_prefix(out)
    raw_orders, raw_customers, imports = (
        topic(inputs.raw_orders),
        topic(inputs.raw_customers),
        topic(inputs.contacts_import),
    )
    by_contact = topic(out + "processor.by-contact", internal=True)  # the repartition hop, not in the catalogue
    orders_out, activity_out, contacts_out = topic(outputs.orders), topic(outputs.activity), topic(outputs.contacts)
    dlq = topic(outputs.dlq)

    # faust picks table serializers from the declared types: untyped means JSON (our str keys and the
    # order-state dicts), bytes means raw (contacts and pending hold envelope bytes).
    order_state = app.Table("order-state", default=None, partitions=opts.partitions)
    contacts = app.Table("contacts", default=None, partitions=opts.partitions, value_type=bytes)
    pending = app.Table("pending", default=None, partitions=opts.partitions, value_type=bytes)
    # The last by-contact offset handled per routing key: a redelivery after a crash (see
    # processors/activity.py) re-emits the key's contact, whose table entry may be ahead of its output.
    join_offsets = app.Table("join-offsets", default=None, partitions=opts.partitions)
    dead = DeadLetterCounter()

    async def dead_letter(event: EventT, stage: str, reason: str) -> None:
        msg = event.message
        total = dead.add(stage)
        log.warning(
            "dead letter #%d (%s) from %s[%d]@%d: %s", total, stage, msg.topic, msg.partition, msg.offset, reason
        )
        await dlq.send(
            key=msg.key,
            value=msg.value,
            headers=dead_letter_headers(reason, stage, msg.topic, msg.partition, msg.offset, _headers(event)),
        )

    async def decoded(event: EventT, subject: str) -> dict[str, Any] | None:
        """The event's record, or None once it went to the dead-letter topic."""
        try:
            return decode(event.value, subject)
        except DecodeError as exc:
            await dead_letter(event, "decode", exc.reason)
            return None

    async def forward(key: str, item: dict[str, Any]) -> None:
        await by_contact.send(key=key.encode(), value=envelope.dumps(item))

    @app.agent(raw_orders)
    async def normalise(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("normalise"):
                raw = await decoded(event, "raw_order_event")
                if raw is None:
                    continue
                key = f"{raw['store_id']}:{raw['source_order_id']}"
                entry = order_state.get(key)
                offset = event.message.offset
                previous = state_before(entry, offset)
                try:
                    result = normalise_order(
                        raw, opts.status_overrides.get(raw["store_id"]), previous["version"] if previous else None
                    )
                    encode("order", result.order)  # proves it fits the contract before anything is emitted
                    decision = decide(previous, result.order)
                except (
                    NormaliseError,
                    EncodeError,
                    AttributeError,
                    ArithmeticError,
                    KeyError,
                    TypeError,
                    ValueError,
                ) as exc:
                    await dead_letter(event, "normalise", f"{type(exc).__name__}: {exc}")
                    continue
                if not decision.apply:
                    continue
                if not is_redelivery(entry, offset):
                    order_state[key] = to_store(decision, previous, offset, entry)
                item = {
                    "kind": "order",
                    "order": result.order,
                    "activities": decision.activities,
                    "hint": dataclasses.asdict(result.contact),
                }
                await forward(routing_key(result.order, result.contact), item)

    @app.agent(raw_customers)
    async def customers(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("customers"):
                raw = await decoded(event, "raw_customer_event")
                if raw is None:
                    continue
                try:
                    hint, consent = hint_from_customer(raw["platform"], raw["document"], raw["source_customer_id"])
                    modified = customer_modified_at(raw["platform"], raw["document"], raw["store_timezone"])
                except (NormaliseError, AttributeError, ArithmeticError, KeyError, TypeError, ValueError) as exc:
                    await dead_letter(event, "normalise", f"{type(exc).__name__}: {exc}")
                    continue
                email = normalise_email(hint.email)
                if email is None:
                    await dead_letter(event, "normalise", f"customer {raw['source_customer_id']} has no usable e-mail")
                    continue
                list_id = raw["list_id"]
                at = modified or raw["fetched_at"]
                contact = new_contact(list_id, email, hint, "STORE_CUSTOMER", raw["store_id"], at, consent)
                await forward(contact_key(list_id, email), {"kind": "contact", "contact": contact})
                if hint.store_customer_id:
                    alias = customer_alias(list_id, raw["store_id"], hint.store_customer_id)
                    await forward(alias, {"kind": "alias", "contact": contact})

    @app.agent(imports)
    async def imported(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("imported"):
                contact = await decoded(event, "contact")
                if contact is None:
                    continue
                await forward(
                    contact_key(contact["list_id"], contact["email"]), {"kind": "contact", "contact": contact}
                )

    @app.agent(by_contact)
    async def join(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with watchdog.event("join"):
                key = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
                item = envelope.loads(event.value)
                offset = event.message.offset
                last = join_offsets.get(key)
                redelivery = last is not None and offset <= last
                if item["kind"] == "order":
                    out = on_order(
                        contacts, pending, key, item["order"], item["activities"], ContactHint(**item["hint"])
                    )
                elif item["kind"] == "contact":
                    out = on_contact(contacts, key, item["contact"])
                else:
                    out = on_alias(contacts, pending, key, item["contact"], offset, redelivery)
                if redelivery:
                    stored_contact = contacts.get(key)
                    if stored_contact is not None and not out.contacts:
                        out.contacts.append(envelope.loads(stored_contact))
                else:
                    join_offsets[key] = offset
                await emit(out)

    @app.timer(interval=1.0)
    async def beat() -> None:
        stuck = watchdog.stuck()
        if stuck:  # no beat: the supervisor restarts the worker once its hang timeout has passed
            log.error("agent stuck inside one event: %s", ", ".join(f"{a} for {s:.0f} s" for a, s in stuck.items()))
            return
        heartbeat.beat()  # for the supervisor: the event loop turns and no agent is stuck

    async def emit(out: Outputs) -> None:
        for order in out.orders:
            await orders_out.send(
                key=order["order_key"].encode(), value=encode("order", order), headers=order_headers(order)
            )
        for activity in out.activities:
            await activity_out.send(key=activity["order_key"].encode(), value=encode("activity", activity))
        for contact in out.contacts:
            await contacts_out.send(
                key=contact_key(contact["list_id"], contact["email"]).encode(), value=encode("contact", contact)
            )

    return app

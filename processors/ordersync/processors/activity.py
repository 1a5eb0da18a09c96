"""Diffing an order against its last known state → timeline events. Pure and deterministic.

State per order (kept in a faust table): its version, statuses, whether it is deleted, and a short
digest per content field, so a change can be named without keeping the whole previous order.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from ordersync.processors.values import micros
from ordersync.schemas.records import Activity, Order

EVENT_NAMESPACE = uuid.UUID("0b3f8a0e-4b4d-4f62-8d3a-2f1e6c9d7a55")
CONTENT_FIELDS = (
    "currency",
    "total",
    "subtotal",
    "tax_total",
    "shipping_total",
    "discount_total",
    "refunded_total",
    "items",
    "refunds",
    "coupons",
    "contact_email",
    "order_number",
)


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=6).hexdigest()


def digests(order: Order) -> dict[str, str]:
    return {field: _digest(order.get(field)) for field in CONTENT_FIELDS}


class OrderMemory(TypedDict):
    """What the order stage remembers of an order: enough to name a change without the whole order."""

    version: int
    status: str
    store_status: str
    deleted: bool
    digests: dict[str, str]


class StoredEntry(OrderMemory, total=False):
    """An order's entry in the ``order-state`` table (JSON)."""

    history: list[list[Any]]  # [position, OrderMemory | None] pairs, oldest first (see below)
    route: str  # the contact stage's key the order went through (ordersync.processors.order_stage), if it did
    observed: int  # when the stored version was fetched from the store (µs): breaks ties within a second
    contact: str  # the e-mail the order was last matched by: its delete names that contact too
    offset: int  # entries written before the history existed: one step
    prior: OrderMemory | None


@dataclass(frozen=True)
class Decision:
    apply: bool  # False: an old version or an exact duplicate; emit nothing
    activities: list[Activity]
    state: OrderMemory | None  # the new per-order state to store (None when not applied)


def state_of(order: Order) -> OrderMemory:
    return {
        "version": order["version"],
        "status": order["status"],
        "store_status": order["store_status"],
        "deleted": order["deleted"],
        "digests": digests(order),
    }


def event_id(order_key: str, kind: str, version: int, fingerprint: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{order_key}|{kind}|{version}|{fingerprint}"))


def decide(previous: OrderMemory | None, order: Order) -> Decision:
    """What ``order`` means given the last state applied for its key."""
    new_state = state_of(order)
    if previous is not None:
        if order["version"] < previous["version"]:
            return Decision(False, [], None)
        if order["version"] == previous["version"] and {**new_state} == previous:
            return Decision(False, [], None)
    fingerprint = _digest([*sorted(new_state["digests"].items()), new_state["status"], new_state["deleted"]])

    def event(kind: str, **extra: Any) -> Activity:
        record = {
            "event_id": event_id(order["order_key"], kind, order["version"], fingerprint),
            "type": kind,
            "order_key": order["order_key"],
            "store_id": order["store_id"],
            "source_order_id": order["source_order_id"],
            "list_id": order["list_id"],
            "contact_id": order.get("contact_id"),
            "occurred_at": order["modified_at"],
            "from_status": None,
            "to_status": None,
            "from_store_status": None,
            "to_store_status": None,
            "currency": order["currency"],
            "total": order["total"],
            "changed_fields": [],
            "version": order["version"],
            "source": order.get("source", "OTHER"),
            "historical": order.get("historical", False),
            **extra,
        }
        return cast(Activity, record)

    if previous is None:
        if order["deleted"]:
            return Decision(True, [], new_state)  # a delete of an order never seen: remember, say nothing
        created = event("ORDER_CREATED", to_status=order["status"], to_store_status=order["store_status"])
        return Decision(True, [created], new_state)

    events = []
    if order["deleted"] and not previous["deleted"]:
        events.append(
            event("ORDER_DELETED", from_status=previous["status"], from_store_status=previous["store_status"])
        )
        return Decision(True, events, {**previous, "version": order["version"], "deleted": True})
    if order["deleted"]:
        return Decision(False, [], None)
    if order["store_status"] != previous["store_status"] or order["status"] != previous["status"]:
        events.append(
            event(
                "ORDER_STATUS_CHANGED",
                from_status=previous["status"],
                to_status=order["status"],
                from_store_status=previous["store_status"],
                to_store_status=order["store_status"],
            )
        )
    changed = [f for f in CONTENT_FIELDS if previous["digests"].get(f) != new_state["digests"][f]]
    if previous["deleted"]:
        changed.insert(0, "restored")
    if changed:
        events.append(event("ORDER_UPDATED", changed_fields=changed))
    return Decision(True, events, new_state)


# -- crash recovery ----------------------------------------------------------------------------------
# With at-least-once delivery the per-order state (written through faust's changelog as soon as an event
# is handled) can run ahead of the outputs (published only at the next commit). After a crash the same
# raw events are handled again; comparing them against the state they already wrote would call them
# duplicates and emit nothing, losing the outputs. So each stored state keeps, for the events that changed
# it and whose outputs are not yet confirmed by Kafka, their position and the state before them. An event
# at or below the newest of those positions is a redelivery: it is decided again against the state as it
# was before it, which reproduces the very same outputs (same ids), and the stored state is left as it is.
# Any number of events of one order can fall in one uncommitted window (the agents run on while a commit
# waits for Kafka), so steps are dropped only once confirmed (``confirmed_below``), never by count; the
# last HISTORY steps are kept in any case.

HISTORY = 4  # confirmed steps kept anyway (cheap, and a state written before confirmations were known)


def _history(entry: StoredEntry) -> list[tuple[int, OrderMemory | None]]:
    if "history" in entry:
        return [(int(off), prior) for off, prior in entry["history"]]
    if entry.get("offset") is not None:  # states stored before the history existed: one step
        return [(int(entry["offset"]), entry.get("prior"))]
    return []


def is_redelivery(entry: StoredEntry | None, offset: int) -> bool:
    history = _history(entry) if entry is not None else []
    return bool(history) and offset <= history[-1][0]


def state_before(entry: StoredEntry | None, offset: int) -> OrderMemory | None:
    """The state to decide ``offset``'s event against."""
    if entry is None:
        return None
    history = _history(entry)
    if history and offset <= history[-1][0]:  # a redelivery
        # The state before the first change at or after this offset was the state this event saw.
        return next(prior for off, prior in history if off >= offset)
    return cast(
        OrderMemory,
        {k: v for k, v in entry.items() if k not in ("offset", "prior", "history", "route", "observed", "contact")},
    )


def to_store(
    decision: Decision,
    previous: OrderMemory | None,
    offset: int,
    entry: StoredEntry | None = None,
    confirmed_below: int = 0,
) -> StoredEntry:
    """The entry to store after ``decision``; steps at positions below ``confirmed_below`` (their outputs
    are acknowledged: a redelivery of them needs no replay) are dropped beyond the last HISTORY."""
    assert decision.state is not None
    steps = [*(_history(entry) if entry is not None else []), (offset, previous)]
    history = [step for i, step in enumerate(steps) if step[0] >= confirmed_below or i >= len(steps) - HISTORY]
    stored = cast(StoredEntry, dict(decision.state))
    stored["history"] = [[off, prior] for off, prior in history]
    return stored


__all__ = [
    "Decision",
    "decide",
    "digests",
    "event_id",
    "is_redelivery",
    "micros",
    "state_before",
    "state_of",
    "to_store",
]

"""Stage one, per raw order event (pure): normalise, diff against the order's last state, and say what
to emit now and what to hand to the contact stage.

Most orders need no contact lookup to be emitted: a contact's id is a function of its list and e-mail
(ordersync.schemas.identity), so an order with an e-mail is emitted matched right here and the contact stage
only receives a small hint to create that contact if it does not exist yet. Orders with neither e-mail
nor store customer, and deletes of orders that went no other way, are emitted unmatched here. Only an
order without e-mail but with a store customer id goes to the contact stage whole: it waits there for
that customer (ordersync.processors.join). Its delete goes the same way (the state remembers the route):
leaving directly, it could overtake the order's live version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ordersync.processors.activity import StoredEntry, decide, is_redelivery, state_before, to_store
from ordersync.processors.join import ContactIdentity, Outputs, attach, routing_key
from ordersync.processors.normalise import normalise_order
from ordersync.processors.provenance import LIVE, HistoryPolicy
from ordersync.processors.values import document_errors, micros
from ordersync.schemas.identity import contact_id
from ordersync.schemas.records import RawOrderEvent


@dataclass
class OrderStep:
    """The order stage's answer for one event."""

    emit: Outputs  # what goes out now (order and activity records)
    forward: tuple[str, dict[str, Any]] | None  # (routing key, item) for the contact stage
    state: bytes | None  # the order's new state entry to store (None: keep what is stored)
    # The status the order had when it was last matched to another contact (its e-mail was corrected):
    # the new contact's automations treat it as an order they already know, not a new one.
    seen_as: str | None = None


def step_order(
    raw: RawOrderEvent,
    entry_bytes: bytes | None,
    position: int,
    overrides: Mapping[str, str] | None,
    confirmed_below: int = 0,
    policy: HistoryPolicy = LIVE,
) -> OrderStep:
    """``position`` orders the events of one partition (offset and place in its batch); every event below
    ``confirmed_below`` has its outputs acknowledged. Raises what normalisation and the contract raise
    (the caller dead-letters the event)."""
    entry = json.loads(entry_bytes) if entry_bytes is not None else None
    previous = state_before(entry, position)
    known_version = previous["version"] if previous else None
    with document_errors():
        result = normalise_order(raw, overrides, known_version)
        order = policy.mark(raw, result.order)
    decision = decide(previous, order)
    observed = micros(raw["fetched_at"])
    redelivered = is_redelivery(entry, position)
    if not decision.apply or (not redelivered and _earlier_look(entry, order["version"], observed)):
        return OrderStep(Outputs(), None, None)  # an old version or a duplicate: nothing to do
    hint = result.contact
    key = routing_key(order, hint)
    route = entry.get("route") if entry is not None else None
    if order["deleted"] and isinstance(route, str) and ":customer:" in route:
        key = route  # one path per order: the delete follows its order through the contact stage
    if redelivered:
        # The stored entry is sent to the changelog again: the crash may have lost its first send, and a
        # restore from the changelog (a new disk) must find it.
        state: str | None = entry_bytes.decode() if entry_bytes is not None else None
    else:
        stored = to_store(decision, previous, position, entry, confirmed_below)
        stored["observed"] = observed
        if ":customer:" in key:
            stored["route"] = key  # where its delete must go too
        known = order["contact_email"] or (entry.get("contact") if entry is not None else None)
        if known:
            stored["contact"] = known
        state = json.dumps(stored)
    if order["contact_email"] and not order["deleted"]:
        email = order["contact_email"]
        contact = ContactIdentity(contact_id=contact_id(order["list_id"], email), email=email)
        item = {
            "kind": "hint",
            "list_id": order["list_id"],
            "email": email,
            "hint": dict(vars(hint)),
            "store_id": order["store_id"],
            "at": order["created_at"],
        }
        before = entry.get("contact") if entry is not None else None
        seen_as = previous["status"] if previous is not None and before and before != email else None
        return OrderStep(attach(order, decision.activities, contact), (key, item), _bytes(state), seen_as)
    if ":customer:" in key:
        item = {"kind": "order", "order": order, "activities": decision.activities, "hint": dict(vars(hint))}
        return OrderStep(Outputs(), (key, item), _bytes(state))
    matched_by = entry.get("contact") if entry is not None and order["deleted"] else None
    if matched_by:  # a delete names the contact its order had, so that contact's summary and timers see it
        contact = ContactIdentity(contact_id=contact_id(order["list_id"], matched_by), email=matched_by)
        return OrderStep(attach(order, decision.activities, contact), None, _bytes(state))
    return OrderStep(attach(order, decision.activities, None), None, _bytes(state))


def _earlier_look(entry: StoredEntry | None, version: int, observed: int) -> bool:
    """A version equal to the stored one (stores give whole seconds) but fetched from the store before the
    stored one was: an earlier look at that second (a poll published after a webhook), so not newer."""
    if entry is None or entry.get("version") != version:
        return False
    return observed < int(entry.get("observed", observed))


def _bytes(state: str | None) -> bytes | None:
    return state.encode() if state is not None else None

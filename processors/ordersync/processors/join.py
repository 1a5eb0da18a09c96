"""Joining orders to contacts (pure; the faust agent gives it its tables).

Everything here runs in the partition of one routing key, so table lookups are local:
- ``{list}:{email}``: orders with an e-mail, and contacts. A missing contact is created from the
  order's billing details and emitted, so every later order (and customer event) finds the same one.
- ``{list}:customer:{store}:{id}`` (alias): orders without an e-mail but with a store customer id, and
  the store customer's contact. An order that arrives first waits in ``pending`` (and is emitted
  unmatched at once); when the customer's contact arrives the order is re-emitted matched.
- ``{list}:unmatched:{order_key}``: no e-mail, no customer id (a guest with an empty e-mail). The order
  is kept and emitted unmatched.

A consent statement read before its contact exists (an unsubscribe) waits in ``pending`` at the
contact's key and is applied when the contact is created.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ordersync.processors import consent, envelope
from ordersync.processors.contacts import customer_alias, merge, new_contact
from ordersync.processors.model import ContactHint
from ordersync.schemas.identity import contact_key
from ordersync.schemas.records import Activity, ConsentStatement, Contact, Order

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """What a stage emits: records for the orders, activity and contacts topics."""

    orders: list[Order] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        self.orders += other.orders
        self.activities += other.activities
        self.contacts += other.contacts


def routing_key(order: Order, hint: ContactHint) -> str:
    """Where an order is joined: its contact, its store customer, or nobody (see the module's docstring)."""
    list_id = order["list_id"]
    if order["contact_email"]:
        return contact_key(list_id, order["contact_email"])
    if hint.store_customer_id:
        return customer_alias(list_id, order["store_id"], hint.store_customer_id)
    return f"{list_id}:unmatched:{order['order_key']}"


class ContactIdentity(TypedDict):
    """Enough of a contact to attach an order to it (both derived from list and e-mail)."""

    contact_id: str
    email: str


def attach(order: Order, activities: list[Activity], contact: Contact | ContactIdentity | None) -> Outputs:
    """The order and its activity, naming ``contact`` (None: unmatched)."""
    cid = contact["contact_id"] if contact else None
    email = contact["email"] if contact else order.get("contact_email")
    matched_order: Order = {**order, "contact_id": cid, "contact_email": email, "matched": contact is not None}
    return Outputs(orders=[matched_order], activities=[{**a, "contact_id": cid} for a in activities])


def _with_early_consent(pending: MutableMapping[str, Any], key: str, contact: Contact) -> Contact:
    """A contact being created, with the consent statements read before it (an unsubscribe read first)."""
    early = envelope.loads(pending[key])["consent"] if key in pending else []
    if not early:
        return contact
    pending[key] = envelope.dumps({"consent": []})  # applied (the processor's tables never delete)
    after, changed = consent.heard(early, consent.of(contact))
    return after.on(contact) if changed else contact


def on_hint(
    contacts: MutableMapping[str, Any], pending: MutableMapping[str, Any], key: str, item: dict[str, Any]
) -> Outputs:
    """An order with an e-mail was emitted by the order stage; its contact is created here if new."""
    if key in contacts:
        return Outputs()
    # Dated by the order, not the clock, so a replay builds the very same contact.
    contact = new_contact(
        item["list_id"], item["email"], ContactHint(**item["hint"]), "ORDER_BILLING", item["store_id"], item["at"]
    )
    contact = _with_early_consent(pending, key, contact)
    contacts[key] = envelope.dumps(contact)
    return Outputs(contacts=[contact])


def on_contact(
    contacts: MutableMapping[str, Any], pending: MutableMapping[str, Any], key: str, contact: Contact
) -> Outputs:
    """A contact from a store customer or an import, at its ``{list}:{email}`` key."""
    existing = contacts.get(key)
    if existing is None:
        contact = _with_early_consent(pending, key, contact)
        contacts[key] = envelope.dumps(contact)
        return Outputs(contacts=[contact])
    merged = merge(envelope.loads(existing), contact)
    if merged is None:
        return Outputs()
    contacts[key] = envelope.dumps(merged)
    return Outputs(contacts=[merged])


def on_consent(
    contacts: MutableMapping[str, Any], pending: MutableMapping[str, Any], key: str, stated: ConsentStatement
) -> Outputs:
    """A consent statement from outside the stores (an unsubscribe), for the contact at ``key``. It
    creates nobody (a campaign platform's address alone is not a contact): read before its contact, it
    waits at the key and is applied when the contact is created."""
    existing = contacts.get(key)
    if existing is None:
        early = envelope.loads(pending[key])["consent"] if key in pending else []
        pending[key] = envelope.dumps({"consent": [*early, stated][-consent.MAX_HISTORY :]})
        return Outputs()
    contact: Contact = envelope.loads(existing)
    after = consent.of(contact).hear(stated)
    if after is None:
        return Outputs()
    changed: Contact = {
        **after.on(contact),
        "version": contact["version"] + 1,
        "updated_at": max(contact["updated_at"], stated["at"]),
    }
    contacts[key] = envelope.dumps(changed)
    return Outputs(contacts=[changed])


def on_alias(
    contacts: MutableMapping[str, Any],
    pending: MutableMapping[str, Any],
    key: str,
    contact: Contact,
    offset: int | None = None,
    redelivery: bool = False,
) -> Outputs:
    """The contact of a store customer, at its alias key: match the orders that waited for it.

    The matched orders are remembered with the offset that matched them (not dropped): if the worker dies
    before those outputs are published, the same event comes again (``redelivery``) and must re-emit them.
    A customer record older than the one stored (read late, e.g. from before an e-mail change) changes
    nothing: it would move later orders back to the old e-mail's contact.
    """
    stored = contacts.get(key)
    if stored is not None and not redelivery and envelope.loads(stored)["version"] > contact["version"]:
        return Outputs()
    contacts[key] = envelope.dumps(contact)
    out = Outputs()
    waiting = envelope.loads(pending[key]) if key in pending else None
    if isinstance(waiting, dict):  # matched before
        if redelivery and waiting.get("matched_at") == offset:
            for item in waiting["items"]:
                out.extend(attach(item["order"], item["activities"], contact))
        return out
    if waiting:
        for item in waiting:
            out.extend(attach(item["order"], item["activities"], contact))
        pending[key] = envelope.dumps({"matched_at": offset, "items": waiting})
    return out


def on_order(
    contacts: MutableMapping[str, Any],
    pending: MutableMapping[str, Any],
    key: str,
    order: Order,
    activities: list[Activity],
    hint: ContactHint,
) -> Outputs:
    if order["deleted"]:
        # A delete carries no contact details: route it but do not create anyone. A deleted order waiting
        # for its store customer waits no more (a later match must not bring it back).
        found = contacts.get(key)
        waiting = envelope.loads(pending[key]) if ":customer:" in key and key in pending else None
        if isinstance(waiting, list):
            rest = [w for w in waiting if w["order"]["order_key"] != order["order_key"]]
            if len(rest) != len(waiting):
                pending[key] = bounded(rest, key)
        return attach(order, activities, envelope.loads(found) if found else None)
    if order["contact_email"]:
        found = contacts.get(key)
        if found is not None:
            return attach(order, activities, envelope.loads(found))
        # Dated by the order, not the clock, so a replay builds the very same contact.
        contact = new_contact(
            order["list_id"], order["contact_email"], hint, "ORDER_BILLING", order["store_id"], order["created_at"]
        )
        contact = _with_early_consent(pending, key, contact)
        contacts[key] = envelope.dumps(contact)
        out = attach(order, activities, contact)
        out.contacts.append(contact)
        return out
    if ":customer:" in key:
        found = contacts.get(key)
        if found is not None:
            return attach(order, activities, envelope.loads(found))
        waiting = envelope.loads(pending[key]) if key in pending else []
        if isinstance(waiting, dict):  # matched before and the contact since lost (a purge): wait anew
            waiting = []
        earlier = [w for w in waiting if w["order"]["order_key"] == order["order_key"]]
        waiting = [w for w in waiting if w["order"]["order_key"] != order["order_key"]]
        # Keep the latest order, and every activity so far: all are re-emitted matched later.
        waiting.append({"order": order, "activities": [a for w in earlier for a in w["activities"]] + activities})
        pending[key] = bounded(waiting, key)
    return attach(order, activities, None)


def join_item(
    contacts: MutableMapping[str, Any],
    pending: MutableMapping[str, Any],
    key: str,
    item: dict[str, Any],
    position: int,
    last: int | None,
) -> tuple[Outputs, int | None]:
    """One contact-stage item at ``position`` (of its by-contact partition), for a key whose last handled
    position is ``last``. Returns the outputs and the position to keep for the key (None: keep ``last``).

    An item at or below ``last`` is a redelivery after a crash: the key's table entries may be ahead of
    its outputs, so its contact is emitted again and its entries are written again (the crash may have
    lost their changelog writes, and a restore on a new disk must find them).

    A key with a contact but no position is the other half of such a crash: a restore found the contact's
    changelog write and not the position's, and the contact's output may have been lost with it. Its
    contact is emitted again, once (contacts stored before positions existed take the same path)."""
    redelivery = last is not None and position <= last
    unplaced = last is None and key in contacts
    kind = item["kind"]
    if kind == "hint":
        out = on_hint(contacts, pending, key, item)
    elif kind == "order":
        out = on_order(contacts, pending, key, item["order"], item["activities"], ContactHint(**item["hint"]))
    elif kind == "contact":
        out = on_contact(contacts, pending, key, item["contact"])
    elif kind == "consent":
        out = on_consent(contacts, pending, key, item["statement"])
    else:
        out = on_alias(contacts, pending, key, item["contact"], position, redelivery)
    # An alias key stores the store customer's raw copy, not the contact: the contact itself lives (merged
    # with every other source) at its {list}:{email} key, and re-emitting the copy would overwrite it.
    alias = ":customer:" in key
    if redelivery:
        stored_contact = contacts.get(key)
        if stored_contact is not None:
            if not out.contacts and not alias:
                out.contacts.append(envelope.loads(stored_contact))
            contacts[key] = stored_contact
        stored_pending = pending.get(key)
        if stored_pending is not None:
            pending[key] = stored_pending
        return out, last
    if unplaced and not out.contacts and not alias:
        out.contacts.append(envelope.loads(contacts[key]))
    if kind != "hint" or out.contacts:  # a hint that found its contact changed nothing
        return out, position
    return out, None


MAX_PENDING_BYTES = 256 * 1024  # one table value, far below a Kafka record's limit (its changelog copy)


def bounded(waiting: list[dict[str, Any]], key: str) -> bytes:
    """The waiting orders of one store customer as one table value, at most MAX_PENDING_BYTES: past that
    the oldest waiting orders are let go. They were emitted unmatched when they arrived and stay so; the
    newest are matched when the customer arrives. A value that grew without bound would one day be over
    the changelog's record limit, and the worker could not write it (a crash loop)."""
    value = envelope.dumps(waiting)
    dropped = 0
    while len(value) > MAX_PENDING_BYTES and len(waiting) > 1:
        share = max(1, len(waiting) * (len(value) - MAX_PENDING_BYTES) // len(value))
        waiting, dropped = waiting[share:], dropped + share
        value = envelope.dumps(waiting)
    if dropped:
        log.warning(
            "%s: %d orders waiting for this store customer let go (kept the newest %d)", key, dropped, len(waiting)
        )
    return value

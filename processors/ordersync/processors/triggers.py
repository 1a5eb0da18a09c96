"""Automation triggers (pure): what a contact's orders mean for the tools that send messages.

The contact stage keeps, per contact, a small summary of every order (status, currency, net total,
creation and completion times) and folds each emitted order into it (``on_purchase``). Triggers that
an order change causes fire at once; those that need time to pass (an abandoned checkout, an upsell's
delay, a win-back) become timers, kept in a table by due time and checked when they fall due
(``on_timer``): the state then says whether they still hold (a completion cancels an abandoned checkout,
a newer order a win-back). History (``historical`` orders: backfills, replays, old changes) updates the
summary but never fires and never arms a timer. docs/contract.md "Triggers" has the rules.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from ordersync.processors import envelope
from ordersync.processors.values import micros
from ordersync.runtime.automations import AutomationRules, UpsellRule
from ordersync.schemas.records import TRANSACTIONAL_KINDS, Order, Trigger, TriggerItem, TriggerKind

NAMESPACE = uuid.UUID("6a1d3c52-2f4e-4d7b-9a0c-5b8e1f3d2c71")
WAITING = ("CREATED", "PENDING")
KEEP_STEPS = 4  # confirmed steps kept anyway, as the order stage does (ordersync.processors.activity)


class Purchase(TypedDict):
    """What the contact stage needs of an emitted order (the order topic's record, cut down). Amounts as
    decimal strings and times as µs since the epoch: plain JSON, which costs a backfill next to nothing to
    write and read (Decimal and datetime objects cost a Python call each way)."""

    order_key: str
    store_id: str
    source_order_id: str
    order_number: str | None
    list_id: str
    contact_id: str
    email: str
    status: str
    currency: str
    total: str
    net_total: str
    items: list[TriggerItem]
    created_us: int
    modified_us: int
    deleted: bool
    historical: bool
    version: int
    seen_as: NotRequired[str]  # its status under the contact it had before its e-mail was corrected


def purchase_of(order: Order) -> Purchase | None:
    """The order's summary for the contact stage; None for an order without a contact (nobody to tell)."""
    if not order.get("contact_id") or not order.get("contact_email"):
        return None
    historical = order.get("historical", False)
    return {
        "order_key": order["order_key"],
        "store_id": order["store_id"],
        "source_order_id": order["source_order_id"],
        "order_number": order["order_number"],
        "list_id": order["list_id"],
        "contact_id": order["contact_id"] or "",
        "email": order["contact_email"] or "",
        "status": order["status"],
        "currency": order["currency"],
        "total": str(order["total"]),
        "net_total": str(order["net_total"]),
        # History fires nothing, so it does not carry what only a message needs.
        "items": [] if historical else [_item(i) for i in order["items"]],
        "created_us": micros(order["created_at"]),
        "modified_us": micros(order["modified_at"]),
        "deleted": order["deleted"],
        "historical": historical,
        "version": order["version"],
    }


def _item(item: Any) -> TriggerItem:
    return {
        "product_id": item["product_id"],
        "name": item["name"],
        "quantity": item["quantity"],
        "total": item["total"],
        "categories": list(item["categories"]),
    }


def _at(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def load_state(data: bytes | None) -> dict[str, Any] | None:
    """A contact's summary as stored (plain JSON: read without per-object hooks)."""
    return json.loads(data) if data is not None else None


def dump_state(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


def trigger_id(kind: str, list_id: str, contact_id: str, subject: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}|{list_id}|{contact_id}|{subject}"))


@dataclass(frozen=True)
class Timer:
    """A check that falls due: ``key`` sorts by due time in the timers table."""

    due: dt.datetime
    kind: TriggerKind
    subject: str
    contact: str  # the contact stage's key ({list}:{email})
    purchase: Purchase
    rule: str | None = None

    @property
    def key(self) -> str:
        return f"{micros(self.due):020d}|{self.contact}|{self.kind}|{self.subject}"

    def to_json(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "kind": self.kind,
            "subject": self.subject,
            "contact": self.contact,
            "purchase": self.purchase,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timer:
        return cls(data["due"], data["kind"], data["subject"], data["contact"], data["purchase"], data.get("rule"))


@dataclass
class Step:
    """The answer for one purchase: the contact's new summary, triggers to send, timers to arm."""

    state: dict[str, Any]
    triggers: list[Trigger] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


def _live_orders(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in state["orders"].values() if not o["deleted"]]


def _archive(state: dict[str, Any]) -> dict[str, Any]:
    return state.get("archive") or EMPTY_ARCHIVE


def spent(state: dict[str, Any], currency: str) -> Decimal:
    """Completed orders' totals net of refunds, in one currency."""
    kept = sum(
        (Decimal(o["net"]) for o in _live_orders(state) if o["s"] == "COMPLETED" and o["cur"] == currency), Decimal(0)
    )
    return kept + Decimal(_archive(state)["spent"].get(currency, "0"))


def order_count(state: dict[str, Any]) -> int:
    return len(_live_orders(state)) + int(_archive(state)["n"])


def _latest(state: dict[str, Any], when: str) -> int | None:
    """The latest creation ("c") or first completion ("done") time among the contact's live orders."""
    times = [o[when] for o in _live_orders(state) if o[when] is not None]
    folded = _archive(state)[when]
    return max([*times, folded] if folded is not None else times, default=None)


def _last_order_at(state: dict[str, Any]) -> dt.datetime | None:
    latest = _latest(state, "c")
    return _at(latest) if latest is not None else None


# A contact's summary keeps its newest orders one by one and folds older settled ones into an archive
# (count, spend per currency, latest times): a contact with thousands of orders made one table value over
# a megabyte, rewritten whole on every order.
MAX_KEPT_ORDERS = 300
EMPTY_ARCHIVE: dict[str, Any] = {"n": 0, "spent": {}, "c": None, "done": None}


def archived(state: dict[str, Any], p: Purchase) -> bool:
    """An order not kept one by one and created no later than the newest archived one: folded into the
    archive (or as old as what was), so not news."""
    newest = _archive(state)["c"]
    return p["order_key"] not in state["orders"] and newest is not None and p["created_us"] <= newest


def fold_oldest(state: dict[str, Any], keep: int = MAX_KEPT_ORDERS) -> dict[str, Any]:
    """The summary with its oldest settled orders (neither waiting nor the newest ``keep``) archived."""
    orders = state["orders"]
    if len(orders) <= keep:
        return state
    by_age = sorted(orders, key=lambda k: orders[k]["c"])
    settled = [k for k in by_age if orders[k]["s"] not in WAITING or orders[k]["deleted"]]
    folding = settled[: len(orders) - keep]
    archive = {**_archive(state), "spent": dict(_archive(state)["spent"])}
    for key in folding:
        o = orders[key]
        if o["deleted"]:
            continue
        archive["n"] += 1
        if o["s"] == "COMPLETED":
            archive["spent"][o["cur"]] = str(Decimal(archive["spent"].get(o["cur"], "0")) + Decimal(o["net"]))
        for when in ("c", "done"):
            if o[when] is not None and (archive[when] is None or o[when] > archive[when]):
                archive[when] = o[when]
    kept = {k: v for k, v in orders.items() if k not in set(folding)}
    return {**state, "orders": kept, "archive": archive}


def build(
    kind: TriggerKind,
    p: Purchase,
    state: dict[str, Any],
    subject: str,
    at: dt.datetime,
    **extra: Any,
) -> Trigger:
    trigger: Trigger = {
        "trigger_id": trigger_id(kind, p["list_id"], p["contact_id"], subject),
        "kind": kind,
        "list_id": p["list_id"],
        "contact_id": p["contact_id"],
        "contact_email": p["email"],
        "order_key": p["order_key"],
        "store_id": p["store_id"],
        "source_order_id": p["source_order_id"],
        "order_number": p["order_number"],
        "status": p["status"],  # type: ignore[typeddict-item]  # one of the five statuses
        "currency": p["currency"],
        "total": Decimal(p["total"]),
        "net_total": Decimal(p["net_total"]),
        "items": p["items"],
        "spent": None,
        "threshold": None,
        "rule": None,
        "suggested_categories": [],
        "suggested_products": [],
        "order_count": order_count(state),
        "last_order_at": _last_order_at(state),
        "fired_at": at,
        "purpose": "TRANSACTIONAL" if kind in TRANSACTIONAL_KINDS else "MARKETING",
        "marketing_consent": None,  # the contact stage knows it (ordersync.processors.agents)
    }
    trigger.update(extra)  # type: ignore[typeddict-item]
    return trigger


def _matches(rule: UpsellRule, items: list[TriggerItem]) -> bool:
    return any(
        item["product_id"] in rule.when_products or set(item["categories"]) & set(rule.when_categories)
        for item in items
    )


def empty_state() -> dict[str, Any]:
    return {"orders": {}, "vip": [], "pos": -1, "recent": []}


def on_purchase(
    state: dict[str, Any] | None,
    p: Purchase,
    contact: str,
    rules: AutomationRules,
    position: int,
    confirmed_below: int = 0,
) -> Step:
    """Fold one emitted order into the contact's summary. ``position`` orders the contact stage's items;
    one at or below the last applied is a redelivery after a crash: its triggers and timers are given
    again (same ids) and the summary is left as it is."""
    state = state if state is not None else empty_state()
    if position <= state["pos"]:
        for pos, recorded in state["recent"]:
            if pos == position:
                triggers, timers = envelope.loads(recorded)
                return Step(state, triggers, [Timer.from_json(t) for t in timers])
        return Step(state)
    state = {**state, "orders": dict(state["orders"]), "pos": position}
    if archived(state, p):
        return Step(state)  # an old order folded into the archive: its late changes are not news
    previous = state["orders"].get(p["order_key"]) or _known_elsewhere(p, rules)
    if previous is not None and p["version"] < previous["v"]:
        return Step(state)  # an older version overtaken by a newer one (a late alias match): nothing new
    first = not state["orders"] and "seen_as" not in p
    reached = previous is not None and previous["thanked"]
    entry = {
        "v": p["version"],
        "s": p["status"],
        "c": p["created_us"],
        "cur": p["currency"],
        "net": p["net_total"],
        "done": previous["done"] if previous is not None else None,
        "thanked": reached or p["status"] == rules.thank_you_status,
        "deleted": p["deleted"],
    }
    if p["status"] == "COMPLETED" and entry["done"] is None:
        entry["done"] = p["modified_us"]
    before = {currency: spent(state, currency) for currency in rules.vip_spent}
    state["orders"][p["order_key"]] = entry
    state = fold_oldest(state)
    step = Step(state)
    live = not p["historical"] and not p["deleted"]
    at = _at(p["modified_us"])
    new = previous is None
    if live and new and first and rules.first_order:
        step.triggers.append(build("FIRST_ORDER", p, state, "", at))
    if live and entry["thanked"] and not reached:
        step.triggers.append(build("ORDER_THANK_YOU", p, state, p["order_key"], at))
    step.triggers += _vip(state, p, rules, before, live)
    if live:
        step.timers += _timers(state, p, previous, contact, rules)
    if step.triggers or step.timers:
        keep = [r for r in state["recent"] if r[0] >= confirmed_below]
        recent = keep if len(keep) >= KEEP_STEPS else state["recent"][-KEEP_STEPS:]
        recorded = envelope.dumps([step.triggers, [t.to_json() for t in step.timers]]).decode()
        state["recent"] = [*recent, [position, recorded]]
    return step


def _known_elsewhere(p: Purchase, rules: AutomationRules) -> dict[str, Any] | None:
    """An order new to this contact but not to the shop (its e-mail was corrected): what the contact it had
    knew of it, as far as its automations go, so that it is thanked and counted as a first order once per
    order, not once per contact."""
    if "seen_as" not in p:
        return None
    return {"v": -1, "s": p["seen_as"], "done": None, "thanked": p["seen_as"] == rules.thank_you_status}


def _vip(
    state: dict[str, Any], p: Purchase, rules: AutomationRules, before: dict[str, Decimal], live: bool
) -> list[Trigger]:
    """VIP_REACHED for a live change that takes the contact's spend across a threshold. A threshold
    crossed in history is remembered too, so it never fires later."""
    fired = []
    for currency, threshold in rules.vip_spent.items():
        now = spent(state, currency)
        if now >= threshold and currency not in state["vip"]:
            state["vip"] = [*state["vip"], currency]
            if live and before[currency] < threshold and currency == p["currency"]:
                at = _at(p["modified_us"])
                fired.append(build("VIP_REACHED", p, state, currency, at, spent=now, threshold=threshold))
    return fired


def _timers(
    state: dict[str, Any], p: Purchase, previous: dict[str, Any] | None, contact: str, rules: AutomationRules
) -> list[Timer]:
    """What a live change arms: an abandoned-checkout check for a new waiting order, a win-back check for
    a new order after the first, an upsell per matching rule for an order that just completed."""
    timers = []
    created = _at(p["created_us"])
    if previous is None and p["status"] in WAITING and rules.abandoned_after:
        timers.append(Timer(created + rules.abandoned_after, "CHECKOUT_ABANDONED", p["order_key"], contact, p))
    if previous is None and rules.win_back_after and order_count(state) >= 2:
        timers.append(Timer(created + rules.win_back_after, "WIN_BACK", p["order_key"], contact, p))
    if p["status"] == "COMPLETED" and (previous is None or previous["s"] != "COMPLETED"):
        for rule in rules.upsell:
            if _matches(rule, p["items"]):
                subject = f"{p['order_key']}|{rule.name}"
                timers.append(Timer(_at(p["modified_us"]) + rule.delay, "UPSELL", subject, contact, p, rule.name))
    return timers


def on_timer(state: dict[str, Any] | None, timer: Timer, rules: AutomationRules) -> Trigger | None:
    """The trigger a timer fires now, or None when what armed it no longer holds."""
    if state is None:
        return None
    p = timer.purchase
    entry = state["orders"].get(p["order_key"])
    if entry is None or entry["deleted"]:
        return None
    current: Purchase = {**p, "status": entry["s"], "net_total": entry["net"]}
    if timer.kind == "CHECKOUT_ABANDONED":
        latest_done = _latest(state, "done")
        completed_since = latest_done is not None and latest_done >= p["created_us"]
        if entry["s"] not in WAITING or completed_since:
            return None
        return build("CHECKOUT_ABANDONED", current, state, timer.subject, timer.due)
    if timer.kind == "WIN_BACK":
        latest_created = _latest(state, "c")
        newer = latest_created is not None and latest_created > p["created_us"]
        if newer or order_count(state) < 2:
            return None
        return build("WIN_BACK", current, state, timer.subject, timer.due)
    if timer.kind == "UPSELL":
        rule = next((r for r in rules.upsell if r.name == timer.rule), None)
        if rule is None or entry["s"] != "COMPLETED":
            return None
        return build(
            "UPSELL",
            current,
            state,
            timer.subject,
            timer.due,
            rule=rule.name,
            suggested_categories=list(rule.suggest_categories),
            suggested_products=list(rule.suggest_products),
        )
    return None


def may_send(trigger: Trigger, consent: bool | None, rules: AutomationRules) -> bool:
    """Whether ``trigger`` goes out for a contact whose marketing consent is ``consent``: a marketing
    trigger only with consent given, unless the list's rules allow marketing without it."""
    return trigger["purpose"] != "MARKETING" or consent is True or not rules.marketing_needs_consent


def timers_due_by(stream_us: int | None, wall_us: int, caught_up: bool) -> int | None:
    """Up to when (µs since the epoch) a by-contact partition's timers may fire. On stream time, the
    latest event time its items carried, while the worker has input left to read: a completion still in
    the backlog must be read before its checkout's abandoned check falls due (the wall clock ran ahead of
    it after downtime). On the wall clock once everything there is has been read, so that a quiet shop's
    timers still fire. None: nothing fires yet (no event since the start, and input left to read)."""
    if caught_up:
        return wall_us if stream_us is None else max(wall_us, stream_us)
    return None if stream_us is None else min(stream_us, wall_us)


def item_time(item: Mapping[str, Any]) -> int | None:
    """The event time (µs) a contact-stage item carries: what moves its partition's stream time."""
    kind = item["kind"]
    if kind == "purchase":
        return int(item["modified_us"])
    if kind == "credit":
        return int(item["created_us"])
    if kind == "touch":
        return int(item["at"])
    if kind == "hint":
        return micros(item["at"])
    if kind == "order":
        return micros(item["order"]["modified_at"])
    return None

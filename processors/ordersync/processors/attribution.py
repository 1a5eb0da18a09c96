"""Campaign attribution (pure): which campaign an order is credited to.

The contact stage keeps, per contact, the campaign touches it was sent (clicks and opens, and the time
of each campaign's send, which tells a link scanner's click from a person's) and its orders with the
decision each has. An order is credited to the contact's last click within the list's click window up to
the order's creation, else its last open within the open window (machine opens and scanner clicks only
where the list says so). The decision is a function of the touches and the order's creation time only,
never of the order in which they arrive: a touch read after an order it could credit (a campaign import
that lags, a replay reading both topics side by side) decides that order again, and a changed decision
is sent again (a tombstone when nothing qualifies any more). The revenue it brings is the order's own, so
refunds and cancellations lower it where it is summed. docs/contract.md "Attribution" has the rules.

Per contact the stage keeps its most recent ``KEEP_TOUCHES`` clicks and opens each, whatever their age
(a backfill of old orders after a campaign import still finds the touches of its time), and the latest
``KEEP_ORDERS`` orders by creation time; an older order seen again is decided again, to the same answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from ordersync.processors.triggers import Purchase
from ordersync.processors.values import micros
from ordersync.runtime.automations import AttributionRules
from ordersync.schemas.records import Attribution, CampaignEvent

KEEP_TOUCHES = 500
KEEP_ORDERS = 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# A touch as stored: [occurred µs, event id, campaign id, campaign name, channel, flagged]; flagged is
# "machine open" for opens and unused for clicks (a click's scanner check needs the send, which may
# arrive after it).
Touch = list[Any]
# A decision as stored: 0 (nothing credited) or ["CLICK" | "OPEN", *the touch's first five fields].
Decision = Any
# An order as stored: [created µs, historical, store id, source order id, decision].
Known = list[Any]


class Credit(TypedDict):
    """What a decision needs of an order (a Purchase has it all): for a list with attribution and no
    automations, the contact stage gets only this, a third of a purchase's bytes."""

    order_key: str
    store_id: str
    source_order_id: str
    list_id: str
    contact_id: str
    created_us: int
    deleted: bool
    historical: bool


def credit_item(purchase: Purchase) -> dict[str, Any]:
    """The item for the contact stage (plain JSON)."""
    return {"kind": "credit", **{field: purchase[field] for field in Credit.__annotations__}}  # type: ignore[literal-required]


def touch_item(event: CampaignEvent) -> dict[str, Any]:
    """What the contact stage needs of a campaign event (plain JSON)."""
    return {
        "kind": "touch",
        "list_id": event["list_id"],
        "contact_id": event["contact_id"],
        "type": event["type"],
        "at": micros(event["occurred_at"]),
        "event_id": event["event_id"],
        "campaign_id": event["campaign_id"],
        "campaign_name": event["campaign_name"],
        "channel": event["channel"],
        "holdout": event["holdout"],
        "machine": event["machine"],
    }


def empty() -> dict[str, Any]:
    return {"clicks": [], "opens": [], "sends": {}, "orders": {}, "who": None, "pos": -1}


def _upgraded(state: dict[str, Any] | None) -> dict[str, Any]:
    """The state in today's shape. One kept before decisions could change has no creation times: its
    orders are forgotten, and decided again (and sent) when a version of them comes again."""
    if state is None:
        return empty()
    if "decided" in state:
        del state["decided"]
        state.update(orders={}, who=None)
    return state


@dataclass
class AttributionStep:
    state: dict[str, Any]  # to store
    # What to send, keyed by the order: a record, or None (a tombstone: no longer credited to anything).
    sends: list[tuple[str, Attribution | None]]


def on_touch(
    state: dict[str, Any] | None, item: dict[str, Any], position: int = -1, rules: AttributionRules | None = None
) -> AttributionStep:
    """Fold one touch into the contact's state, and decide again the orders it could change (with
    ``rules``). A repeated event (same id) changes nothing; a redelivery (``position`` not after the
    state's last) sends again the current decisions of those orders, so a crash between the sends and the
    commit loses none."""
    state = _upgraded(state)
    if "list_id" in item:
        state["who"] = [item["list_id"], item["contact_id"]]
    redelivered = position <= state["pos"]
    state["pos"] = max(state["pos"], position)
    kind = item["type"]
    if kind == "SEND":
        if not item["holdout"]:  # a holdout was sent nothing: no send time for scanner checks either
            sends = state["sends"]
            sends[item["campaign_id"]] = max(item["at"], sends.get(item["campaign_id"], 0))
    elif kind in ("CLICK", "OPEN"):
        touches: list[Touch] = state["clicks" if kind == "CLICK" else "opens"]
        if not any(t[1] == item["event_id"] for t in touches):
            touch = [
                item["at"], item["event_id"], item["campaign_id"], item["campaign_name"], item["channel"],
                item["machine"],
            ]  # fmt: skip
            touches.append(touch)
            touches.sort(key=lambda t: (t[0], t[1]))
            del touches[:-KEEP_TOUCHES]
    else:
        return AttributionStep(state, [])
    if rules is None:
        return AttributionStep(state, [])
    reach = rules.scanner_s + max(rules.click_window, rules.open_window).total_seconds()
    low, high = item["at"], item["at"] + int(reach * 1_000_000)
    sends_now: list[tuple[str, Attribution | None]] = []
    for key, known in state["orders"].items():
        if not low <= known[0] <= high:
            continue
        found = _decision(state, known[0], rules)
        if found != known[4] or redelivered:
            known[4] = found
            sends_now.append((key, _record(key, known, state["who"])))
    return AttributionStep(state, sends_now)


def _last(touches: list[Touch], low: int, high: int, keep: Any) -> Touch | None:
    best = None
    for touch in touches:
        if low <= touch[0] <= high and keep(touch) and (best is None or (touch[0], touch[1]) > (best[0], best[1])):
            best = touch
    return best


def decide(state: dict[str, Any], created_us: int, rules: AttributionRules) -> tuple[str, Touch] | None:
    """The touch credited for an order created at ``created_us``: ("CLICK" | "OPEN", touch), or None."""
    sends = state["sends"]

    def person(click: Touch) -> bool:
        sent = sends.get(click[2])
        return rules.scanner_clicks or sent is None or not 0 <= click[0] - sent < rules.scanner_s * 1_000_000

    click_low = created_us - int(rules.click_window.total_seconds() * 1_000_000)
    click = _last(state["clicks"], click_low, created_us, person)
    if click is not None:
        return "CLICK", click
    if not rules.opens:
        return None
    open_low = created_us - int(rules.open_window.total_seconds() * 1_000_000)
    opened = _last(state["opens"], open_low, created_us, lambda t: rules.machine_opens or not t[5])
    return ("OPEN", opened) if opened is not None else None


def _decision(state: dict[str, Any], created_us: int, rules: AttributionRules) -> Decision:
    found = decide(state, created_us, rules)
    return [found[0], *found[1][:5]] if found is not None else 0


def on_order(state: dict[str, Any] | None, purchase: Credit, position: int, rules: AttributionRules) -> AttributionStep:
    """Decide ``purchase``'s order from the touches known, and send the decision when it is new or
    changed; a redelivery (``position`` not after the state's last) sends the current one again. A deleted
    order keeps the decision it had."""
    state = _upgraded(state)
    key = purchase["order_key"]
    orders: dict[str, Known] = state["orders"]
    state["who"] = [purchase["list_id"], purchase["contact_id"]]
    known = orders.get(key)
    if position <= state["pos"]:
        return AttributionStep(state, [(key, _record(key, known, state["who"]))] if known and known[4] else [])
    state["pos"] = position
    if purchase["deleted"]:
        return AttributionStep(state, [])
    before = known[4] if known is not None else 0
    historical = known[1] if known is not None else purchase["historical"]
    found = _decision(state, purchase["created_us"], rules)
    known = orders[key] = [purchase["created_us"], historical, purchase["store_id"], purchase["source_order_id"], found]
    if len(orders) > KEEP_ORDERS:
        del orders[min(orders, key=lambda k: (orders[k][0], k))]
    return AttributionStep(state, [] if found == before else [(key, _record(key, known, state["who"]))])


def _record(key: str, known: Known, who: list[str] | None) -> Attribution | None:
    """The record of a stored order's decision; None when it credits nothing (sent as a tombstone)."""
    created_us, historical, store_id, source_order_id, found = known
    if not found:
        return None
    touch, at, event_id, campaign_id, name, channel = found
    list_id, contact = who or ["", ""]
    return {
        "order_key": key,
        "store_id": store_id,
        "source_order_id": source_order_id,
        "list_id": list_id,
        "contact_id": contact,
        "campaign_id": campaign_id,
        "campaign_name": name,
        "channel": cast(Any, channel),
        "touch": touch,
        "touch_event_id": event_id,
        "touched_at": EPOCH + dt.timedelta(microseconds=at),
        "order_created_at": EPOCH + dt.timedelta(microseconds=created_us),
        "historical": historical,
    }

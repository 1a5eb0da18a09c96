"""Campaign attribution (pure): which campaign an order is credited to.

The contact stage keeps, per contact, the campaign touches it was sent (clicks and opens, and the time
of each campaign's send, which tells a link scanner's click from a person's) and the orders it already
decided. An order is decided once, the first time the stage sees it after the contact's first touch (a
contact never touched has no state, so attribution costs its orders no write): the contact's last click within
the list's click window up to the order's creation, else its last open within the open window (machine
opens and scanner clicks only where the list says so). The decision never changes afterwards; the
revenue it brings is the order's own, so refunds and cancellations lower it where it is summed.
docs/contract.md "Attribution" has the rules.

Touches are kept for the contact's most recent ``KEEP_TOUCHES`` clicks and opens each, whatever their
age: a backfill of old orders after a campaign import still finds the touches of its time.
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
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# A touch as stored: [occurred µs, event id, campaign id, campaign name, channel, flagged]; flagged is
# "machine open" for opens and unused for clicks (a click's scanner check needs the send, which may
# arrive after it).
Touch = list[Any]


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
    return {"clicks": [], "opens": [], "sends": {}, "decided": {}, "pos": -1}


def on_touch(state: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any]:
    """Fold one touch into the contact's state. A repeated event (same id) changes nothing."""
    state = state if state is not None else empty()
    kind = item["type"]
    if kind == "SEND":
        if not item["holdout"]:  # a holdout was sent nothing: no send time for scanner checks either
            sends = state["sends"]
            sends[item["campaign_id"]] = max(item["at"], sends.get(item["campaign_id"], 0))
        return state
    if kind not in ("CLICK", "OPEN"):
        return state
    touches: list[Touch] = state["clicks" if kind == "CLICK" else "opens"]
    if any(t[1] == item["event_id"] for t in touches):
        return state
    touch = [item["at"], item["event_id"], item["campaign_id"], item["campaign_name"], item["channel"], item["machine"]]
    touches.append(touch)
    touches.sort(key=lambda t: (t[0], t[1]))
    del touches[:-KEEP_TOUCHES]
    return state


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


@dataclass
class AttributionStep:
    state: dict[str, Any] | None  # to store (None: the contact has no state, and gets none)
    attribution: Attribution | None  # to send (a first decision, or a redelivery's repeat of it)


def on_order(state: dict[str, Any] | None, purchase: Credit, position: int, rules: AttributionRules) -> AttributionStep:
    """Decide ``purchase``'s order the first time it is seen; a redelivery (``position`` not after the
    state's last) repeats the decision it made, so a crash between the send and the commit loses none."""
    if state is None:  # never touched: nothing to credit, and nothing to remember of its orders
        return AttributionStep(None, None)
    key = purchase["order_key"]
    decided = state["decided"]
    if position <= state["pos"]:
        stored = decided.get(key)
        return AttributionStep(state, _record(purchase, stored) if stored else None)
    state["pos"] = position
    if key in decided or purchase["deleted"]:
        return AttributionStep(state, None)
    found = decide(state, purchase["created_us"], rules)
    decided[key] = [found[0], *found[1][:5]] if found is not None else 0
    return AttributionStep(state, _record(purchase, decided[key]) if found is not None else None)


def _record(purchase: Credit, stored: list[Any]) -> Attribution:
    touch, at, event_id, campaign_id, name, channel = stored
    return {
        "order_key": purchase["order_key"],
        "store_id": purchase["store_id"],
        "source_order_id": purchase["source_order_id"],
        "list_id": purchase["list_id"],
        "contact_id": purchase["contact_id"],
        "campaign_id": campaign_id,
        "campaign_name": name,
        "channel": cast(Any, channel),
        "touch": touch,
        "touch_event_id": event_id,
        "touched_at": EPOCH + dt.timedelta(microseconds=at),
        "order_created_at": EPOCH + dt.timedelta(microseconds=purchase["created_us"]),
        "historical": purchase["historical"],
    }

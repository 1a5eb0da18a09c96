"""Campaign attribution (pure): the credited touch, checked against a from-scratch computation."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from ordersync.processors.attribution import credit_item, on_order, on_touch
from ordersync.processors.values import micros
from ordersync.runtime.automations import AttributionRules
from tests.test_triggers import purchase

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
US = 1_000_000
RULE_SETS = [
    AttributionRules(),
    AttributionRules(opens=False),
    AttributionRules(machine_opens=True, scanner_clicks=True),
    AttributionRules(click_window_days=1, open_window_days=0.5, scanner_s=60),
]


def touch(kind: str, at_us: int, n: int, campaign: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "touch",
        "type": kind,
        "at": at_us,
        "event_id": f"e{n}",
        "campaign_id": campaign,
        "campaign_name": f"Campaign {campaign}",
        "channel": "EMAIL",
        "holdout": extra.get("holdout", False),
        "machine": extra.get("machine", False),
    }


def history(rng: random.Random) -> tuple[list[dict[str, Any]], list[int]]:
    """Sends (some to the holdout), opens (some machine), clicks (some seconds after the send: scanners)
    over 20 days, and order creation times among them."""
    touches: list[dict[str, Any]] = []
    n = 0
    for c in range(rng.randint(1, 6)):
        campaign = f"c{c}"
        sent = micros(T0) + rng.randint(0, 20 * 86400) * US
        n += 1
        touches.append(touch("SEND", sent, n, campaign, holdout=rng.random() < 0.2))
        for _ in range(rng.randint(0, 3)):
            n += 1
            touches.append(
                touch("OPEN", sent + rng.randint(0, 4 * 86400) * US, n, campaign, machine=rng.random() < 0.3)
            )
        for _ in range(rng.randint(0, 3)):
            n += 1
            delay = rng.randint(0, 30) * US if rng.random() < 0.3 else rng.randint(60, 6 * 86400) * US
            touches.append(touch("CLICK", sent + delay, n, campaign))
    rng.shuffle(touches)  # arrival order is not time order
    orders = [micros(T0) + rng.randint(0, 26 * 86400) * US for _ in range(rng.randint(1, 5))]
    return touches, orders


def expected(touches: list[dict[str, Any]], created: int, rules: AttributionRules) -> tuple[str, str] | None:
    """From scratch: every touch known, filtered and ranked by the rules as the docs state them."""
    sends = {t["campaign_id"]: t["at"] for t in touches if t["type"] == "SEND" and not t["holdout"]}
    sends = {
        c: max(t["at"] for t in touches if t["type"] == "SEND" and not t["holdout"] and t["campaign_id"] == c)
        for c in sends
    }

    def scanner(t: dict[str, Any]) -> bool:
        sent = sends.get(t["campaign_id"])
        return sent is not None and 0 <= t["at"] - sent < rules.scanner_s * US

    clicks = [
        t for t in touches
        if t["type"] == "CLICK" and created - rules.click_window_days * 86400 * US <= t["at"] <= created
        and (rules.scanner_clicks or not scanner(t))
    ]  # fmt: skip
    if clicks:
        best = max(clicks, key=lambda t: (t["at"], t["event_id"]))
        return "CLICK", best["event_id"]
    if not rules.opens:
        return None
    opens = [
        t for t in touches
        if t["type"] == "OPEN" and created - rules.open_window_days * 86400 * US <= t["at"] <= created
        and (rules.machine_opens or not t["machine"])
    ]  # fmt: skip
    if opens:
        best = max(opens, key=lambda t: (t["at"], t["event_id"]))
        return "OPEN", best["event_id"]
    return None


@pytest.mark.parametrize("rules", RULE_SETS, ids=["defaults", "clicks-only", "machines-count", "short-windows"])
def test_attribution_equals_a_from_scratch_computation(rules: AttributionRules) -> None:
    rng = random.Random(7)
    seen = {"CLICK": 0, "OPEN": 0, None: 0}
    for _ in range(300):
        touches, orders = history(rng)
        state = None
        for item in touches:
            state = on_touch(state, item)
        for position, created in enumerate(orders):
            p = purchase(position + 1, created_us=created)
            step = on_order(state, p, position, rules)
            state = step.state
            want = expected(touches, created, rules)
            got = (step.attribution["touch"], step.attribution["touch_event_id"]) if step.attribution else None
            assert got == want
            seen[want[0] if want else None] += 1
    # the generator reaches every outcome the rules allow
    assert seen["CLICK"] > 50 and seen[None] > 50 and (seen["OPEN"] > 20 or not rules.opens)


def test_a_decision_never_changes_and_a_redelivery_repeats_it() -> None:
    rules = AttributionRules()
    order = purchase(3, created_us=micros(T0) + 10 * 86400 * US)
    state = on_touch(None, touch("CLICK", order["created_us"] - 3600 * US, 1, "spring"))
    first = on_order(state, order, 10, rules)
    assert first.attribution is not None and first.attribution["campaign_id"] == "spring"
    # a later-arriving click, nearer the order: too late, the order was decided
    state = on_touch(first.state, touch("CLICK", order["created_us"] - 60 * US, 2, "summer"))
    again = on_order(state, {**order, "version": 2, "status": "CANCELED"}, 11, rules)  # type: ignore[typeddict-item]
    assert again.attribution is None
    # the first decision's message redelivered after a crash: the same record again
    redelivered = on_order(again.state, order, 10, rules)
    assert redelivered.attribution == first.attribution


def test_holdouts_repeats_and_deleted_orders() -> None:
    rules = AttributionRules()
    created = micros(T0) + 86400 * US
    state = on_touch(None, touch("SEND", created - 7200 * US, 1, "spring", holdout=True))
    state = on_touch(state, touch("CLICK", created - 3600 * US, 2, "spring"))
    state = on_touch(state, touch("CLICK", created - 3600 * US, 2, "spring"))  # the same event twice
    assert len(state["clicks"]) == 1
    # the holdout's send is no send: the click is not a scanner's (no send seconds before it)
    assert on_order(state, purchase(1, created_us=created), 1, rules).attribution is not None
    assert on_order(state, purchase(2, created_us=created, deleted=True), 2, rules).attribution is None


def test_a_contact_never_touched_keeps_no_state_and_its_order_is_decided_after_the_first_touch() -> None:
    rules = AttributionRules()
    order = purchase(4, created_us=micros(T0) + 3 * 86400 * US)
    untouched = on_order(None, order, 1, rules)
    assert untouched.state is None and untouched.attribution is None  # nothing written for it
    # a click before the order, delivered late: the next version of the order is the first decided
    state = on_touch(None, touch("CLICK", order["created_us"] - 600 * US, 1, "late"))
    later = on_order(state, {**order, "version": 2}, 2, rules)  # type: ignore[typeddict-item]
    assert later.attribution is not None and later.attribution["campaign_id"] == "late"
    assert on_order(later.state, {**order, "version": 3}, 3, rules).attribution is None  # decided: never again


def test_a_credit_item_decides_as_the_whole_purchase_does() -> None:
    rules = AttributionRules()
    order = purchase(5, created_us=micros(T0) + 2 * 86400 * US)
    state = on_touch(None, touch("CLICK", order["created_us"] - 600 * US, 1, "spring"))
    item = credit_item(order)
    assert item["kind"] == "credit" and "items" not in item and "total" not in item
    lean = on_order(on_touch(None, touch("CLICK", order["created_us"] - 600 * US, 1, "spring")), item, 1, rules)  # type: ignore[arg-type]
    assert lean.attribution is not None and lean.attribution == on_order(state, order, 1, rules).attribution

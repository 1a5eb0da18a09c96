"""Automation triggers (pure): which changes fire what, and never for history."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from ordersync.processors.triggers import Purchase, Step, Timer, on_purchase, on_timer, trigger_id
from ordersync.processors.values import micros
from ordersync.runtime.automations import AutomationRules, UpsellRule

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
RULES = AutomationRules(
    vip_spent={"EUR": Decimal("500"), "CHF": Decimal("400")},
    abandoned_after_h=4,
    win_back_after_days=30,
    upsell=(UpsellRule(name="boots-care", when_categories=("Boots",), suggest_categories=("Shoe care",), delay_h=72),),
)


def purchase(
    n: int, status: str = "COMPLETED", *, historical: bool = False, version: int = 1, **extra: Any
) -> Purchase:
    p: dict[str, Any] = {
        "order_key": f"s:{n}",
        "store_id": "s",
        "source_order_id": str(n),
        "order_number": str(n),
        "list_id": "1",
        "contact_id": "c1",
        "email": "a@example.com",
        "status": status,
        "currency": "EUR",
        "total": "100.00",
        "net_total": "100.00",
        "items": [
            {"product_id": "9", "name": "Boot", "quantity": 1, "total": Decimal("100.00"), "categories": ["Boots"]}
        ],
        "created_us": micros(T0 + dt.timedelta(days=n)),
        "modified_us": micros(T0 + dt.timedelta(days=n, minutes=version)),
        "deleted": False,
        "historical": historical,
        "version": version,
    }
    p.update({k: str(v) if isinstance(v, Decimal) and k != "items" else v for k, v in extra.items()})
    return p  # type: ignore[return-value]


class Contact:
    """One contact's stage, as the agent drives it: positions go up, timers are collected."""

    def __init__(self, rules: AutomationRules = RULES) -> None:
        self.state: dict[str, Any] | None = None
        self.position = 0
        self.rules = rules
        self.timers: list[Timer] = []
        self.fired: list[dict[str, Any]] = []

    def send(self, p: Purchase, confirmed: bool = False) -> Step:
        """``confirmed``: every earlier item's outputs are acknowledged (what the commit gate reports)."""
        self.position += 1
        below = self.position if confirmed else 0
        step = on_purchase(self.state, p, "1:a@example.com", self.rules, self.position, below)
        self.state = step.state
        self.timers += step.timers
        self.fired += step.triggers
        return step

    def run_timers(self) -> None:
        for timer in sorted(self.timers, key=lambda t: t.key):
            trigger = on_timer(self.state, timer, self.rules)
            if trigger is not None:
                self.fired.append(trigger)  # type: ignore[arg-type]
        self.timers = []

    def kinds(self) -> list[str]:
        return [t["kind"] for t in self.fired]


def test_history_fires_nothing_and_arms_nothing() -> None:
    contact = Contact()
    for n in range(1, 8):
        contact.send(purchase(n, "PENDING", historical=True))
        contact.send(purchase(n, "COMPLETED", historical=True, version=2))
    contact.run_timers()
    assert contact.fired == []
    assert contact.state is not None and contact.state["vip"] == ["EUR"]  # crossed in history: silently


def test_a_live_completed_first_order_fires_first_order_and_thank_you_once() -> None:
    contact = Contact()
    contact.send(purchase(1, "PENDING"))
    contact.send(purchase(1, "COMPLETED", version=2))
    contact.send(purchase(1, "PENDING", version=3))
    contact.send(purchase(1, "COMPLETED", version=4))  # reaches COMPLETED again: no second thank-you
    assert contact.kinds() == ["FIRST_ORDER", "ORDER_THANK_YOU"]
    ids = {t["trigger_id"] for t in contact.fired}
    assert trigger_id("ORDER_THANK_YOU", "1", "c1", "s:1") in ids


def test_the_thank_you_status_is_configurable() -> None:
    contact = Contact(AutomationRules(thank_you_status="PENDING", first_order=False))
    contact.send(purchase(1, "PENDING"))
    assert contact.kinds() == ["ORDER_THANK_YOU"]


def test_an_order_completed_in_history_gets_no_thank_you_later() -> None:
    contact = Contact()
    contact.send(purchase(1, "COMPLETED", historical=True))
    contact.send(purchase(1, "COMPLETED", version=2, total=Decimal("90")))
    assert contact.fired == []


def test_a_redelivery_gives_the_same_triggers_and_timers_and_keeps_the_state() -> None:
    contact = Contact()
    step = contact.send(purchase(1, "PENDING"))
    again = on_purchase(step.state, purchase(1, "PENDING"), "1:a@example.com", RULES, contact.position)
    assert again.triggers == step.triggers and again.timers == step.timers and again.state == step.state
    later = contact.send(purchase(1, "PENDING", version=2))
    assert later.triggers == [] and later.timers == []


def test_checkout_abandoned_fires_unless_the_order_or_a_later_one_completes() -> None:
    waiting = Contact()
    waiting.send(purchase(1, "PENDING"))
    waiting.run_timers()
    assert waiting.kinds() == ["FIRST_ORDER", "CHECKOUT_ABANDONED"]

    completed = Contact()
    completed.send(purchase(1, "PENDING"))
    completed.send(purchase(1, "COMPLETED", version=2))
    completed.run_timers()
    assert "CHECKOUT_ABANDONED" not in completed.kinds()

    bought_another = Contact()
    bought_another.send(purchase(1, "PENDING"))
    bought_another.send(purchase(2, "COMPLETED"))
    bought_another.run_timers()
    assert "CHECKOUT_ABANDONED" not in bought_another.kinds()


def test_a_deleted_order_cancels_its_timers() -> None:
    contact = Contact()
    contact.send(purchase(1, "PENDING"))
    contact.send(purchase(1, "UNKNOWN", version=2, deleted=True))
    contact.run_timers()
    assert contact.kinds() == ["FIRST_ORDER"]


# -- checked against an independent computation on a generated history --------------------------------
def _history(seed: int) -> list[tuple[Purchase, bool]]:
    """Orders of one contact in arrival order: (purchase, live); creation times increase."""
    rng = random.Random(seed)
    out = []
    cut = rng.randint(0, 6)  # the first `cut` orders are history
    for n in range(1, rng.randint(2, 10)):
        live = n > cut
        currency = rng.choice(["EUR", "CHF"])
        total = Decimal(rng.randint(20, 300))
        categories = [rng.choice(["Boots", "Hats", "Socks"])]
        items = [{"product_id": str(n), "name": "x", "quantity": 1, "total": total, "categories": categories}]
        statuses = rng.choice([["PENDING", "COMPLETED"], ["COMPLETED"], ["PENDING"], ["PENDING", "CANCELED"],
                               ["COMPLETED", "CANCELED"]])  # fmt: skip
        for version, status in enumerate(statuses, 1):
            refund = Decimal(rng.choice([0, 0, 10])) if status == "COMPLETED" else Decimal(0)
            p = purchase(n, status, historical=not live, version=version, currency=currency, total=total,
                         net_total=total - refund, items=items if live else [])  # fmt: skip
            out.append((p, live))
    return out


def _expected(history: list[tuple[Purchase, bool]]) -> set[tuple[str, str]]:
    """VIP_REACHED, WIN_BACK and UPSELL, computed from the definitions (docs/contract.md "Triggers")."""
    expected: set[tuple[str, str]] = set()
    latest: dict[str, Purchase] = {}
    crossed: set[str] = set()
    went_live_completed: set[str] = set()
    first_seen_live: dict[str, bool] = {}
    for p, live in history:
        was = latest.get(p["order_key"])
        first_seen_live.setdefault(p["order_key"], live)
        latest[p["order_key"]] = p
        if live and p["status"] == "COMPLETED" and (was is None or was["status"] != "COMPLETED"):
            went_live_completed.add(p["order_key"])
        for currency, threshold in RULES.vip_spent.items():
            total = sum((Decimal(q["net_total"]) for q in latest.values() if q["status"] == "COMPLETED" and q["currency"] == currency), Decimal(0))  # fmt: skip
            if total >= threshold and currency not in crossed:
                crossed.add(currency)
                if live and p["currency"] == currency:
                    expected.add(("VIP_REACHED", currency))
    newest = max(latest.values(), key=lambda q: q["created_us"])
    if len(latest) >= 2 and first_seen_live[newest["order_key"]]:
        expected.add(("WIN_BACK", newest["order_key"]))
    for key in went_live_completed:
        if latest[key]["status"] == "COMPLETED" and "Boots" in latest[key]["items"][0]["categories"]:
            expected.add(("UPSELL", f"{key}|boots-care"))
    return expected


def test_vip_win_back_and_upsell_equal_an_independent_computation() -> None:
    fired_any = set()
    for seed in range(300):
        history = _history(seed)
        contact = Contact()
        for p, _ in history:
            contact.send(p)
        contact.run_timers()
        got = set()
        for t in contact.fired:
            if t["kind"] == "VIP_REACHED":
                got.add(("VIP_REACHED", t["currency"]))
            elif t["kind"] == "WIN_BACK":
                got.add(("WIN_BACK", t["order_key"]))
            elif t["kind"] == "UPSELL":
                got.add(("UPSELL", f"{t['order_key']}|{t['rule']}"))
        assert got == _expected(history), f"seed {seed}"
        fired_any |= {kind for kind, _ in got}
    assert fired_any == {"VIP_REACHED", "WIN_BACK", "UPSELL"}  # the generator reaches every case


# -- rules in the stores file ----------------------------------------------------------------------------
def test_the_example_stores_file_has_valid_rules_and_a_bad_rule_names_its_list_and_key() -> None:
    from pathlib import Path

    import pytest

    from ordersync.runtime.automations import load_automations, parse_automations
    from ordersync.runtime.stores import ConfigError

    example = load_automations(Path(__file__).resolve().parents[1] / "stores.example.toml")
    assert example.for_list("1").vip_spent == {"EUR": Decimal("1000")}
    assert example.for_list("other").abandoned_after_h == 4  # defaults elsewhere
    with pytest.raises(ConfigError, match=r"list '2'.*vip_spent.*positive"):
        parse_automations({"automations": {"2": {"vip_spent": {"EUR": "-5"}}}})
    with pytest.raises(ConfigError, match=r"list '2'.*thank_you_sttus"):
        parse_automations({"automations": {"2": {"thank_you_sttus": "COMPLETED"}}})


def test_a_deleted_orders_abandoned_checkout_timer_does_not_fire() -> None:
    """A delete carried no contact (its record names nobody), so it never reached the contact's summary
    and the abandoned-checkout timer of a deleted pending order still fired. The order stage now remembers
    the e-mail it matched the order by, and the delete names that contact."""
    from ordersync.processors.order_stage import step_order
    from ordersync.processors.triggers import purchase_of
    from tests.raw_events import woo_doc, woo_event

    created = step_order(woo_event(woo_doc(status="pending")), None, 1, None)
    assert created.state is not None
    deleted_event = woo_event(
        woo_doc(status="pending"), operation="DELETE", source_modified_at=T0 + dt.timedelta(days=900)
    )
    deleted = step_order(deleted_event, created.state, 2, None)
    order = deleted.emit.orders[0]
    assert order["deleted"] and order["contact_id"] == created.emit.orders[0]["contact_id"]

    stage = Contact(AutomationRules(abandoned_after_h=4, first_order=False))
    first = purchase_of(created.emit.orders[0])
    assert first is not None
    stage.send(first)
    assert [t.kind for t in stage.timers] == ["CHECKOUT_ABANDONED"]
    gone = purchase_of(order)
    assert gone is not None  # before, None: nobody to tell
    stage.send(gone)
    stage.run_timers()
    assert stage.kinds() == []


def test_an_order_whose_email_is_corrected_is_not_thanked_or_a_first_order_again() -> None:
    """Once per order, not per contact: a completed order whose e-mail the shop corrects moves to another
    contact, whose summary did not know it. It was thanked again and got FIRST_ORDER again, under new ids."""
    from ordersync.processors.order_stage import step_order
    from ordersync.processors.triggers import purchase_of
    from tests.raw_events import woo_doc, woo_event

    typo = {"first_name": "Zoë", "last_name": "Müller", "email": "zoe@exmaple.com"}
    fixed = {**typo, "email": "zoe@example.com"}
    first = step_order(woo_event(woo_doc(status="completed", billing=typo)), None, 1, None)
    doc = woo_doc(status="completed", billing=fixed, date_modified_gmt="2024-03-14T09:30:00")
    corrected = step_order(woo_event(doc), first.state, 2, None)
    assert first.seen_as is None and corrected.seen_as == "COMPLETED"

    old, new = Contact(), Contact()
    bought = purchase_of(first.emit.orders[0])
    assert bought is not None
    old.send(bought)
    assert sorted(old.kinds()) == ["FIRST_ORDER", "ORDER_THANK_YOU"]
    moved = purchase_of(corrected.emit.orders[0])
    assert moved is not None and moved["email"] == "zoe@example.com"
    new.send({**moved, "seen_as": corrected.seen_as})  # what the agent hands on
    assert new.kinds() == []


def test_timers_run_on_stream_time_until_the_worker_has_caught_up() -> None:
    from ordersync.processors.triggers import item_time, timers_due_by

    wall = micros(T0)
    assert timers_due_by(None, wall, caught_up=False) is None  # nothing read yet, input left: nothing fires
    assert timers_due_by(wall - 3_600_000_000, wall, caught_up=False) == wall - 3_600_000_000
    assert timers_due_by(wall - 3_600_000_000, wall, caught_up=True) == wall
    assert timers_due_by(None, wall, caught_up=True) == wall
    assert timers_due_by(wall + 5, wall, caught_up=False) == wall  # a store clock ahead of ours
    assert item_time({"kind": "purchase", **purchase(1)}) == purchase(1)["modified_us"]
    assert item_time({"kind": "hint", "at": T0}) == wall
    assert item_time({"kind": "contact", "contact": {}}) is None


def test_a_contact_with_thousands_of_orders_keeps_a_bounded_summary_with_the_same_figures() -> None:
    """One value per contact held every order: about 7,000 orders went over a megabyte (over the
    changelog's record limit: a crash loop), and every order rewrote it whole. Now the newest 500 are kept
    one by one and older settled ones folded into an archive, with the same spend and counts."""
    from ordersync.processors.triggers import MAX_KEPT_ORDERS, dump_state, order_count, spent

    contact = Contact(AutomationRules(vip_spent={"EUR": Decimal("1000000")}))
    n = 3000
    for i in range(1, n + 1):
        contact.send(purchase(i, "COMPLETED" if i % 3 else "CANCELED", net_total=Decimal("10.50")), confirmed=True)
    state = contact.state
    assert state is not None
    assert len(state["orders"]) == MAX_KEPT_ORDERS and len(dump_state(state)) < 128 * 1024
    completed = sum(1 for i in range(1, n + 1) if i % 3)
    assert order_count(state) == n and spent(state, "EUR") == Decimal("10.50") * completed
    fired = len(contact.fired)
    contact.send(purchase(1, "COMPLETED", version=9))  # a late change to an archived order: not news
    assert len(contact.fired) == fired and order_count(contact.state or {}) == n
    contact.send(purchase(n + 1, "COMPLETED"))  # a new order still counts and is thanked
    assert contact.kinds()[-1] == "ORDER_THANK_YOU" and contact.fired[-1]["order_count"] == n + 1


def test_only_the_thank_you_goes_to_contacts_without_marketing_consent() -> None:
    """Marketing triggers fired for contacts who never agreed to marketing. Now each trigger says its
    purpose, and a marketing one goes out only with consent given (unless the list's rules allow it)."""
    from ordersync.processors.triggers import may_send

    contact = Contact(AutomationRules(vip_spent={"EUR": Decimal("1")}))
    contact.send(purchase(1, "PENDING"))
    contact.send(purchase(1, "COMPLETED", version=2))
    fired = {t["kind"]: t for t in contact.fired}
    assert set(fired) == {"FIRST_ORDER", "ORDER_THANK_YOU", "VIP_REACHED"}
    assert {k: t["purpose"] for k, t in fired.items()} == {
        "FIRST_ORDER": "MARKETING", "ORDER_THANK_YOU": "TRANSACTIONAL", "VIP_REACHED": "MARKETING",
    }  # fmt: skip
    rules, lenient = AutomationRules(), AutomationRules(marketing_needs_consent=False)
    for consent in (None, False):
        assert [k for k, t in fired.items() if may_send(t, consent, rules)] == ["ORDER_THANK_YOU"]
        assert all(may_send(t, consent, lenient) for t in fired.values())
    assert all(may_send(t, True, rules) for t in fired.values())

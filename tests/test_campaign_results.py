"""Per-campaign results from a real PostgreSQL written by the real sink writer: attributed revenue that
follows refunds and cancellations in two currencies, and incremental revenue whose interval holds a
known effect and finds none where there is none."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ordersync.segmentation.campaigns import campaign_results, lift, refresh
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from tests.processes import ordersync
from tests.samples import attribution, campaign_event, order

T = dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC)
NS = uuid.UUID("2d1f4e4a-6f55-4f7e-8f0b-0c9b8d3e2a11")


def cid(n: int) -> str:
    return str(uuid.uuid5(NS, f"c{n}"))


def an_order(n: int, contact: int, currency: str, net: Decimal, created: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {
        **order(), "order_key": f"s:{n}", "store_id": "s", "source_order_id": str(n), "list_id": "1",
        "contact_id": cid(contact), "contact_email": f"c{contact}@example.com", "matched": True,
        "currency": currency, "total": net, "net_total": net, "refunded_total": Decimal(0), "refunds": [],
        "items": [], "created_at": created, "modified_at": created, "completed_at": None, "version": 1, **extra,
    }  # fmt: skip


def event(n: int, contact: int, campaign: str, kind: str, at: dt.datetime, holdout: bool = False) -> dict[str, Any]:
    return {
        **campaign_event(), "event_id": f"e{n}", "list_id": "1", "contact_id": cid(contact),
        "email": f"c{contact}@example.com", "campaign_id": campaign, "campaign_name": campaign.title(),
        "type": kind, "occurred_at": at, "holdout": holdout,
    }  # fmt: skip


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    migrate(database_url)
    return database_url


def test_attributed_revenue_follows_refunds_cancellations_and_deletes_per_currency(db: str) -> None:
    rng = random.Random(3)
    orders, events, credits = [], [], []
    expected: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, set(), Decimal(0)])
    for contact in range(1, 201):
        campaign = "autumn" if contact % 2 else "winter"
        events.append(event(contact, contact, campaign, "SEND", T))
        for k in range(rng.randint(0, 3)):
            number = contact * 10 + k
            currency = rng.choice(["EUR", "CHF"])
            net = Decimal(rng.randint(500, 20000)) / 100
            fate = rng.choice(["kept", "kept", "refunded", "cancelled", "deleted"])
            extra: dict[str, Any] = {}
            if fate == "refunded":
                extra = {"refunded_total": Decimal("5.00"), "net_total": net - Decimal("5.00")}
            elif fate == "cancelled":
                extra = {"status": "CANCELED"}
            elif fate == "deleted":
                extra = {"deleted": True, "version": 2}
            orders.append(an_order(number, contact, currency, net, T + dt.timedelta(hours=k + 1), **extra))
            credits.append({**attribution(), "order_key": f"s:{number}", "store_id": "s", "source_order_id": str(number),
                            "list_id": "1", "contact_id": cid(contact), "campaign_id": campaign})  # fmt: skip
            if fate in ("kept", "refunded"):
                got = expected[(campaign, currency)]
                got[0] += 1
                got[1].add(contact)
                got[2] += extra.get("net_total", net)
    with psycopg.connect(db) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[o for o in orders if not o["deleted"]], messages=1), "test")
        write_batch(conn, Batch(orders=[o for o in orders if o["deleted"]], campaign_events=events, messages=1), "test")
        write_batch(conn, Batch(attributions=credits + credits[:5], messages=1), "test")  # a repeat changes nothing
        refresh(conn)
        results = {
            (r.campaign_id, r.currency): r for r in campaign_results(conn, "1") if r.campaign_id in ("autumn", "winter")
        }
    assert set(results) == set(expected)
    for key, (count, buyers, revenue) in expected.items():
        r = results[key]
        assert (r.orders, r.buyers, r.revenue, r.recipients) == (count, len(buyers), revenue, 100)
        assert r.incremental is None  # no holdout


def campaign_with_effect(campaign: str, base: int, sent_rate: float, holdout_rate: float, rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """3,000 recipients, half held out; each buys one order of 20-80 EUR in the week after the send with
    the group's rate (and once more, outside the window, whatever the group)."""
    events, orders = [], []
    for i in range(3000):
        contact, holdout = base + i, i % 2 == 1
        events.append(event(base + i, contact, campaign, "SEND", T, holdout=holdout))
        if rng.random() < (holdout_rate if holdout else sent_rate):
            amount = Decimal(rng.randint(2000, 8000)) / 100
            orders.append(an_order(base * 10 + i, contact, "EUR", amount, T + dt.timedelta(days=rng.uniform(0, 4.9))))
        orders.append(an_order(base * 10 + 5000 + i, contact, "EUR", Decimal("10.00"), T + dt.timedelta(days=9)))
    return events, orders


def test_incremental_revenue_holds_a_known_effect_and_finds_none_where_there_is_none(db: str) -> None:
    rng = random.Random(11)
    effect_events, effect_orders = campaign_with_effect("lifted", 10_000, 0.36, 0.30, rng)  # sent buy 20 % more
    flat_events, flat_orders = campaign_with_effect("flat", 20_000, 0.30, 0.30, rng)
    with psycopg.connect(db) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=effect_orders + flat_orders, campaign_events=effect_events + flat_events, messages=1), "test")  # fmt: skip
        refresh(conn)
        results = {r.campaign_id: r for r in campaign_results(conn, "1", window_days=5)}
        # Other windows are computed from the raw events and orders: 7 days hold the same orders, 10 days
        # also the 10 EUR order everyone placed on day 9.
        week = {r.campaign_id: r.incremental for r in campaign_results(conn, "1", window_days=7)}
        ten = {r.campaign_id: r.incremental for r in campaign_results(conn, "1", window_days=10)}
    lifted, flat = results["lifted"].incremental, results["flat"].incremental
    assert week["lifted"] == lifted and week["flat"] == flat
    assert lifted is not None and ten["lifted"] is not None
    assert ten["lifted"].sent_per_recipient == lifted.sent_per_recipient + 10
    assert ten["lifted"].holdout_per_recipient == lifted.holdout_per_recipient + 10
    assert lifted is not None and flat is not None
    true_difference = Decimal("0.06") * Decimal("50.00")  # 6 points more buyers, 50 EUR on average
    assert lifted.low <= true_difference <= lifted.high and lifted.significant
    assert lifted.lift is not None and Decimal("0.05") < lifted.lift < Decimal("0.40")
    assert not flat.significant and flat.low < 0 < flat.high
    assert results["lifted"].recipients == 1500 and results["lifted"].holdout == 1500


def test_the_interval_is_the_two_sample_normal_interval() -> None:
    # group values: sent 0, 10, 20 (mean 10, var 100); holdout 0, 0, 6 (mean 2, var 12)
    result = lift(3, Decimal(30), Decimal(500), 3, Decimal(6), Decimal(36))
    assert result is not None
    assert result.difference == 8 and result.incremental_revenue == 24 and result.lift == 4
    margin = Decimal("1.959964") * (Decimal(100) / 3 + Decimal(12) / 3).sqrt()
    assert (result.low, result.high) == (8 - margin, 8 + margin)
    assert lift(1, Decimal(1), Decimal(1), 5, Decimal(0), Decimal(0)) is None  # too few to say


def test_the_report_command_prints_json_and_csv(db: str, subprocess_env: dict[str, str]) -> None:
    env = {**subprocess_env, "ORDERSYNC_DATABASE_URL": db}
    result = ordersync("campaigns", "report", "--list", "1", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"lifted", "flat"} <= {r["campaign"] for r in rows}
    assert next(r for r in rows if r["campaign"] == "lifted")["significant"] == "yes"
    csv_out = ordersync("campaigns", "report", "--format", "csv", env=env)
    assert csv_out.stdout.splitlines()[0].startswith("list,campaign,name,currency,recipients")

"""Every segment condition against a fixture whose right answer is computed here, independently."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ordersync.schemas.identity import contact_id
from ordersync.segmentation import SegmentError, build_query
from tests.sink_data import load_segment_fixture, segment_fixture

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
Order = dict[str, Any]


CONTACTS, ORDERS = segment_fixture(NOW)


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    return load_segment_fixture(database_url, CONTACTS, ORDERS)


def live_orders(email: str) -> list[Order]:
    return [o for o in ORDERS if o["contact_email"] == email and not o["deleted"]]


def expected(pred: Callable[[list[Order]], bool], list_id: str = "1") -> set[str]:
    return {c["email"] for c in CONTACTS if c["list_id"] == list_id and pred(live_orders(c["email"]))}


def run(db: str, segment: dict[str, Any], list_id: str | None = "1") -> set[str]:
    query, params = build_query(segment, list_id=list_id, now=NOW)
    with psycopg.connect(db) as conn:
        return {row[2] for row in conn.execute(query, params)}


def spent(orders: list[Order], currency: str, since: dt.datetime | None = None) -> Decimal:
    return sum(
        (
            o["net_total"]
            for o in orders
            if o["status"] != "CANCELED" and o["currency"] == currency and (since is None or o["created_at"] >= since)
        ),
        Decimal(0),
    )


CASES: list[tuple[str, dict[str, Any], Callable[[list[Order]], bool]]] = [
    ("ordered last 30 days", {"ordered": {"last_days": 30}}, lambda os: any(o["created_at"] >= NOW - dt.timedelta(days=30) for o in os)),
    ("ordered since a date", {"ordered": {"from": "2025-11-01"}}, lambda os: any(o["created_at"] >= dt.datetime(2025, 11, 1, tzinfo=dt.UTC) for o in os)),
    ("ordered ever", {"ordered": {}}, lambda os: bool(os)),
    (
        "ordered between",
        {"ordered": {"from": "2025-09-01", "to": "2025-12-01"}},
        lambda os: any(dt.datetime(2025, 9, 1, tzinfo=UTC) <= o["created_at"] < dt.datetime(2025, 12, 1, tzinfo=UTC) for o in os),
    ),
    ("at least 3 orders", {"order_count": {"op": ">=", "value": 3}}, lambda os: len(os) >= 3),
    ("fewer than 2 orders (includes none)", {"order_count": {"op": "<", "value": 2}}, lambda os: len(os) < 2),
    (
        "at least 2 COMPLETED orders ever",
        {"order_count": {"op": ">=", "value": 2, "status": "COMPLETED"}},
        lambda os: sum(o["status"] == "COMPLETED" for o in os) >= 2,
    ),
    (
        "no COMPLETED order ever (includes none)",
        {"order_count": {"op": "=", "value": 0, "status": "COMPLETED"}},
        lambda os: not any(o["status"] == "COMPLETED" for o in os),
    ),
    (
        "2+ completed in last 365 days",
        {"order_count": {"op": ">=", "value": 2, "status": "COMPLETED", "last_days": 365}},
        lambda os: sum(1 for o in os if o["status"] == "COMPLETED" and o["created_at"] >= NOW - dt.timedelta(days=365)) >= 2,
    ),
    ("spent > 200 EUR", {"spent": {"op": ">", "value": "200", "currency": "EUR"}}, lambda os: spent(os, "EUR") > 200),
    ("spent <= 50 EUR (includes none)", {"spent": {"op": "<=", "value": 50, "currency": "eur"}}, lambda os: spent(os, "EUR") <= 50),
    (
        "spent > 100 CHF last 90 days",
        {"spent": {"op": ">", "value": "100", "currency": "CHF", "last_days": 90}},
        lambda os: spent(os, "CHF", NOW - dt.timedelta(days=90)) > 100,
    ),
    (
        "average order value > 150 EUR",
        {"average_order_value": {"op": ">", "value": "150", "currency": "EUR"}},
        lambda os: (n := [o for o in os if o["status"] != "CANCELED" and o["currency"] == "EUR"]) != [] and spent(os, "EUR") / len(n) > 150,
    ),
    ("bought product P3", {"bought": {"product_id": "P3"}}, lambda os: any(i["product_id"] == "P3" for o in os if o["status"] != "CANCELED" for i in o["items"])),
    ("bought SKU-2", {"bought": {"sku": "SKU-2"}}, lambda os: any(i["sku"] == "SKU-2" for o in os if o["status"] != "CANCELED" for i in o["items"])),
    ("bought category Shoes", {"bought": {"category": "Shoes"}}, lambda os: any("Shoes" in i["categories"] for o in os if o["status"] != "CANCELED" for i in o["items"])),
    (
        "hostile category is a plain value",
        {"bought": {"category": "x'); DROP TABLE orders; --"}},
        lambda os: any("x'); DROP TABLE orders; --" in i["categories"] for o in os if o["status"] != "CANCELED" for i in o["items"]),
    ),
    ("name contains '100%' (LIKE wildcards inert)", {"bought": {"name": "100%"}}, lambda os: any("100%" in i["name"] for o in os if o["status"] != "CANCELED" for i in o["items"])),
    ("name contains '_' (LIKE wildcards inert)", {"bought": {"name": "e_b"}}, lambda os: any("e_b" in i["name"].lower() for o in os if o["status"] != "CANCELED" for i in o["items"])),
    ("has a PENDING order", {"has_status": "pending"}, lambda os: any(o["status"] == "PENDING" for o in os)),
    (
        "abandoned checkout 2h",
        {"abandoned_checkout": {"hours": 2}},
        lambda os: any(
            o["status"] in ("PENDING", "CREATED") and o["created_at"] < NOW - dt.timedelta(hours=2)
            and not any(p["status"] == "COMPLETED" and p["created_at"] > o["created_at"] for p in os)
            for o in os
        ),
    ),
    ("lapsed 180 days", {"lapsed": {"days": 180}}, lambda os: bool(os) and max(o["created_at"] for o in os) < NOW - dt.timedelta(days=180)),
    (
        "all + any + not",
        {"all": [{"ordered": {"last_days": 200}}, {"any": [{"bought": {"category": "Bags"}}, {"has_status": "CANCELED"}]}, {"not": {"lapsed": {"days": 10}}}]},
        lambda os: any(o["created_at"] >= NOW - dt.timedelta(days=200) for o in os)
        and (any("Bags" in i["categories"] for o in os if o["status"] != "CANCELED" for i in o["items"]) or any(o["status"] == "CANCELED" for o in os))
        and not (bool(os) and max(o["created_at"] for o in os) < NOW - dt.timedelta(days=10)),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "segment", "pred"), CASES, ids=[c[0] for c in CASES])
def test_segment_condition(db: str, name: str, segment: dict[str, Any], pred: Callable[[list[Order]], bool]) -> None:
    want = expected(pred)
    assert run(db, segment) == want
    assert want or name.startswith("hostile") or "inert" in name  # the fixture exercises the condition


def test_the_fixture_is_not_trivial() -> None:
    assert sum(o["deleted"] for o in ORDERS) > 0 and len(ORDERS) > 250


def test_list_scope(db: str) -> None:
    assert run(db, {"has_status": "COMPLETED"}, list_id="2") <= {"other-list@example.com"}
    assert "other-list@example.com" not in run(db, {"order_count": {"op": "<", "value": 100}})


def test_the_hostile_value_did_nothing(db: str) -> None:
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (len(ORDERS),)


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ({"spent": {"op": "; DROP", "value": 1, "currency": "EUR"}}, "op"),
        ({"spent": {"value": 1}}, "currency"),
        ({"has_status": "SHIPPED"}, "SHIPPED"),
        ({"ordered": {"from": "yesterday"}}, "ISO"),
        ({"teleported": {}}, "unknown condition"),
        ({"all": []}, "non-empty"),
        ({"order_count": {"value": -1}}, "non-negative"),
        ({"spent": {"op": ">", "value": "NaN", "currency": "EUR"}}, "finite"),
        ({"spent": {"op": ">", "value": "1e400000", "currency": "EUR"}}, "finite"),
        ({"ordered": {"last_days": 10**12}}, "calendar"),
        ({"abandoned_checkout": {"hours": 10**15}}, "calendar"),
        ({"lapsed": {"days": 10**12}}, "calendar"),
    ],
)
def test_invalid_segments_are_clear_errors(segment: dict[str, Any], message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        build_query(segment, now=NOW)


def test_cli_formats_and_count(db: str) -> None:
    env = {"ORDERSYNC_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "ordersync.cli", "segment", "--list", "1", "--category", "Shoes"]
    want = run(db, {"all": [{"bought": {"category": "Shoes"}}]})
    count = subprocess.run([*base, "--count"], env=env, capture_output=True, text=True, check=True)
    assert int(count.stdout) == len(want)
    as_json = subprocess.run([*base, "--format", "json"], env=env, capture_output=True, text=True, check=True)
    assert {json.loads(line)["email"] for line in as_json.stdout.splitlines()} == want
    as_csv = subprocess.run([*base, "--format", "csv"], env=env, capture_output=True, text=True, check=True)
    assert as_csv.stdout.splitlines()[0].startswith("email,") and len(as_csv.stdout.splitlines()) == len(want) + 1
    bad = subprocess.run([*base[:-2], "--spent-over", "10"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "currency" in bad.stderr
    for flags in (["--spent-over", "NaN", "--currency", "EUR"], ["--ordered-last-days", str(10**12)]):
        hostile = subprocess.run([*base[:-2], *flags], env=env, capture_output=True, text=True)
        assert hostile.returncode == 2 and "invalid segment" in hostile.stderr and "Traceback" not in hostile.stderr


@pytest.mark.parametrize(("state", "value"), [("given", True), ("withdrawn", False), ("unknown", None)])
def test_consent_is_a_condition_and_an_export_column(db: str, state: str, value: bool | None) -> None:
    consenting = {c["email"] for c in CONTACTS if c["list_id"] == "1" and c["marketing_consent"] is value}
    assert consenting and run(db, {"consent": state}) == consenting
    shoes = expected(
        lambda os: any("Shoes" in i["categories"] for o in os if o["status"] != "CANCELED" for i in o["items"])
    )
    assert run(db, {"all": [{"bought": {"category": "Shoes"}}, {"consent": state}]}) == shoes & consenting
    env = {"ORDERSYNC_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}
    # with --any the flags are alternatives, but consent stays a requirement
    args = ["segment", "--list", "1", "--category", "Shoes", "--min-orders", "1", "--any", "--consent", state]
    out = subprocess.run([sys.executable, "-m", "ordersync.cli", *args, "--format", "csv"], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    assert out[0] == "email,first_name,last_name,list_id,contact_id,marketing_consent"
    rows = [line.split(",") for line in out[1:]]
    assert (
        rows
        and {r[0] for r in rows} <= consenting
        and {r[-1] for r in rows} == {{True: "given", False: "withdrawn", None: ""}[value]}
    )


def test_consent_must_be_one_of_its_states() -> None:
    with pytest.raises(SegmentError, match="given, withdrawn, unknown"):
        build_query({"consent": True}, now=NOW)


def test_contact_view_lists_orders_and_timeline(db: str) -> None:
    email = CONTACTS[0]["email"]
    out = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "contact", email, "--list", "1"],
        env={"ORDERSYNC_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert email in out.stdout and f"Orders ({len([o for o in ORDERS if o['contact_email'] == email])})" in out.stdout
    assert contact_id("1", email) in out.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "contact", "nobody@example.com", "--list", "1"],
        env={"ORDERSYNC_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 1 and "no contact" in missing.stderr

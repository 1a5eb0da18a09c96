"""RFM scores (docs/rfm.md): the ranges, the builder rows and flags, and, on a real PostgreSQL, scores and
segments equal to a computation from scratch here after mixed batches through the sink's writer."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from ordersync.segment_cli import conditions_from_flags
from ordersync.segmentation import SegmentError, build_query, rfm
from ordersync.segmentation.form import builder_from_document, condition_from_row, document_from_builder
from tests.sink_data import contact, mixed_batches, order

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)
Scores = dict[tuple[str, str], tuple[int, int, int]]  # (contact_id, currency) → (r, f, m)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [("4", 4, 4), ("4+", 4, 5), ("2-", 1, 2), ("2-4", 2, 4), (" 5 ", 5, 5), ("1+", 1, 5), (3, 3, 3)],
)
def test_score_ranges(text: Any, low: int, high: int) -> None:
    assert rfm.parse_range(text) == rfm.ScoreRange(low, high)


@pytest.mark.parametrize("text", ["0", "6", "4-2", "++", "", "4+5", True, "1.5"])
def test_bad_score_ranges_are_refused(text: Any) -> None:
    with pytest.raises(rfm.RangeError):
        rfm.parse_range(text)


def test_an_rfm_code_is_three_scores() -> None:
    assert rfm.parse_code("514") == {"r": rfm.ScoreRange(5, 5), "f": rfm.ScoreRange(1, 1), "m": rfm.ScoreRange(4, 4)}
    for bad in ("55", "5555", "506", "abc"):
        with pytest.raises(rfm.RangeError):
            rfm.parse_code(bad)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "give a score"),
        ({"score": "55"}, "three scores"),
        ({"score": "555", "r": "4+"}, "either score or r"),
        ({"r": "9"}, "is not a score"),
        ({"r": "4", "currency": "euro"}, "currency"),
        ({"recency": "4"}, "'recency' is not one of"),
    ],
)
def test_bad_rfm_conditions_name_the_problem(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        build_query({"rfm": spec})


def test_flags_and_builder_rows_give_rfm_conditions() -> None:
    flags = conditions_from_flags({"rfm": "555", "currency": "EUR"})
    assert flags == [{"rfm": {"score": "555", "currency": "EUR"}}]
    assert conditions_from_flags({"rfm_r": "4+", "rfm_m": "2-"}) == [{"rfm": {"r": "4+", "m": "2-"}}]
    row = {"kind": "rfm", "r": "4+", "f": "", "m": "5", "currency": "chf"}
    assert condition_from_row(row, "row 1") == {"rfm": {"r": "4+", "m": "5", "currency": "CHF"}}
    builder = builder_from_document({"all": [{"rfm": {"score": "512", "currency": "EUR"}}]})
    assert builder is not None
    assert builder.rows == [{"kind": "rfm", "r": "5", "f": "1", "m": "2", "currency": "EUR"}]
    assert document_from_builder(builder) == {"all": [{"rfm": {"r": "5", "f": "1", "m": "2", "currency": "EUR"}}]}
    assert builder_from_document({"rfm": {"r": "2-4"}}) is None  # a range the row does not offer: edited as JSON


# From scratch: the definition in docs/rfm.md, computed without the sink's statistics or SQL.


def quintile_bounds(values: list[Any]) -> list[Any]:
    """percentile_disc at 20, 40, 60, 80 %: the first value whose rank reaches the fraction of contacts."""
    ranked = sorted(values)
    return [ranked[math.ceil(Fraction(k, 5) * len(ranked)) - 1] for k in range(1, 5)]


def expected_scores(orders: dict[str, dict[str, Any]]) -> Scores:
    per: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for o in orders.values():
        if o["contact_id"] is not None and not o["deleted"]:
            per[(o["list_id"], o["currency"], o["contact_id"])].append(o)
    values: dict[tuple[str, str], dict[str, tuple[Any, int, Decimal]]] = defaultdict(dict)
    for (list_id, currency, cid), live in per.items():
        priced = [o for o in live if o["status"] != "CANCELED"]
        if priced:
            last = max(o["created_at"] for o in live)
            values[(list_id, currency)][cid] = (last, len(priced), sum((o["net_total"] for o in priced), Decimal(0)))
    scores: Scores = {}
    for (_, currency), members in values.items():
        bounds = [quintile_bounds([v[i] for v in members.values()]) for i in range(3)]
        for cid, v in members.items():
            r, f, m = (1 + sum(v[i] > b for b in bounds[i]) for i in range(3))
            scores[(cid, currency)] = (r, f, m)
    return scores


def _counts(scores: Scores, currency: str) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for (_, cur), (r, f, _) in scores.items():
        if cur == currency:
            counts[(r, f)] += 1
    return dict(counts)


def stored_scores(conn: psycopg.Connection[Any]) -> Scores:
    rows = conn.execute(f"SELECT contact_id::text, currency, r, f, m FROM ({rfm.SCORES}) x").fetchall()
    return {(cid, currency): (r, f, m) for cid, currency, r, f, m in rows}


def test_rfm_equals_a_computation_from_scratch_after_mixed_batches(database_url: str) -> None:
    """After every batch (new orders, status changes, refunds, moves, deletes, purges) and a refresh, each
    contact's scores equal the definition computed here; a refresh with nothing marked does no work."""
    from ordersync.sinks.migrate import migrate
    from ordersync.sinks.writer import Batch, prepare, write_batch

    migrate(database_url)
    contacts, batches, purges = mixed_batches()
    truth: dict[str, dict[str, Any]] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE contacts, orders, order_items, contact_order_stats, rfm_bounds, rfm_cells, rfm_stale_lists"
        )
        prepare(conn)
        write_batch(conn, Batch(contacts=contacts, messages=1), "rfm-test")
        for orders, purged in zip(batches, purges, strict=True):
            write_batch(conn, Batch(orders=orders, purged_orders=purged, messages=1), "rfm-test")
            for o in orders:
                truth[o["order_key"]] = o
            for store_id, oid in purged:
                truth.pop(f"{store_id}:{oid}")
            assert rfm.stale(conn) > 0  # the batch marked its lists
            assert rfm.refresh(conn) > 0
            assert rfm.stale(conn) == 0 and rfm.refresh(conn) == 0
            want = expected_scores(truth)
            assert stored_scores(conn) == want
            for currency in ("EUR", "CHF"):
                cells = rfm.grid(conn, None, currency).cells
                counted = {(r, f): n for (r, f), n in _counts(want, currency).items()}
                assert {k: v["contacts"] for k, v in cells.items()} == counted
        scores = expected_scores(truth)
        assert {s[1] for s in scores.values()} == {1, 2, 3, 4, 5} or len({s[1] for s in scores.values()}) >= 3

        # Segments equal the contacts whose computed scores match, per list and currency or any currency.
        email_of = {c["contact_id"]: c["email"] for c in contacts}
        list_of = {c["contact_id"]: c["list_id"] for c in contacts}
        cases: list[tuple[dict[str, Any], Any]] = [
            ({"score": "555"}, lambda s, cur: s == (5, 5, 5)),
            ({"r": "4+"}, lambda s, cur: s[0] >= 4),
            ({"r": "2-", "currency": "CHF"}, lambda s, cur: s[0] <= 2 and cur == "CHF"),
            ({"f": "3-4", "m": "5", "currency": "EUR"}, lambda s, cur: 3 <= s[1] <= 4 and s[2] == 5 and cur == "EUR"),
            ({"m": "1"}, lambda s, cur: s[2] == 1),
        ]
        for spec, holds in cases:
            for list_id in ("1", "2"):
                want_emails = {
                    email_of[cid] for (cid, cur), s in scores.items() if holds(s, cur) and list_of[cid] == list_id
                }
                query, params = build_query({"rfm": spec}, list_id=list_id, now=NOW)
                got = {row[2] for row in conn.execute(query, params)}
                assert got == want_emails, (spec, list_id)
            assert want_emails or spec == {"score": "555"}


def test_a_segment_run_sees_the_latest_batch(database_url: str, tmp_path: Any) -> None:
    """`ordersync segment --rfm-m 5` refreshes the bounds the sink marked: a contact whose spending just
    jumped is in the top fifth at once, without the web app's background refresh."""
    import json
    import os
    import subprocess
    import sys

    from ordersync.sinks.migrate import migrate
    from ordersync.sinks.writer import Batch, prepare, write_batch

    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE contacts, orders, order_items, contact_order_stats, rfm_bounds, rfm_cells, rfm_stale_lists"
        )
        prepare(conn)
        people = [contact("7", f"m{i}@example.com") for i in range(10)]
        orders = [
            order(900 + i, p["email"], created=NOW, total=f"{10 + i}.00", list_id="7") for i, p in enumerate(people)
        ]
        write_batch(conn, Batch(orders=orders, contacts=people, messages=1), "rfm-run")
        rfm.refresh(conn)
        write_batch(
            conn,
            Batch(orders=[{**orders[0], "total": Decimal(500), "net_total": Decimal(500), "version": 2}], messages=1),
            "rfm-run",
        )

    env = {**os.environ, "ORDERSYNC_DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "segment", "--list", "7", "--rfm-m", "5", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    emails = sorted(json.loads(line)["email"] for line in out.stdout.splitlines())
    assert emails == ["m0@example.com", "m9@example.com"]  # 500.00, then the highest of the rest

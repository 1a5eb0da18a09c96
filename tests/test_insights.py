"""The Insights summaries against the orders they summarise: after the sink's writes and a refresh, the
per-day figures and the top products and categories equal the same figures computed from the orders."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from ordersync.segmentation import insight_days
from ordersync.web import insights
from tests.sink_data import load_segment_fixture, order, segment_fixture

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
CONTACTS, ORDERS = segment_fixture(NOW)

DIRECT_DAYS = """
SELECT (created_at AT TIME ZONE 'UTC')::date, store_id, list_id, currency, status, count(*)::int, sum(net_total),
       count(*) FILTER (WHERE created_at = (SELECT min(created_at) FROM orders p
                                           WHERE p.contact_id = o.contact_id AND NOT p.deleted))::int
FROM orders o WHERE NOT deleted AND created_at >= %s
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""
SUMMARY_DAYS = """
SELECT day, store_id, list_id, currency, status, orders, net_revenue, first_orders
FROM insight_days WHERE day >= %s ORDER BY 1, 2, 3, 4, 5
"""
DIRECT_TOP = """
SELECT {name}, o.currency, sum(i.quantity), sum(i.total)
FROM orders o JOIN order_items i USING (store_id, source_order_id) {unnest}
WHERE NOT o.deleted AND o.status <> 'CANCELED' AND o.created_at >= %s
GROUP BY 1, 2 ORDER BY 4 DESC, 1 LIMIT 10
"""


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    url = load_segment_fixture(database_url, CONTACTS, ORDERS)
    with psycopg.connect(url) as conn:
        insight_days.refresh(conn, today=TODAY)
        conn.commit()
    return url


def rows(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def test_day_summaries_equal_the_orders(db: str) -> None:
    horizon = TODAY - dt.timedelta(days=insight_days.HORIZON_DAYS)
    assert rows(db, SUMMARY_DAYS, horizon) == rows(db, DIRECT_DAYS, midnight(horizon))
    assert rows(db, "SELECT count(*) FROM insight_days WHERE day < %s", horizon) == [(0,)]


@pytest.mark.parametrize("days_back", [366, 182, 60, 31])
def test_top_products_and_categories_equal_the_orders(db: str, days_back: int) -> None:
    since = TODAY - dt.timedelta(days=days_back)
    with psycopg.connect(db) as conn:
        shown = insights.load(conn, "month", since, None, None)
    for kind, name, unnest in (("products", "i.name", ""), ("categories", "c", ", unnest(i.categories) c")):
        direct = rows(db, DIRECT_TOP.format(name=name, unnest=unnest), midnight(since))
        assert [(r["name"], r["currency"], r["quantity"], r["revenue"]) for r in shown[kind]] == direct, kind


def test_a_backlog_is_left_to_the_background_and_old_days_are_forgotten(db: str) -> None:
    recent = [order(5000 + i, "p1@example.com", created=NOW - dt.timedelta(days=i)) for i in range(10)]
    ancient = order(5100, "p1@example.com", created=NOW - dt.timedelta(days=insight_days.HORIZON_DAYS + 30))
    from ordersync.sinks.writer import Batch, prepare, write_batch

    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[*recent, ancient], messages=1), "test")
    with psycopg.connect(db) as conn:
        assert insight_days.pending(conn) >= 11
        assert (
            insight_days.refresh(conn, today=TODAY, at_most=insight_days.IN_REQUEST_DAYS) == 0
        )  # a page does not wait
        assert insight_days.refresh(conn, today=TODAY) >= 11  # the background refresher does it
        assert insight_days.pending(conn) == 0
        conn.commit()
    test_day_summaries_equal_the_orders(db)
    old_day = (NOW - dt.timedelta(days=insight_days.HORIZON_DAYS + 30)).date()
    assert rows(db, "SELECT count(*) FROM insight_days WHERE day = %s", old_day) == [(0,)]


def test_whole_months_start_after_a_partial_one() -> None:
    assert insights.whole_months_from(dt.date(2026, 3, 1)) == dt.date(2026, 3, 1)
    assert insights.whole_months_from(dt.date(2026, 3, 2)) == dt.date(2026, 4, 1)
    assert insights.whole_months_from(dt.date(2026, 12, 31)) == dt.date(2027, 1, 1)


def test_deleting_a_contacts_first_order_makes_the_next_one_new(db: str) -> None:
    from ordersync.sinks.writer import Batch, prepare, write_batch

    first = order(6000, "fresh@example.com", created=NOW - dt.timedelta(days=50))
    second = order(6001, "fresh@example.com", created=NOW - dt.timedelta(days=20))
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[first, second], messages=1), "test")
    with psycopg.connect(db) as conn:
        insight_days.refresh(conn, today=TODAY)
        conn.commit()
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[{**first, "deleted": True, "version": 2}], messages=1), "test")
    with psycopg.connect(db) as conn:
        insight_days.refresh(conn, today=TODAY)
        conn.commit()
    test_day_summaries_equal_the_orders(db)

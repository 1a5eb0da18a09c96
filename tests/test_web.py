"""The web app in a real browser (Debian's Chromium, driven headless by Playwright) over a real
PostgreSQL filled by the sink's own writer: search a contact, open Orders, open an order and check its
items against the database, open Activity; unknown ids and bad input are error pages, not tracebacks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from ordersync.runtime.settings import Settings
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.topics import TopicNames
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from ordersync.topics_admin import create_topics
from ordersync.web.charts import periods
from tests.endpoints import Endpoints
from tests.kafka_helpers import end_offsets, produce
from tests.processes import free_port, ordersync, port_open, running, wait_for
from tests.shops import SECRETS, shop, stores_toml
from tests.sink_data import activity, contact, item, order
from tests.web_helpers import reload_until, serve_web

UTC = dt.UTC
SINCE = "date_trunc('day', now() - interval '366 days', 'UTC')"  # Insights count whole UTC days
ZOE = "zoe.muller@example.com"
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    migrate(database_url)
    orders = [
        order(1, ZOE, status="COMPLETED", created=dt.datetime(2024, 3, 1, 9, tzinfo=UTC), total="35.95",
              items=[item("1", "22", "Shoes", "Trail Boot - 42", "TB-42"), item("2", "23", "Socks", "Wool socks")]),
        order(2, ZOE, status="PENDING", created=dt.datetime(2024, 3, 5, 9, tzinfo=UTC), total="12.50"),
        order(3, ZOE, status="CANCELED", created=dt.datetime(2024, 3, 9, 9, tzinfo=UTC), total="8.00", refunded="8.00"),
        order(4, "ana@example.com", created=dt.datetime(2024, 3, 2, 9, tzinfo=UTC)),
        # Recent ones, for Insights (which looks back from today), in two stores and two currencies.
        *(order(100 + i, "ana@example.com", status=("COMPLETED", "PENDING", "CANCELED")[i % 3],
                created=NOW - dt.timedelta(days=3 * i), total=f"{10 + i}.25", refunded="1.00" if i == 4 else "0",
                currency="EUR" if i < 7 else "CHF", items=[item("1", f"P{i % 3}", "Shoes", f"Product {i % 3}")])
          for i in range(9)),
    ]  # fmt: skip
    for o in orders[4:]:
        if o["source_order_id"] in ("105", "106"):
            o["store_id"], o["order_key"] = "t", f"t:{o['source_order_id']}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        batch = Batch(
            orders=orders,
            activities=[activity(o) for o in orders],
            contacts=[contact("1", ZOE), contact("1", "ana@example.com")],
            messages=1,
        )
        write_batch(conn, batch, "test")
    return database_url


@pytest.fixture(scope="module")
def web(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_web(db, endpoints, tmp_path_factory.mktemp("web") / "web.log") as url:
        yield url


def rows(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def test_search_a_contact_open_orders_an_order_and_activity(page: Page, web: str, db: str) -> None:
    page.goto(f"{web}/contacts")
    page.get_by_role("searchbox", name="Search contacts").fill("zoe")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=ZOE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("F")  # the fixture's contact has only a first name
    expect(page.locator(".profile .who")).to_contain_text(ZOE)

    # Orders tab (the default): newest first, one row per order of this contact in the database.
    in_db = rows(db, "SELECT order_number FROM orders WHERE contact_email = %s ORDER BY created_at DESC", ZOE)
    order_links = page.locator("table.orders tbody tr td:nth-child(3) a")
    expect(order_links).to_have_text([f"#{n}" for (n,) in in_db])
    expect(page.locator("table.orders tbody tr").first.locator(".badge")).to_have_text("Canceled")

    # An order's detail: its items are the database's.
    page.get_by_role("link", name="#1", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Order #1")
    items = rows(db, "SELECT name, sku, quantity FROM order_items WHERE source_order_id = '1' ORDER BY item_id")
    shown = page.locator("table.items tbody tr")
    expect(shown).to_have_count(len(items))
    for i, (name, sku, quantity) in enumerate(items):
        cells = shown.nth(i).locator("td")
        expect(cells.nth(0)).to_have_text(name)
        expect(cells.nth(1)).to_have_text(sku or "")
        expect(cells.nth(2)).to_have_text(str(quantity))
    expect(page.locator("table.items tfoot")).to_contain_text("35.95 EUR")

    # Back to the contact, Activity tab: the timeline, newest first.
    page.get_by_role("link", name=ZOE).click()
    page.get_by_role("link", name="Activity").click()
    events = rows(db, "SELECT order_key FROM activity WHERE contact_id = (SELECT contact_id FROM contacts WHERE email = %s)"
                      " ORDER BY occurred_at DESC", ZOE)  # fmt: skip
    expect(page.locator("ol.timeline li a")).to_have_text([key for (key,) in events])


def test_times_are_shown_in_the_viewers_time_zone(page: Page, web: str, db: str) -> None:
    (cid,) = rows(db, "SELECT contact_id FROM contacts WHERE email = %s", ZOE)[0]
    page.goto(f"{web}/contacts/{cid}")
    first = page.locator("table.orders tbody tr").first.locator("time")
    expect(first).to_have_attribute("datetime", "2024-03-09T09:00:00+00:00")
    expect(first).not_to_contain_text("UTC")  # rewritten by the page's script into the viewer's zone
    expect(first).to_contain_text("09:00")  # Lisbon is UTC+0 in March


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/contacts/not-a-uuid", 404, "no such contact"),
        ("/contacts/6f1c7a52-1d3e-4c4e-9a57-0b7f3d2e9c10", 404, "no such contact"),
        ("/orders/s/999999", 404, "no such order"),
        ("/nowhere", 404, "Not Found"),
        ("/contacts?q=%27%3B%20DROP%20TABLE%20contacts%3B%20--", 200, "No contact matches"),
    ],
)
def test_unknown_ids_and_bad_input_are_pages_not_tracebacks(
    page: Page, web: str, db: str, path: str, status: int, says: str
) -> None:
    response = page.goto(web + path)
    assert response is not None and response.status == status
    expect(page.locator("main")).to_contain_text(says)
    assert "Traceback" not in page.content()
    assert rows(db, "SELECT count(*) FROM contacts") == [(2,)]


def test_insights_show_revenue_net_of_refunds_per_currency_and_store(page: Page, web: str, db: str) -> None:
    page.goto(f"{web}/insights")
    revenue = "SELECT currency, sum(net_total) FROM orders WHERE NOT deleted AND status <> 'CANCELED'" \
              " AND created_at >= {} {} GROUP BY currency ORDER BY currency".format(SINCE, "{}")  # fmt: skip
    for currency, total in rows(db, revenue.format("")):
        section = page.locator(f"section.chart[data-currency='{currency}']")
        expect(section.locator(".total")).to_have_text(f"{total:,.2f}")
        now = dt.datetime.now(UTC)  # one bar per month of the last 366 days, empty months included
        expect(section.locator("svg rect")).to_have_count(len(periods("month", now - dt.timedelta(days=366), now)))
    page.get_by_role("combobox", name="Store").select_option("t")
    page.get_by_role("button", name="Show").click()
    for currency, total in rows(db, revenue.format("AND store_id = 't'")):
        expect(page.locator(f"section.chart[data-currency='{currency}'] .total")).to_have_text(f"{total:,.2f}")
    canceled = rows(db, "SELECT count(*) FROM orders WHERE store_id = 't' AND status = 'CANCELED'"
                        f" AND created_at >= {SINCE}")[0][0]  # fmt: skip
    expect(page.locator("table.statuses tr", has=page.locator(".badge.canceled")).locator("td.num")).to_have_text(
        str(canceled)
    )
    response = page.goto(f"{web}/insights?by=year")
    assert response is not None and response.status == 400


NEW_CUSTOMERS = f"""
SELECT count(*) FROM orders o WHERE NOT deleted AND created_at >= {SINCE}
  AND created_at = (SELECT min(created_at) FROM orders p WHERE p.contact_id = o.contact_id AND NOT p.deleted)
"""
TOP_CATEGORY = f"""
SELECT c.category FROM orders o JOIN order_items i USING (store_id, source_order_id), unnest(i.categories) c(category)
WHERE NOT o.deleted AND o.status <> 'CANCELED' AND o.created_at >= {SINCE}
GROUP BY c.category, o.currency ORDER BY sum(i.total) DESC, c.category LIMIT 1
"""


def test_insights_follow_the_sinks_writes_new_customers_and_top_categories(page: Page, web: str, db: str) -> None:
    """The summaries are recomputed for the days the sink touched: a new customer's first order shows
    up; an earlier order of that customer arriving later moves their first order, still one new customer."""
    page.goto(f"{web}/insights")
    expect(page.locator(".new-total")).to_have_text(str(rows(db, NEW_CUSTOMERS)[0][0]))
    before = int(page.locator(".new-total").inner_text())

    newcomer = order(900, "newcomer@example.com", status="COMPLETED", created=NOW - dt.timedelta(days=2), total="500.00",
                     items=[item("1", "N1", "Hats", "Big hat")])  # fmt: skip
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[newcomer], activities=[activity(newcomer)], messages=1), "test")
    # A page recomputes stale days itself unless the app's background refresher is at it (it then shows
    # the summaries as they were): reload until the refresh, by either, is done.
    reload_until(page, f"{web}/insights", ".new-total", str(before + 1))
    expect(page.locator(".new-total")).to_have_text(str(before + 1))
    assert rows(db, NEW_CUSTOMERS)[0][0] == before + 1
    expect(page.locator("table.categories tbody tr").first).to_contain_text(rows(db, TOP_CATEGORY)[0][0])
    expect(page.locator("table.categories tbody tr", has_text="Hats")).to_have_count(1)

    earlier = order(901, "newcomer@example.com", status="PENDING", created=NOW - dt.timedelta(days=40), total="5.00")
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[earlier], activities=[activity(earlier)], messages=1), "test")
    returning = page.locator("table.customers tr", has_text=(NOW - dt.timedelta(days=2)).strftime("%Y-%m"))
    month_cell = f'table.customers tr:has-text("{(NOW - dt.timedelta(days=2)):%Y-%m}") >> td >> nth=2'
    reload_until(page, f"{web}/insights", month_cell, "0", differs=True)  # as above: until a refresh took it
    expect(page.locator(".new-total")).to_have_text(str(before + 1))
    expect(returning.locator("td").nth(2)).not_to_have_text("0")


def test_a_bad_page_number_is_a_400_page(page: Page, web: str, db: str) -> None:
    (cid,) = rows(db, "SELECT contact_id FROM contacts WHERE email = %s", ZOE)[0]
    response = page.goto(f"{web}/contacts/{cid}?page=abc")
    assert response is not None and response.status == 400
    expect(page.locator("main")).to_contain_text("page must be a number")


def test_the_app_refuses_to_listen_beyond_loopback(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    result = ordersync("web", "--host", "0.0.0.0", "--port", str(free_port()), env=subprocess_env)
    assert result.returncode == 2
    assert "ORDERSYNC_WEB_USER and ORDERSYNC_WEB_PASSWORD to require a login" in result.stderr


def test_stores_page_shows_a_shop_answering_503_as_failing_with_its_dead_letters_and_lag(
    page: Page, db: str, subprocess_env: dict[str, str], topic_prefix: str, tmp_path: Path
) -> None:
    """A WooCommerce shop (the simulator) answers 503 to every request: its connector keeps retrying, the
    health file says so, and past ORDERSYNC_STORE_FAILING_AFTER_S the Stores page shows it failing. A dead
    letter from it in the last hour, and raw orders nobody has processed yet, show too."""
    env = {**subprocess_env, **SECRETS, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_DATABASE_URL": db,
           "ORDERSYNC_STORE_HEALTH_FILE": str(tmp_path / "health.json"), "ORDERSYNC_STORE_RETRY_MAX_S": "1",
           "ORDERSYNC_STORE_FAILING_AFTER_S": "2"}  # fmt: skip
    create_topics(Settings.from_env(env))
    names = TopicNames.with_prefix(topic_prefix)
    produce(env["ORDERSYNC_KAFKA_BOOTSTRAP"], names.raw_orders, [(b"w:1", b"not yet processed")] * 3)
    headers = dead_letter_headers("unreadable order: bad date", "connector", store="w")
    produce(env["ORDERSYNC_KAFKA_BOOTSTRAP"], names.dlq, [(b"w:unreadable-1", b"{", headers)])
    port = free_port()
    with (
        shop("woocommerce", "w", env, tmp_path, orders=5) as woo,
        shop("woocommerce", "h", env, tmp_path, orders=40, seed=2) as healthy,
        running(["web", "--port", str(port)], env, tmp_path / "web.log") as web_proc,
    ):
        woo.faults(failing=503)
        config = stores_toml(tmp_path / "stores.toml", woo, healthy, poll_interval_s=1)
        with running(["connect", "--config", str(config), "--follow"], env, tmp_path / "connect.log") as conn:
            wait_for(lambda: port_open(port) or not web_proc.alive(), 60, "the web app")
            row = page.locator("tr[data-store='w']")

            def failing() -> bool:
                assert conn.alive(), conn.output()[-2000:]
                page.goto(f"http://127.0.0.1:{port}/stores")
                return row.count() == 1 and row.locator(".state").inner_text() == "Failing"

            wait_for(failing, 120, "the Stores page to show store w failing")
            expect(row.locator(".last-error")).to_contain_text("503")
            expect(row.locator(".dead-count")).to_have_text("1")
            expect(row.locator(".reasons")).to_contain_text("connector: unreadable order: bad date")
            # The healthy shop beside it: its backfill went through (the shop's total is 40 orders).
            healthy = page.locator("tr[data-store='h'] .backfill")

            def complete() -> bool:
                page.goto(f"http://127.0.0.1:{port}/stores")
                return healthy.count() == 1 and healthy.inner_text().startswith("complete")

            wait_for(complete, 60, "store h's backfill to complete")
            expect(healthy).to_have_text("complete · 40 orders published")
            expect(page.locator("tr[data-store='h'] .state")).to_have_text("Ok")
            raw = end_offsets(
                env["ORDERSYNC_KAFKA_BOOTSTRAP"], names.raw_orders, names.raw_customers, names.contacts_import
            )
            assert raw > 3  # the 3 produced above and the healthy shop's pages
            expect(page.locator(f"tr[data-group='{topic_prefix}processor'] td.num")).to_have_text(str(raw))

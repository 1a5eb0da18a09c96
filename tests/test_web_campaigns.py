"""The Campaigns page and campaign touches on a contact's Activity tab, in a real browser over a
PostgreSQL filled by the sink's own writer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from playwright.sync_api import Page, expect

from ordersync.schemas.identity import contact_id
from ordersync.segmentation.campaigns import campaign_results
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from tests.endpoints import Endpoints
from tests.samples import attribution, campaign_event
from tests.sink_data import contact, order
from tests.web_helpers import reload_until, serve_web

LIST = "camp-3"
SENT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=10)


def email(n: int) -> str:
    return f"r{n}@campaigns.example"


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    """Spring: 40 recipients and 40 in the holdout; the first 12 recipients click and buy, 4 of the holdout
    buy anyway. Newsletter: 10 recipients, no holdout, 2 opens that lead to orders."""
    migrate(database_url)
    events, orders, credits = [], [], []
    for n in range(1, 81):
        holdout = n > 40
        events.append({**campaign_event(), "event_id": f"s{n}", "list_id": LIST, "contact_id": contact_id(LIST, email(n)),
                       "email": email(n), "campaign_id": "spring", "campaign_name": "Spring sale", "type": "SEND",
                       "occurred_at": SENT, "holdout": holdout})  # fmt: skip
        buys = n <= 12 or 41 <= n <= 44
        if buys:
            o = order(5000 + n, email(n), created=SENT + dt.timedelta(days=1 + n % 3), total="60.00")
            o["list_id"], o["contact_id"] = LIST, contact_id(LIST, email(n))
            orders.append(o)
        if n <= 12:
            events.append({**events[-1], "event_id": f"c{n}", "type": "CLICK", "holdout": False,
                           "occurred_at": SENT + dt.timedelta(hours=n)})  # fmt: skip
            credits.append({**attribution(), "order_key": o["order_key"], "store_id": o["store_id"],
                            "source_order_id": o["source_order_id"], "list_id": LIST,
                            "contact_id": o["contact_id"], "campaign_id": "spring"})  # fmt: skip
    for n in range(81, 91):
        events.append({**campaign_event(), "event_id": f"n{n}", "list_id": LIST, "contact_id": contact_id(LIST, email(n)),
                       "email": email(n), "campaign_id": "news", "campaign_name": "Newsletter", "type": "SEND",
                       "occurred_at": SENT, "holdout": False})  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        batch = Batch(orders=orders, contacts=[contact(LIST, email(n)) for n in range(1, 91)],
                      campaign_events=events, attributions=credits, messages=1)  # fmt: skip
        write_batch(conn, batch, "campaigns-test")
    return database_url


@pytest.fixture(scope="module")
def web(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_web(db, endpoints, tmp_path_factory.mktemp("web-campaigns") / "web.log") as url:
        yield url


def test_the_campaigns_page_shows_attributed_and_incremental_revenue_side_by_side(
    page: Page, web: str, db: str
) -> None:
    page.goto(f"{web}/contacts")
    page.get_by_role("link", name="Campaigns", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Campaigns")
    # The figures are the app's summaries, recomputed in the background after the sink marked them.
    reload_until(page, f"{web}/campaigns", 'table.campaigns tr[data-campaign="spring"] td.orders', "12")
    expect(page.locator(".freshness .pending")).to_have_count(0)
    with psycopg.connect(db) as conn:
        spring = next(r for r in campaign_results(conn, LIST) if r.campaign_id == "spring")
    assert spring.incremental is not None
    row = page.locator('table.campaigns tr[data-campaign="spring"]')
    expect(row.locator("td.orders")).to_have_text("12")
    expect(row.locator("td.attributed")).to_have_text(f"{spring.revenue:.2f} {spring.currency}")
    expect(row.locator("td.incremental")).to_have_text(
        f"{spring.incremental.incremental_revenue:.2f} {spring.currency}"
    )
    assert spring.revenue == Decimal("720.00")  # 12 credited orders of 60
    # 12 of 40 bought against 4 of 40: 60 * (12 - 4) / 40 = 12 per recipient, 480 in all
    assert spring.incremental.incremental_revenue == Decimal("480.00")
    expect(page.locator('table.campaigns tr[data-campaign="news"] td.incremental')).to_have_text("no holdout")
    expect(page.locator('section.campaign-days[data-campaign="spring"] rect')).to_have_count(14)


def test_campaign_touches_are_on_the_contacts_activity_tab(page: Page, web: str, db: str) -> None:
    with psycopg.connect(db) as conn:
        (cid,) = conn.execute("SELECT contact_id FROM contacts WHERE email = %s", (email(3),)).fetchone() or (None,)
    page.goto(f"{web}/contacts/{cid}?tab=activity")
    timeline = page.locator("ol.timeline li")
    expect(timeline.filter(has_text="Spring sale")).to_have_count(2)
    expect(timeline.filter(has_text="click")).to_have_count(1)
    page.goto(f"{web}/contacts/{contact_id(LIST, email(45))}?tab=activity")
    expect(page.locator("ol.timeline li").filter(has_text="holdout: sent nothing")).to_have_count(1)


def test_a_new_credited_order_reaches_the_page_through_the_background_refresh(page: Page, web: str, db: str) -> None:
    reload_until(page, f"{web}/campaigns", 'table.campaigns tr[data-campaign="news"] td.orders', "0")
    o = order(5200, email(81), created=SENT + dt.timedelta(days=2), total="35.50")
    o["list_id"], o["contact_id"] = LIST, contact_id(LIST, email(81))
    credit = {**attribution(), "order_key": o["order_key"], "store_id": o["store_id"],
              "source_order_id": o["source_order_id"], "list_id": LIST, "contact_id": o["contact_id"],
              "campaign_id": "news"}  # fmt: skip
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[o], attributions=[credit], messages=1), "campaigns-test")
    reload_until(page, f"{web}/campaigns", 'table.campaigns tr[data-campaign="news"] td.orders', "1")
    expect(page.locator('table.campaigns tr[data-campaign="news"] td.attributed')).to_have_text("35.50 EUR")

"""The Automations page and the triggers on a contact's Activity tab, in a real browser over a PostgreSQL
filled by the sink's own writer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from ordersync.schemas.identity import contact_id
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from tests.endpoints import Endpoints
from tests.samples import trigger
from tests.sink_data import activity, contact, order
from tests.web_helpers import serve_web

LIST = "auto-9"
BUYER = "buyer@automations.example"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
KINDS = ["FIRST_ORDER", "ORDER_THANK_YOU", "ORDER_THANK_YOU", "VIP_REACHED", "CHECKOUT_ABANDONED"]


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    migrate(database_url)
    cid = contact_id(LIST, BUYER)
    orders = [order(900 + i, BUYER, created=NOW - dt.timedelta(days=i)) for i in range(3)]
    for o in orders:
        o["list_id"], o["contact_id"] = LIST, cid
    fired = []
    for i, kind in enumerate(KINDS):
        t = trigger()
        t.update(trigger_id=f"00000000-0000-5000-a000-{i:012d}", kind=kind, list_id=LIST, contact_id=cid,
                 contact_email=BUYER, order_key=orders[i % 3]["order_key"], store_id=orders[i % 3]["store_id"],
                 source_order_id=orders[i % 3]["source_order_id"], fired_at=NOW - dt.timedelta(days=i % 2, minutes=i))  # fmt: skip
        fired.append(t)
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        batch = Batch(orders=orders, activities=[activity(o) for o in orders], contacts=[contact(LIST, BUYER)],
                      triggers=fired + fired[:1], messages=1)  # fmt: skip  # a redelivered trigger is stored once
        write_batch(conn, batch, "automations-test")
        conn.execute("DELETE FROM trigger_destinations WHERE name = 'crm'")
        conn.execute(
            "INSERT INTO trigger_destinations (name, delivered, dead_lettered, last_success, failing_since, last_error)"
            " VALUES ('crm', 41, 2, now() - interval '1 hour', now() - interval '5 minutes', 'HTTP 503')"
        )
    return database_url


@pytest.fixture(scope="module")
def web(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("web-automations")
    config = work / "stores.toml"
    config.write_text(
        f'[automations."{LIST}"]\nabandoned_after_h = 2\nvip_spent = {{ EUR = "750" }}\n'
        f'[[automations."{LIST}".upsell]]\nname = "boots-care"\nwhen_categories = ["Boots"]\n'
        'suggest_categories = ["Shoe care"]\ndelay_h = 48\n'
    )
    with serve_web(db, endpoints, work / "web.log", args=("--config", str(config))) as url:
        yield url


def rows(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def test_the_automations_page_counts_triggers_per_day_and_kind_and_shows_rules_and_delivery(
    page: Page, web: str, db: str
) -> None:
    page.goto(f"{web}/contacts")
    page.get_by_role("link", name="Automations", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Automations")
    per_day = rows(db, "SELECT (fired_at AT TIME ZONE 'UTC')::date, kind, count(*) FROM triggers"
                       " WHERE fired_at >= now() - interval '30 days' GROUP BY 1, 2")  # fmt: skip
    assert sum(n for *_, n in per_day) >= len(KINDS)  # the redelivered one stored once
    for day, kind, n in per_day:
        expect(page.locator(f'table.trigger-days tr[data-day="{day}"] td[data-kind="{kind}"]')).to_have_text(str(n))
    latest = page.locator("table.latest-triggers tbody tr")
    expect(latest.filter(has_text=BUYER)).to_have_count(len(KINDS))
    expect(page.locator(f'section.rules[data-list="List {LIST}"]')).to_contain_text("boots-care")
    expect(page.locator(f'section.rules[data-list="List {LIST}"]')).to_contain_text("750.00 EUR")
    expect(page.locator('table.destinations tr[data-destination="crm"]')).to_contain_text("Retrying")
    expect(page.locator('table.destinations tr[data-destination="crm"]')).to_contain_text("HTTP 503")

    # A trigger's contact link opens its Activity tab, where the automations are in the timeline.
    latest.filter(has_text="Vip reached").get_by_role("link", name=BUYER).click()
    timeline = page.locator("ol.timeline li")
    expect(timeline.filter(has_text="automation")).to_have_count(len(KINDS))
    expect(timeline.filter(has_text="order thank you")).to_have_count(2)


def test_the_sync_health_page_lists_trigger_destinations(page: Page, web: str) -> None:
    page.goto(f"{web}/stores")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sync health")
    expect(page.locator('table.destinations tr[data-destination="crm"] td').nth(2)).to_have_text("41")

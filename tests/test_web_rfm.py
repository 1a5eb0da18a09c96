"""RFM in the web app, in a real browser over a PostgreSQL filled by the sink's own writer: the grid on
Insights, a cell's segment in the builder, the scores on the contact's profile, and the background
refresh that brings them up to date after the sink writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from ordersync.schemas.identity import contact_id
from ordersync.segmentation import rfm
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from tests.endpoints import Endpoints
from tests.sink_data import contact, order
from tests.web_helpers import reload_until, serve_web

LIST = "rfm-9"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def email(i: int) -> str:
    return f"q{i:02d}@rfm.example"


def orders_of(i: int) -> list[dict[str, Any]]:
    """Contact i (0..24) has 1 + i // 5 orders, its last one 25 - i days ago, and spends more the higher i:
    contact i scores (1 + i // 5) on R, F and M, so the grid has five contacts on each cell of its diagonal."""
    out = []
    for k in range(1 + i // 5):
        o = order(7000 + i * 10 + k, email(i), created=NOW - dt.timedelta(days=25 - i + k), total=f"{10 * (i + 1)}.00")
        o["list_id"], o["contact_id"] = LIST, contact_id(LIST, email(i))
        out.append(o)
    return out


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        orders = [o for i in range(25) for o in orders_of(i)]
        write_batch(
            conn, Batch(orders=orders, contacts=[contact(LIST, email(i)) for i in range(25)], messages=1), "rfm-web"
        )
    return database_url


@pytest.fixture(scope="module")
def web(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_web(db, endpoints, tmp_path_factory.mktemp("web-rfm") / "web.log") as url:
        yield url


def test_the_rfm_grid_counts_contacts_per_score_and_a_cell_opens_its_segment(page: Page, web: str) -> None:
    reload_until(page, f"{web}/insights", "table.rfm", "R 5")
    grid = page.locator("table.rfm")
    expect(grid).to_have_attribute("data-currency", "EUR")
    for score in range(1, 6):
        expect(grid.locator(f'td[data-r="{score}"][data-f="{score}"] a')).to_have_text("5")
    expect(grid.locator('td[data-r="5"][data-f="1"]')).to_have_text("0")
    grid.locator('td[data-r="5"][data-f="5"] a').click()
    expect(page.get_by_label("Recency score")).to_have_value("5")
    expect(page.get_by_label("Frequency score")).to_have_value("5")
    expect(page.locator("#count")).to_have_attribute("data-count", "5")
    expect(page.locator("#result")).to_contain_text(email(24))


def test_an_rfm_condition_built_in_the_form_counts_its_contacts(page: Page, web: str) -> None:
    page.goto(f"{web}/segments/new")
    page.get_by_label("Condition to add").select_option(label="RFM score")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_label("Recency score").select_option("4+")
    page.get_by_label("Monetary score").select_option("2-")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#count")).to_have_attribute("data-count", "0")  # recent buyers here spend most
    page.get_by_label("Monetary score").select_option("5")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#count")).to_have_attribute("data-count", "5")


def test_the_profile_shows_the_scores_and_follows_the_sink(page: Page, web: str, db: str) -> None:
    quiet = contact_id(LIST, email(0))
    page.goto(f"{web}/contacts/{quiet}")
    expect(page.locator(".rfm-code")).to_have_text("111 EUR")
    # The quiet contact orders big today: the sink marks the list, the app's refresh moves the bounds. Its
    # second order ties it with the five contacts of two orders, below the second fifth's bound: F stays 1.
    big = order(7999, email(0), created=NOW, total="5000.00")
    big["list_id"], big["contact_id"] = LIST, quiet
    with psycopg.connect(db, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(orders=[big], messages=1), "rfm-web")
    reload_until(page, f"{web}/contacts/{quiet}", ".rfm-code", "515 EUR")
    with psycopg.connect(db) as conn:
        assert rfm.stale(conn) == 0
        spent = conn.execute("SELECT spent FROM contact_order_stats WHERE contact_id = %s", (quiet,)).fetchone()
    assert spent == (Decimal("5010.000000"),)

"""The segment builder in a real browser over a real PostgreSQL: the live count equals
`ordersync segment --count` for the same conditions, a saved segment is usable from the CLI, the CSV
export equals the CLI's, malformed input is a clear message. And access: a login when an account is set,
CSRF on forms, list scoping."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from ordersync.schemas.identity import contact_id
from ordersync.segmentation import saved
from tests.endpoints import Endpoints
from tests.processes import ordersync
from tests.sink_data import load_segment_fixture, segment_fixture
from tests.web_helpers import serve_web

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CONTACTS, ORDERS = segment_fixture(NOW)
ACCOUNT = {"ORDERSYNC_WEB_USER": "marketer", "ORDERSYNC_WEB_PASSWORD": "correct horse", "ORDERSYNC_WEB_LISTS": "1"}


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    return load_segment_fixture(database_url, CONTACTS, ORDERS)


@pytest.fixture(scope="module")
def web(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_web(db, endpoints, tmp_path_factory.mktemp("web") / "web.log") as url:
        yield url


def cli(db: str, env: dict[str, str], *args: str) -> str:
    result = ordersync("segment", *args, env={**env, "ORDERSYNC_DATABASE_URL": db})
    assert result.returncode == 0, result.stderr
    return result.stdout


def add(page: Page, label: str) -> None:
    page.get_by_label("Condition to add").select_option(label=label)
    page.get_by_role("button", name="Add", exact=True).click()


def test_build_a_segment_whose_live_count_is_the_clis_then_save_and_use_it_from_the_cli(
    page: Page, web: str, db: str, subprocess_env: dict[str, str]
) -> None:
    page.goto(f"{web}/segments/new")
    page.get_by_label("List").select_option("1")
    add(page, "Amount spent")
    count = page.locator("#count")
    amount = page.get_by_label("Amount")

    # The count follows typing (no button pressed): each figure is the CLI's for the same conditions.
    for spent_over in ("150", "400"):
        amount.fill(spent_over)
        expected = cli(db, subprocess_env, "--list", "1", "--spent-over", spent_over, "--currency", "EUR", "--count")
        expect(count).to_have_attribute("data-count", expected.strip())
    big_spenders = int(expected)

    add(page, "Bought")
    page.get_by_label("Match on").select_option("category")
    page.get_by_label("Product").fill("Shoes")
    page.get_by_label("Combine conditions with").select_option("any")
    args = ["--list", "1", "--any", "--spent-over", "400", "--currency", "EUR", "--category", "Shoes"]
    expected = cli(db, subprocess_env, *args, "--count")
    assert big_spenders < int(expected) < len(CONTACTS), "the conditions should select some contacts, not all"
    expect(count).to_have_attribute("data-count", expected.strip())

    # The preview: the first contacts by e-mail, as the CLI lists them.
    first = [row.split(",")[0] for row in cli(db, subprocess_env, *args, "--format", "csv").splitlines()[1:21]]
    expect(page.locator("table.preview tbody tr td:first-child")).to_have_text(first)

    # Saved, it is usable from the CLI by name, and its CSV export is the CLI's.
    page.get_by_label("Name").fill("Shoe fans or big spenders")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shoe fans or big spenders")
    expect(page.locator("#count")).to_have_attribute("data-count", expected.strip())
    saved = cli(db, subprocess_env, "--saved", "Shoe fans or big spenders", "--count")
    assert saved == expected
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text().replace("\r\n", "\n")
    assert exported == cli(db, subprocess_env, "--saved", "Shoe fans or big spenders", "--format", "csv")

    page.get_by_role("link", name="All segments").click()
    expect(page.locator("table.segments")).to_contain_text("Shoe fans or big spenders")


def test_every_condition_of_the_engine_can_be_built(
    page: Page, web: str, db: str, subprocess_env: dict[str, str]
) -> None:
    page.goto(f"{web}/segments/new")
    for label in ("Order date", "Number of orders", "Amount spent", "Average order value", "Has an order in status",
                  "Bought", "Abandoned checkout", "Lapsed"):  # fmt: skip
        add(page, label)
    page.get_by_label("Combine conditions with").select_option("any")
    page.get_by_label("Product").fill("Trail")
    page.get_by_label("Match on").select_option("name")
    document = json.loads(page.locator("#segment-document").text_content() or "")
    kinds = [next(iter(c)) for c in document["any"]]
    assert kinds == ["ordered", "order_count", "spent", "average_order_value", "has_status", "bought",
                     "abandoned_checkout", "lapsed"]  # fmt: skip
    page.get_by_role("button", name="Update").click()
    document = json.loads(page.locator("#segment-document").text_content() or "")
    expected = cli(db, subprocess_env, "--json", json.dumps(document), "--count")
    expect(page.locator("#count")).to_have_attribute("data-count", expected.strip())

    # Order date between two dates, and nested conditions through the JSON editor.
    page.get_by_role("button", name="Remove condition 8").click()
    expect(page.locator("li.condition")).to_have_count(7)
    page.locator("details summary").click()
    page.get_by_role("link", name="Edit as JSON").click()
    nested = {"all": [{"not": {"has_status": "CANCELED"}}, {"any": [{"lapsed": {"days": 30}}, {"ordered": {"from": "2026-01-01", "to": "2026-03-01"}}]}]}  # fmt: skip
    page.get_by_label("The segment as JSON").fill(json.dumps(nested))
    expected = cli(db, subprocess_env, "--json", json.dumps(nested), "--count")
    expect(page.locator("#count")).to_have_attribute("data-count", expected.strip())


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        (
            "/segments/new?kind0=spent&op0=%3E&amount0=lots&currency0=EUR",
            400,
            "condition 1 (Amount spent).spent.value: 'lots' is not a number",
        ),
        ("/segments/new?kind0=spent&op0=%3E&amount0=5&currency0=EU", 400, "one ISO currency"),
        ("/segments/new?kind0=order_count&op0=%3E%3D&number0=-1", 400, "number must be a whole number"),
        ("/segments/new?mode=json&json=%7B%22all%22%3A", 400, "not JSON"),
        ("/segments/new?mode=json&json=%7B%22shipped%22%3A1%7D", 400, "unknown condition 'shipped'"),
        ("/segments/new?kind0=teleported", 400, "not a condition the builder knows"),
        ("/segments/999999", 404, "no such segment"),
        ("/segments/abc", 404, "no such segment"),
    ],
)
def test_malformed_segment_input_is_a_clear_message(page: Page, web: str, path: str, status: int, says: str) -> None:
    response = page.goto(web + path)
    assert response is not None and response.status == status
    expect(page.locator("main")).to_contain_text(says)
    expect(page.locator("main")).not_to_contain_text("Traceback")


def test_cli_says_when_no_segment_has_that_name(db: str, subprocess_env: dict[str, str]) -> None:
    result = ordersync(
        "segment", "--saved", "nobody saved this", "--count", env={**subprocess_env, "ORDERSYNC_DATABASE_URL": db}
    )
    assert result.returncode == 2
    assert "no saved segment is named 'nobody saved this'" in result.stderr


@pytest.fixture(scope="module")
def guarded(db: str, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with an account that sees list 1 only, bound beyond loopback (which the account allows)."""
    with serve_web(db, endpoints, tmp_path_factory.mktemp("guarded") / "web.log", ACCOUNT, host="0.0.0.0") as url:
        yield url


def log_in(page: Page, url: str, password: str) -> None:
    page.get_by_label("Name").fill("marketer")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_an_account_logs_in_and_sees_only_its_lists(page: Page, guarded: str) -> None:
    page.goto(f"{guarded}/contacts?q=p1")
    expect(page).to_have_url(f"{guarded}/login?next=%2Fcontacts%3Fq%3Dp1")
    log_in(page, guarded, "wrong")
    expect(page.get_by_role("alert")).to_have_text("That name and password do not match.")
    log_in(page, guarded, ACCOUNT["ORDERSYNC_WEB_PASSWORD"])
    expect(page).to_have_url(f"{guarded}/contacts?q=p1")
    expect(page.locator("table.contacts tbody tr").first).to_contain_text("p1")

    # List 2's contact is not found by search, by its page, or by a segment.
    page.goto(f"{guarded}/contacts?q=other-list")
    expect(page.locator("main")).to_contain_text("No contact matches")
    response = page.goto(f"{guarded}/contacts/{contact_id('2', 'other-list@example.com')}")
    assert response is not None and response.status == 404
    response = page.goto(f"{guarded}/segments/new?list=2&kind0=lapsed&days0=1")
    assert response is not None and response.status == 404
    page.goto(f"{guarded}/segments/new?mode=json&json=%7B%22lapsed%22%3A%7B%22days%22%3A0%7D%7D")
    listed = page.locator("table.preview tbody tr td:nth-child(3)")
    expect(listed.first).to_have_text("1")
    assert set(listed.all_inner_texts()) == {"1"}

    page.get_by_role("button", name="Log out").click()
    page.goto(f"{guarded}/insights")
    expect(page).to_have_url(f"{guarded}/login?next=%2Finsights")


def test_forms_without_the_sessions_csrf_token_are_refused(page: Page, guarded: str, db: str) -> None:
    page.goto(f"{guarded}/login")
    log_in(page, guarded, ACCOUNT["ORDERSYNC_WEB_PASSWORD"])
    form: dict[str, Any] = {"name": "forged", "state": "kind0=lapsed&days0=1", "csrf": "not the token"}
    response = page.request.post(f"{guarded}/segments", form=form)
    assert response.status == 403
    assert "did not come from this app" in response.text()
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM saved_segments WHERE name = 'forged'").fetchone() == (0,)
    # Without a session at all, a post is refused before anything runs.
    anonymous = page.context.browser.new_context() if page.context.browser else None
    assert anonymous is not None
    response = anonymous.request.post(f"{guarded}/segments", form={**form, "csrf": ""})
    assert response.status == 401
    anonymous.close()


def test_an_account_never_replaces_another_lists_segment(
    page: Page, guarded: str, db: str, subprocess_env: dict[str, str]
) -> None:
    """Names are unique per list: list 1's account saving "VIPs" leaves list 2's "VIPs" as it was, and a
    segment for every list is read-only to an account limited to some lists."""
    with psycopg.connect(db) as conn:
        theirs = saved.save(conn, "VIPs", "2", {"lapsed": {"days": 30}})
    page.goto(f"{guarded}/login")
    log_in(page, guarded, ACCOUNT["ORDERSYNC_WEB_PASSWORD"])
    page.goto(f"{guarded}/segments/new")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{guarded}/segments", form={"name": "VIPs", "state": "list=1&kind0=lapsed&days0=1", "csrf": csrf or ""}
    )
    assert answer.ok, answer.text()
    mine = int(answer.url.rsplit("/", 1)[1])
    assert mine != theirs
    every_list = page.request.post(
        f"{guarded}/segments", form={"name": "Everyone", "state": "kind0=lapsed&days0=1", "csrf": csrf or ""}
    )
    assert every_list.status == 403
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT list_id, document FROM saved_segments WHERE name = 'VIPs' ORDER BY list_id")
        assert rows.fetchall() == [("1", {"all": [{"lapsed": {"days": 1}}]}), ("2", {"lapsed": {"days": 30}})]
        assert conn.execute("SELECT count(*) FROM saved_segments WHERE name = 'Everyone'").fetchone() == (0,)
    env = {**subprocess_env, "ORDERSYNC_DATABASE_URL": db}
    ambiguous = ordersync("segment", "--saved", "VIPs", "--count", env=env)
    assert ambiguous.returncode == 2 and "lists 1, 2: give --list" in ambiguous.stderr
    assert ordersync("segment", "--saved", "VIPs", "--list", "2", "--count", env=env).returncode == 0

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from tests.endpoints import Endpoints, provide_endpoints

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reaches Kafka or PostgreSQL (through the ``endpoints`` fixture, however indirectly)
    is marked ``broker``: ``make unit`` runs the others, with no service started."""
    for item in items:
        if "endpoints" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    with provide_endpoints() as found:
        yield found


@pytest.fixture(scope="session")
def kafka_bootstrap(endpoints: Endpoints) -> str:
    return endpoints.kafka_bootstrap


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, group ids and app ids."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_prefix(unique: str) -> str:
    return f"t{unique}."


@pytest.fixture(scope="module")
def database_url(endpoints: Endpoints, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database per test module, dropped afterwards, so modules never see each other's rows."""
    name = "test_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:40] + "_" + uuid.uuid4().hex[:6]
    admin = endpoints.database_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def subprocess_env(endpoints: Endpoints, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ORDERSYNC_KAFKA_BOOTSTRAP"] = endpoints.kafka_bootstrap
    env["ORDERSYNC_DATABASE_URL"] = endpoints.database_url
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("the browser tests need Chromium: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(timezone_id="Europe/Lisbon", locale="en-GB", accept_downloads=True)
    yield context.new_page()
    context.close()

"""The web app as a real process, for the browser tests (the browser fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.endpoints import Endpoints
from tests.processes import free_port, port_open, running, wait_for


@contextlib.contextmanager
def serve_web(
    db: str,
    endpoints: Endpoints,
    log: Path,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    args: tuple[str, ...] = (),
) -> Iterator[str]:
    """``ordersync web`` over ``db`` (with extra ``args``), and the refresher that keeps its summaries
    current, as ``ordersync run`` runs it; yields the app's URL."""
    port = free_port()
    full_env = {**os.environ, "ORDERSYNC_DATABASE_URL": db, "ORDERSYNC_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap}
    refresher_log = log.with_name(log.stem + ".refresher.log")
    with (
        running(["refresh", "--every", "1"], {**full_env, **(env or {})}, refresher_log),
        running(["web", "--host", host, "--port", str(port), *args], {**full_env, **(env or {})}, log) as proc,
    ):
        wait_for(lambda: port_open(port) or not proc.alive(), 60, "the web app")
        assert proc.alive(), proc.output()
        yield f"http://127.0.0.1:{port}"


def reload_until(page: Page, url: str, locator: str, text: str, seconds: float = 30, *, differs: bool = False) -> None:
    """Reload ``url`` until ``locator`` has ``text`` (``differs``: until its text is no longer ``text``):
    summaries (RFM, campaigns, Insights) follow the sink through the refresher, every second here."""
    deadline = time.monotonic() + seconds
    while True:
        page.goto(url)
        found = page.locator(locator)
        if found.count():
            shown = found.first.text_content() or ""
            if (shown.strip() != text) if differs else (text in shown):
                return
        if time.monotonic() > deadline:  # fails with the page's text
            if differs:
                expect(found.first).not_to_have_text(text)
            else:
                expect(found.first).to_contain_text(text)
            return
        page.wait_for_timeout(250)

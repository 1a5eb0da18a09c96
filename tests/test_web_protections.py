"""The web app's protections: Host names, security headers, sessions the server ends. Driven through
Starlette's TestClient (the app's real middleware stack); sessions live in PostgreSQL, so the tests that
log in use a real database (with the app's lifespan: its pool)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from ordersync.runtime.settings import Settings
from ordersync.sinks.migrate import migrate
from ordersync.web.app import create_app
from ordersync.web.security import allowed_hosts, host_name

ACCOUNT = {"ORDERSYNC_WEB_USER": "marketer", "ORDERSYNC_WEB_PASSWORD": "correct horse"}
DB = {"ORDERSYNC_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # never reached by these routes


def client(host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000", **env: str) -> TestClient:
    app = create_app(Settings.from_env({**DB, **env}), host=host)
    return TestClient(app, base_url=base_url, follow_redirects=False)


@pytest.fixture
def served(database_url: str) -> Iterator[Callable[..., TestClient]]:
    """Apps over a real, migrated database, each with its lifespan (pool) running."""
    migrate(database_url)
    with contextlib.ExitStack() as running:

        def serve(**env: str) -> TestClient:
            app = create_app(Settings.from_env({"ORDERSYNC_DATABASE_URL": database_url, **env}))
            return running.enter_context(TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False))

        yield serve


def log_in(web: TestClient, password: str = "correct horse") -> int:
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)
    assert csrf
    answer = web.post("/login", data={"csrf": csrf.group(1), "user": "marketer", "password": password})
    return answer.status_code


@pytest.mark.parametrize(
    ("header", "name"), [("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("Shop.Example", "shop.example"),
                         ("127.0.0.1", "127.0.0.1"), ("::1", "::1")],
)  # fmt: skip
def test_host_names_lose_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_without_a_login_only_loopback_names_are_answered() -> None:
    web = client()
    assert web.get("/login", headers={"host": "localhost:8000"}).status_code == 200
    assert web.get("/login", headers={"host": "[::1]:8000"}).status_code == 200
    refused = web.get("/login", headers={"host": "rebound.attacker.example:8000"})
    assert refused.status_code == 400 and "ORDERSYNC_WEB_ALLOWED_HOSTS" in refused.text
    configured = client(ORDERSYNC_WEB_ALLOWED_HOSTS="crm.example, other.example")
    assert configured.get("/login", headers={"host": "crm.example"}).status_code == 200
    assert configured.get("/login", headers={"host": "x.example"}).status_code == 400


def test_with_a_login_any_host_unless_configured() -> None:
    assert allowed_hosts("0.0.0.0", None, login_required=True) is None
    assert allowed_hosts("0.0.0.0", "crm.example", login_required=True) == {"crm.example"}
    assert client("0.0.0.0", **ACCOUNT).get("/login", headers={"host": "crm.example"}).status_code == 200


def test_every_answer_carries_the_security_headers() -> None:
    web = client(**ACCOUNT)
    page = web.get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # inline scripts would be blocked by the policy: none are left
    assert web.get("/nowhere").headers["cache-control"] == "no-store"  # also redirects and errors
    style = web.get("/static/style.css")
    assert style.status_code == 200 and "no-store" not in style.headers.get("cache-control", "")


def test_logging_out_ends_the_session_on_the_server(served: Callable[..., TestClient]) -> None:
    web = served(**ACCOUNT)
    assert log_in(web) == 303
    assert web.get("/nowhere").status_code == 404  # logged in: past the gate
    stolen = dict(web.cookies)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/nowhere").text)
    assert csrf
    assert web.post("/logout", data={"csrf": csrf.group(1)}).status_code == 303
    replay = TestClient(web.app, base_url="http://127.0.0.1:8000", follow_redirects=False)  # a copy of the cookie
    replay.cookies.update(stolen)
    answer = replay.get("/nowhere")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_an_idle_session_ends(served: Callable[..., TestClient]) -> None:
    web = served(ORDERSYNC_WEB_SESSION_IDLE_S="0", **ACCOUNT)
    assert log_in(web) == 303
    assert web.get("/nowhere").status_code == 303


def test_a_restart_keeps_the_session_and_replicas_share_it(served: Callable[..., TestClient]) -> None:
    """Sessions lived in the web process: a restart logged everyone out and two replicas could not share
    them. Two apps over one database with one cookie secret: a login on one is a login on the other."""
    shared = {**ACCOUNT, "ORDERSYNC_WEB_SESSION_SECRET": "s" * 64}
    first, second = served(**shared), served(**shared)
    assert log_in(first) == 303
    second.cookies.update(dict(first.cookies))
    assert second.get("/nowhere").status_code == 404


def test_the_cookie_ends_with_the_session() -> None:
    """Sessions ended after 12 h idle only and the cookie said 14 days (the lifetimes themselves:
    tests/test_web_accounts.py)."""
    web = client(ORDERSYNC_WEB_SESSION_MAX_S="3600", **ACCOUNT)
    cookie = web.get("/login").headers.get("set-cookie", "")  # the CSRF token already sets the cookie
    assert "Max-Age=3600" in cookie and "1209600" not in cookie


def test_the_login_throttle_counts_the_account_too(served: Callable[..., TestClient]) -> None:
    web = served(**ACCOUNT)
    for _ in range(5):
        assert log_in(web, "wrong") == 401
    assert log_in(web, "correct horse") == 429


def test_guessing_from_many_addresses_cannot_lock_the_owner_out() -> None:
    """20 wrong guesses from several addresses locked the only account: the right password from a clean
    address got 429. A client with no recent failure is never refused now; the guessers are slowed."""
    from ordersync.web.auth import LoginThrottle

    throttle = LoginThrottle()
    for n in range(20):
        throttle.failed(f"203.0.113.{n % 5}", "marketer", now=100.0 + n)
    assert throttle.blocked_for("198.51.100.7", "marketer", now=130.0) == 0  # the owner, from a clean address
    assert throttle.blocked_for("203.0.113.9", "marketer", now=130.0) == 0  # a new address: its first guess
    throttle.failed("203.0.113.9", "marketer", now=131.0)
    assert throttle.blocked_for("203.0.113.9", "marketer", now=132.0) > 0  # then the account's limit holds
    assert throttle.blocked_for("203.0.113.1", "marketer", now=132.0) > 0

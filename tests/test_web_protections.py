"""The web app's protections that need no database: Host names, security headers, sessions the server
ends. Driven through Starlette's TestClient (the app's real middleware stack, no lifespan: no pool)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from ordersync.runtime.settings import Settings
from ordersync.web.app import create_app
from ordersync.web.auth import Sessions
from ordersync.web.security import allowed_hosts, host_name

ACCOUNT = {"ORDERSYNC_WEB_USER": "marketer", "ORDERSYNC_WEB_PASSWORD": "correct horse"}
DB = {"ORDERSYNC_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # never reached by these routes


def client(host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000", **env: str) -> TestClient:
    app = create_app(Settings.from_env({**DB, **env}), host=host)
    return TestClient(app, base_url=base_url, follow_redirects=False)


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


def test_logging_out_ends_the_session_on_the_server() -> None:
    web = client(**ACCOUNT)
    assert log_in(web) == 303
    assert web.get("/nowhere").status_code == 404  # logged in: past the gate
    stolen = dict(web.cookies)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/nowhere").text)
    assert csrf
    assert web.post("/logout", data={"csrf": csrf.group(1)}).status_code == 303
    replay = client(**ACCOUNT)
    replay.app = web.app  # the same server, a copy of the old cookie
    replay.cookies.update(stolen)
    answer = replay.get("/nowhere")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_an_idle_session_ends() -> None:
    web = client(ORDERSYNC_WEB_SESSION_IDLE_S="0", **ACCOUNT)
    assert log_in(web) == 303
    assert web.get("/nowhere").status_code == 303


def test_sessions_end_after_their_idle_time_and_are_forgotten() -> None:
    sessions = Sessions(idle_s=60)
    first = sessions.start(0.0)
    assert sessions.touch(first, 59.0) and sessions.touch(first, 118.0)  # use keeps it alive
    assert not sessions.touch(first, 179.0)
    assert not sessions.touch("made-up", 0.0) and not sessions.touch(None, 0.0)
    for n in range(100):
        sessions.start(float(n))
    sessions.start(1_000.0)  # the idle ones are dropped as new ones start
    assert len(sessions) == 1


def test_a_session_ends_at_its_absolute_lifetime_however_much_it_is_used() -> None:
    """Sessions ended after 12 h idle only: one used every hour lived for ever (and the cookie said 14 days)."""
    sessions = Sessions(idle_s=60, max_s=300)
    sid = sessions.start(0.0)
    assert all(sessions.touch(sid, float(t)) for t in range(30, 300, 30))
    assert not sessions.touch(sid, 301.0)
    web = client(ORDERSYNC_WEB_SESSION_MAX_S="3600", **ACCOUNT)
    cookie = web.get("/login").headers.get("set-cookie", "")  # the CSRF token already sets the cookie
    assert "Max-Age=3600" in cookie and "1209600" not in cookie


def test_the_login_throttle_counts_the_account_too() -> None:
    web = client(**ACCOUNT)
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

"""Accounts, sessions and the audit trail in PostgreSQL (web/accounts.py, runtime/audit.py, ordersync
users): on a real database, through the functions, the app's routes and the installed command."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import psycopg
import pytest
from starlette.testclient import TestClient

from ordersync.runtime import audit
from ordersync.runtime.settings import Settings
from ordersync.sinks.migrate import migrate
from ordersync.web import accounts
from ordersync.web.app import create_app
from tests.processes import ROOT

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
RULES = accounts.SessionRules(idle_s=60, max_s=300)
PASSWORD = "a long passphrase"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("TRUNCATE web_users, web_sessions, audit_log")
        yield c


def test_an_account_keeps_only_an_argon2_hash_and_checks_its_password(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    accounts.add_user(conn, "ana", PASSWORD, ("1", "3"), False, T0)
    (stored,) = conn.execute("SELECT password_hash FROM web_users WHERE name = 'ana'").fetchone() or ("",)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.verify(conn, "ana", PASSWORD) == accounts.User("ana", ("1", "3"), False)
    assert accounts.verify(conn, "ana", PASSWORD.upper()) is None and accounts.verify(conn, "bob", PASSWORD) is None
    with pytest.raises(accounts.AccountError, match="exists"):
        accounts.add_user(conn, "ana", PASSWORD, None, True, T0)
    with pytest.raises(accounts.AccountError, match="12 characters"):
        accounts.add_user(conn, "bob", "short", None, True, T0)
    assert [(u.name, u.lists, u.admin) for u in accounts.list_users(conn)] == [("ana", ("1", "3"), False)]


def test_sessions_end_when_idle_at_their_lifetime_and_with_their_password(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    accounts.add_user(conn, "ana", PASSWORD, None, False, T0)
    at = lambda s: T0 + dt.timedelta(seconds=s)  # noqa: E731
    sid = accounts.start_session(conn, "ana", RULES, at(0))
    assert conn.execute("SELECT count(*) FROM web_sessions WHERE id_hash = %s", (sid.encode(),)).fetchone() == (0,)
    assert all(accounts.touch_session(conn, sid, RULES, at(t)) == "ana" for t in range(50, 300, 50))  # used: alive
    assert accounts.touch_session(conn, sid, RULES, at(301)) is None  # past its absolute lifetime
    idle = accounts.start_session(conn, "ana", RULES, at(400))
    assert accounts.touch_session(conn, idle, RULES, at(461)) is None  # unused for longer than idle_s
    assert accounts.touch_session(conn, "made-up", RULES, at(400)) is None
    assert accounts.touch_session(conn, None, RULES, at(400)) is None
    live = accounts.start_session(conn, "ana", RULES, at(500))  # ended sessions are forgotten meanwhile
    assert conn.execute("SELECT count(*) FROM web_sessions").fetchone() == (1,)
    accounts.set_password(conn, "ana", "another long passphrase", at(510))
    assert accounts.touch_session(conn, live, RULES, at(511)) is None  # a new password ends its sessions
    again = accounts.start_session(conn, "ana", RULES, at(520))
    accounts.remove_user(conn, "ana")
    assert accounts.touch_session(conn, again, RULES, at(521)) is None


def contacts(conn: psycopg.Connection, *found: tuple[str, str]) -> None:  # type: ignore[type-arg]
    conn.execute("TRUNCATE contacts CASCADE")
    for list_id, email in found:
        conn.execute(
            "INSERT INTO contacts (contact_id, list_id, email, origin, created_at, updated_at, version)"
            " VALUES (gen_random_uuid(), %s, %s, 'IMPORT', now(), now(), 1)",
            (list_id, email),
        )


def log_in(web: TestClient, user: str, password: str) -> int:
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)
    assert csrf
    return web.post("/login", data={"csrf": csrf.group(1), "user": user, "password": password}).status_code


@pytest.fixture
def served(conn: psycopg.Connection, database_url: str) -> Iterator[Callable[..., TestClient]]:  # type: ignore[type-arg]
    with contextlib.ExitStack() as running:

        def serve(**env: str) -> TestClient:
            app = create_app(Settings.from_env({"ORDERSYNC_DATABASE_URL": database_url, **env}))
            return running.enter_context(TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False))

        yield serve


def test_a_database_account_logs_in_sees_its_lists_and_is_audited(
    conn: psycopg.Connection,  # type: ignore[type-arg]
    served: Callable[..., TestClient],
) -> None:
    accounts.add_user(conn, "ana", PASSWORD, ("1",), False, T0)
    accounts.add_user(conn, "root", PASSWORD, None, True, T0)
    contacts(conn, ("1", "in-one@example.com"), ("2", "in-two@example.com"))
    web = served()
    assert web.get("/contacts").status_code == 303  # accounts exist: a login is needed, even on loopback
    assert log_in(web, "ana", "wrong password!") == 401
    assert log_in(web, "not-a-name", PASSWORD) == 401
    assert log_in(web, "ana", PASSWORD) == 303
    listed = web.get("/contacts")
    assert "in-one@example.com" in listed.text and "in-two@example.com" not in listed.text  # ana sees list 1
    assert web.get("/audit").status_code == 403  # ana is no admin
    admin = served()
    assert log_in(admin, "root", PASSWORD) == 303
    page = admin.get("/audit")
    assert page.status_code == 200 and 'href="/audit"' in page.text
    rows = [(e.actor, e.action) for e in audit.recent(conn)]
    assert rows[:4] == [("root", audit.LOGIN), ("ana", audit.LOGIN), ("(not an account)", audit.LOGIN_FAILED),
                        ("ana", audit.LOGIN_FAILED)]  # fmt: skip
    assert "not-a-name" not in page.text  # a name that is no account may be a password: never recorded


def test_a_removed_account_is_logged_out_at_once(conn: psycopg.Connection, served: Callable[..., TestClient]) -> None:  # type: ignore[type-arg]
    accounts.add_user(conn, "ana", PASSWORD, None, False, T0)
    accounts.add_user(conn, "root", PASSWORD, None, True, T0)  # with no account left, loopback is open again
    web = served()
    assert log_in(web, "ana", PASSWORD) == 303 and web.get("/nowhere").status_code == 404
    accounts.remove_user(conn, "ana")
    assert web.get("/nowhere").status_code == 303


def test_a_segment_export_is_audited_by_segment_and_count(
    conn: psycopg.Connection,  # type: ignore[type-arg]
    served: Callable[..., TestClient],
) -> None:
    contacts(conn, *(("1", f"c{n}@example.com") for n in range(3)))
    web = served()  # no account: loopback only, and everything
    never = json.dumps({"not": {"ordered": {"last_days": 30}}})  # none of them ordered: all three
    answer = web.get(
        "/segments/export.csv?" + urlencode({"list": "1", "name": "Everyone", "mode": "json", "json": never})
    )
    assert answer.status_code == 200 and answer.text.count("@example.com") == 3
    (entry,) = [e for e in audit.recent(conn) if e.action == audit.EXPORT]
    assert entry.detail == {"segment": "Everyone", "list": "1", "rows": 3, "complete": True}
    assert "example.com" not in str(entry)


def test_the_users_command_prompts_for_the_password_and_audits(conn: psycopg.Connection, database_url: str) -> None:  # type: ignore[type-arg]
    env = {"ORDERSYNC_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}

    def users(*args: str, typed: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ordersync.cli", "users", *args], input=typed, env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip

    added = users("add", "ana", "--lists", "1,3", typed=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    assert accounts.verify(conn, "ana", PASSWORD) == accounts.User("ana", ("1", "3"), False)
    assert users("add", "bob", typed="short\nshort\n").returncode != 0  # too short: refused
    listed = users("list")
    assert listed.returncode == 0 and "ana\t1,3\tmarketer" in listed.stdout and "argon2" not in listed.stdout
    assert users("set-password", "ana", typed="new long passphrase\nnew long passphrase\n").returncode == 0
    assert accounts.verify(conn, "ana", "new long passphrase") is not None
    assert users("remove", "ana").returncode == 0 and accounts.list_users(conn) == []
    assert users("remove", "ana").returncode == 1
    actions = [e.action for e in audit.recent(conn)]
    assert actions == [audit.USER_REMOVED, audit.PASSWORD_CHANGED, audit.USER_ADDED]


def test_a_new_trigger_destination_is_audited_without_its_credentials(
    conn: psycopg.Connection, database_url: str
) -> None:  # type: ignore[type-arg]
    from ordersync.cli import _audit_destination

    settings = Settings.from_env({"ORDERSYNC_DATABASE_URL": database_url})
    _audit_destination(settings, "crm", "https://user:secret@crm.example/hooks?token=abc")
    _audit_destination(settings, "crm", "https://user:secret@crm.example/hooks?token=abc")  # the same: nothing new
    _audit_destination(settings, "crm", "https://crm2.example/hooks")
    entries = [e.detail for e in audit.recent(conn) if e.action == audit.TRIGGER_DESTINATION]
    assert entries == [
        {"name": "crm", "url": "https://crm2.example/hooks", "was": "https://crm.example/hooks"},
        {"name": "crm", "url": "https://crm.example/hooks", "was": None},
    ]

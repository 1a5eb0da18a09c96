"""The web app's accounts and sessions in PostgreSQL (migration 016): marketers added with ``ordersync
users``, passwords hashed with argon2id (argon2-cffi), sessions known by the hash of their id so that a
restart keeps them and replicas share them. Every function takes the time it acts at, so the rules on
idle and absolute lifetimes are tested without waiting."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ADD_USER = """
INSERT INTO web_users (name, password_hash, lists, admin, created_at, password_changed_at)
VALUES (%(name)s, %(hash)s, %(lists)s, %(admin)s, %(now)s, %(now)s)
"""
LIST_USERS = "SELECT name, lists, admin, created_at, password_changed_at FROM web_users ORDER BY name"
FIND_USER = "SELECT name, password_hash, lists, admin FROM web_users WHERE name = %s"
REMOVE_USER = "DELETE FROM web_users WHERE name = %s"
SET_PASSWORD = "UPDATE web_users SET password_hash = %s, password_changed_at = %s WHERE name = %s"
ANY_USER = "SELECT EXISTS (SELECT FROM web_users)"

START_SESSION = "INSERT INTO web_sessions (id_hash, user_name, started_at, last_used_at) VALUES (%s, %s, %s, %s)"
# Used now, if still live: not idle for longer than idle_s, not older than max_s.
TOUCH_SESSION = """
UPDATE web_sessions SET last_used_at = %(now)s
WHERE id_hash = %(id)s
  AND last_used_at >= %(now)s - make_interval(secs => %(idle_s)s)
  AND started_at >= %(now)s - make_interval(secs => %(max_s)s)
RETURNING user_name
"""
END_SESSION = "DELETE FROM web_sessions WHERE id_hash = %s"
END_SESSIONS_OF = "DELETE FROM web_sessions WHERE user_name = %s"
FORGET_ENDED = """
DELETE FROM web_sessions
WHERE last_used_at < %(now)s - make_interval(secs => %(idle_s)s)
   OR started_at < %(now)s - make_interval(secs => %(max_s)s)
"""

HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so a wrong name takes as long as a wrong password."""
    return HASHER.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done (a name taken or unknown, a weak password)."""


@dataclass(frozen=True)
class User:
    name: str
    lists: tuple[str, ...] | None  # None: every list
    admin: bool


@dataclass(frozen=True)
class UserRow:
    name: str
    lists: tuple[str, ...] | None
    admin: bool
    created_at: dt.datetime
    password_changed_at: dt.datetime


MIN_PASSWORD = 12


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    conn: psycopg.Connection[Any],
    name: str,
    password: str,
    lists: tuple[str, ...] | None,
    admin: bool,
    now: dt.datetime,
) -> None:
    check_new_password(password)
    if not name or len(name) > 200 or name != name.strip():
        raise AccountError("a user name is 1 to 200 characters, without spaces at either end")
    try:
        with conn.transaction():
            conn.execute(
                ADD_USER,
                {
                    "name": name,
                    "hash": HASHER.hash(password),
                    "lists": list(lists) if lists else None,
                    "admin": admin,
                    "now": now,
                },
            )
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"user {name!r} exists already") from None


def list_users(conn: psycopg.Connection[Any]) -> list[UserRow]:
    return [
        UserRow(n, tuple(lists) if lists is not None else None, a, c, p)
        for n, lists, a, c, p in conn.execute(LIST_USERS)
    ]


def remove_user(conn: psycopg.Connection[Any], name: str) -> None:
    """The account and every session it has."""
    with conn.transaction():
        if conn.execute(REMOVE_USER, (name,)).rowcount == 0:
            raise AccountError(f"no user {name!r}")
        conn.execute(END_SESSIONS_OF, (name,))


def set_password(conn: psycopg.Connection[Any], name: str, password: str, now: dt.datetime) -> None:
    """A new password; the account's sessions end (whoever knew the old one is logged out)."""
    check_new_password(password)
    with conn.transaction():
        if conn.execute(SET_PASSWORD, (HASHER.hash(password), now, name)).rowcount == 0:
            raise AccountError(f"no user {name!r}")
        conn.execute(END_SESSIONS_OF, (name,))


def verify(conn: psycopg.Connection[Any], name: str, password: str) -> User | None:
    """The account ``name`` if ``password`` is its password."""
    row = conn.execute(FIND_USER, (name,)).fetchone()
    try:
        HASHER.verify(row[1] if row else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    return User(row[0], tuple(row[2]) if row[2] is not None else None, bool(row[3]))


def find_user(conn: psycopg.Connection[Any], name: str) -> User | None:
    row = conn.execute(FIND_USER, (name,)).fetchone()
    return User(row[0], tuple(row[2]) if row[2] is not None else None, bool(row[3])) if row else None


def any_user(conn: psycopg.Connection[Any]) -> bool:
    """Whether the database holds an account (False before the accounts' migration)."""
    table = conn.execute("SELECT to_regclass('web_users') IS NOT NULL").fetchone()
    if not table or not table[0]:
        return False
    row = conn.execute(ANY_USER).fetchone()
    return bool(row and row[0])


def hashed(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()


@dataclass(frozen=True)
class SessionRules:
    idle_s: float
    max_s: float


def start_session(conn: psycopg.Connection[Any], user: str, rules: SessionRules, now: dt.datetime) -> str:
    """A new session's id (for the cookie); ended sessions are forgotten on the way."""
    sid = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(FORGET_ENDED, {"now": now, "idle_s": rules.idle_s, "max_s": rules.max_s})
        conn.execute(START_SESSION, (hashed(sid), user, now, now))
    return sid


# The session's user, with its account's lists and role when it has one (one round trip per request).
SESSION_READER = f"""
WITH s AS ({TOUCH_SESSION})
SELECT s.user_name, u.lists, u.admin, u.name IS NOT NULL FROM s LEFT JOIN web_users u ON u.name = s.user_name
"""


def session_reader(
    conn: psycopg.Connection[Any], sid: object, rules: SessionRules, now: dt.datetime
) -> tuple[str, list[str] | None, bool | None, bool] | None:
    """(user, the account's lists, admin, whether the account exists) while ``sid`` is a live session
    (it counts as used now), else None."""
    if not isinstance(sid, str) or not sid:
        return None
    params = {"now": now, "id": hashed(sid), "idle_s": rules.idle_s, "max_s": rules.max_s}
    row = conn.execute(SESSION_READER, params).fetchone()
    return (str(row[0]), row[1], row[2], bool(row[3])) if row else None


def touch_session(conn: psycopg.Connection[Any], sid: object, rules: SessionRules, now: dt.datetime) -> str | None:
    """The user of ``sid`` while it is a live session (and it counts as used now), else None."""
    found = session_reader(conn, sid, rules, now)
    return found[0] if found else None


def end_session(conn: psycopg.Connection[Any], sid: object) -> None:
    if isinstance(sid, str) and sid:
        conn.execute(END_SESSION, (hashed(sid),))

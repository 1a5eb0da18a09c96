"""The audit trail (pure SQL over one connection): who did what and when, in PostgreSQL's ``audit_log``
(migration 016). The web app records logins and exports, the CLI account changes and the trigger
forwarder its destination; admins read it on the web app's Audit page. Details never hold a contact's
personal data or a secret."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

RECORD = "INSERT INTO audit_log (at, actor, action, detail) VALUES (%s, %s, %s, %s)"
RECENT = "SELECT at, actor, action, detail FROM audit_log ORDER BY at DESC, id DESC LIMIT %s"
LAST_OF = """
SELECT detail FROM audit_log WHERE action = %s AND detail @> %s ORDER BY at DESC, id DESC LIMIT 1
"""

# The actions, as recorded.
LOGIN, LOGIN_FAILED, LOGOUT = "login", "login failed", "logout"
USER_ADDED, USER_REMOVED, PASSWORD_CHANGED = "user added", "user removed", "password changed"
EXPORT, TRIGGER_DESTINATION = "segment export", "trigger destination"


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    actor: str
    action: str
    detail: dict[str, Any]


def record(conn: psycopg.Connection[Any], actor: str, action: str, **detail: Any) -> None:
    """One entry, now; committed with the caller's transaction (or at once in autocommit)."""
    conn.execute(RECORD, (dt.datetime.now(dt.UTC), actor, action, Jsonb(detail)))


def recent(conn: psycopg.Connection[Any], limit: int = 200) -> list[Entry]:
    return [Entry(*row) for row in conn.execute(RECENT, (limit,))]


def last_detail(conn: psycopg.Connection[Any], action: str, **matching: Any) -> dict[str, Any] | None:
    """The details of the latest ``action`` whose details hold ``matching``."""
    row = conn.execute(LAST_OF, (action, Jsonb(matching))).fetchone()
    return dict(row[0]) if row else None

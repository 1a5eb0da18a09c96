"""The login gate: every request but the login page's needs a live session in PostgreSQL, unless the app
has no account at all (then it only binds to loopback, and everyone on the machine may read it). The
reader it finds (the account, its lists, admin or not) is ``request.state.reader`` for the pages."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import psycopg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ordersync.web import accounts
from ordersync.web.auth import OPEN_PATHS, Access, Reader
from ordersync.web.common import db

# A session of the bootstrap account (from the environment) is stored under this prefix, so it can
# never be taken for a database account of the same name.
BOOTSTRAP = "env:"
ACCOUNTS_CHECKED_EVERY_S = 5.0


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Gate:
    def __init__(self, bootstrap: Access, rules: accounts.SessionRules) -> None:
        self.bootstrap, self.rules = bootstrap, rules
        self._accounts_seen = (float("-inf"), False)  # (when checked, any account in the database)

    def reader_of(self, conn: psycopg.Connection[Any], sid: object) -> Reader | None:
        """The reader of session ``sid`` while it is live and its account still exists."""
        found = accounts.session_reader(conn, sid, self.rules, now())
        if found is None:
            return None
        name, lists, admin, known = found
        if name.startswith(BOOTSTRAP):
            if self.bootstrap.user is None or name != BOOTSTRAP + self.bootstrap.user:
                return None  # the bootstrap account was changed or removed from the environment
            return Reader(self.bootstrap.user, self.bootstrap.lists, admin=True)
        return Reader(name, tuple(lists) if lists is not None else None, bool(admin)) if known else None

    async def login_required(self, request: Request) -> bool:
        if self.bootstrap.login_required:
            return True
        checked_at, found = self._accounts_seen
        if time.monotonic() - checked_at > ACCOUNTS_CHECKED_EVERY_S:
            found = await db(request, accounts.any_user)
            self._accounts_seen = (time.monotonic(), found)
        return found

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        reader = None
        if not path.startswith(OPEN_PATHS) and request.session.get("sid"):
            reader = await db(request, lambda conn: self.reader_of(conn, request.session.get("sid")))
        if reader is None and not path.startswith(OPEN_PATHS):
            if await self.login_required(request):
                request.session.pop("user", None)
                request.session.pop("sid", None)
                if request.method != "GET":
                    return Response("log in first", status_code=401)
                target = path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            reader = Reader(None, None, admin=True)  # no account anywhere: loopback only, everything
        request.state.reader = reader or Reader(None, (), admin=False)
        return await call_next(request)

    def log_in(self, conn: psycopg.Connection[Any], user: str, password: str) -> tuple[str | None, bool]:
        """The session user for ``user`` and ``password`` (None: wrong), and whether ``user`` names an
        account at all (for the audit trail: a name that is no account may be a mistyped password)."""
        if self.bootstrap.check(user, password):
            return BOOTSTRAP + user, True
        found = accounts.verify(conn, user, password)
        if found is not None:
            return found.name, True
        return None, user == self.bootstrap.user or accounts.find_user(conn, user) is not None

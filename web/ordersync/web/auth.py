"""Access to the web app: one account from the environment, a signed session cookie, a CSRF token on
every form, and the contact lists the account may see (docs/web.md "Access")."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ordersync.runtime.settings import Settings

OPEN_PATHS = ("/login", "/static/")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """Who may use the app: an account (or none on loopback) and the lists it sees (None: all)."""

    user: str | None
    password: str | None
    lists: tuple[str, ...] | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        lists = None
        if settings.web_lists:
            lists = tuple(name.strip() for name in settings.web_lists.split(",") if name.strip())
        password = settings.web_password.get_secret_value() if settings.web_password else None
        return cls(settings.web_user or None, password or None, lists)

    @property
    def login_required(self) -> bool:
        return self.user is not None

    def problem(self, host: str) -> str | None:
        """Why the app must not start on ``host`` with this access, if it must not."""
        if (self.user is None) != (self.password is None):
            return "set both ORDERSYNC_WEB_USER and ORDERSYNC_WEB_PASSWORD, or neither"
        if not is_loopback(host) and not self.login_required:
            return (
                f"--host {host} is not a loopback address and the app shows personal data: set "
                "ORDERSYNC_WEB_USER and ORDERSYNC_WEB_PASSWORD to require a login"
            )
        return None

    def check(self, user: str, password: str) -> bool:
        if self.user is None or self.password is None:
            return False
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        return hmac.compare_digest(password.encode(), self.password.encode()) and same_user

    def sees(self, list_id: str | None) -> bool:
        return self.lists is None or list_id in self.lists


def client_key(address: str) -> str:
    """Whom a login attempt counts against: an IPv4 address, or the /64 of an IPv6 one (a client gets a
    whole /64 and can rotate through it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Wrong passwords are counted per client (IPv4 address, IPv6 /64) and per account name within
    ``window_s``: past ``attempts`` from one client, that client waits out the window; past
    ``account_attempts`` for one account from anywhere, every client that has itself failed recently waits
    too. A client with no recent failure is never refused: guessing from many addresses gets slow, but
    nobody can lock the account's owner out. Counts older than the window are forgotten, and at most
    ``max_keys`` clients are remembered."""

    def __init__(
        self, attempts: int = 5, window_s: float = 300.0, account_attempts: int = 20, max_keys: int = 10_000
    ) -> None:
        self.attempts, self.window_s, self.account_attempts, self.max_keys = (
            attempts,
            window_s,
            account_attempts,
            max_keys,
        )
        self._failures: dict[str, list[float]] = {}
        self._swept_at = float("-inf")

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def _wait(self, key: str, limit: int, now: float) -> float:
        recent = self._recent(key, now)
        return self.window_s - (now - recent[-limit]) if len(recent) >= limit else 0.0

    def blocked_for(self, client: str, user: str, now: float) -> float:
        """Seconds before ``client`` may try ``user``'s password again (0: now)."""
        mine = "client " + client_key(client)
        if not self._recent(mine, now):
            return 0.0
        return max(self._wait(mine, self.attempts, now), self._wait("account " + user, self.account_attempts, now))

    def failed(self, client: str, user: str, now: float) -> None:
        if now - self._swept_at > self.window_s or len(self._failures) >= self.max_keys:
            self._swept_at = now
            for key in list(self._failures):
                self._recent(key, now)
        for key in ("client " + client_key(client), "account " + user):
            self._failures.setdefault(key, []).append(now)
        if len(self._failures) > self.max_keys:
            while len(self._failures) > self.max_keys:  # still too many: drop the oldest first
                oldest = min(self._failures, key=lambda k: self._failures[k][-1])
                del self._failures[oldest]

    def succeeded(self, client: str, user: str) -> None:
        self._failures.pop("client " + client_key(client), None)
        self._failures.pop("account " + user, None)

    def __len__(self) -> int:
        return len(self._failures)


class Sessions:
    """The sessions the server knows: a cookie names one by a random id, logging out forgets it, one
    unused for ``idle_s`` has ended, and so has one older than ``max_s`` however much it is used. Held by
    the app process: restarting it ends every session."""

    def __init__(self, idle_s: float, max_s: float = 24 * 3600.0) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self._last_used: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, now: float) -> str:
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._forget_idle(now)
            self._last_used[sid] = now
            self._started[sid] = now
        return sid

    def touch(self, sid: object, now: float) -> bool:
        """True while ``sid`` is a live session (and it counts as used now)."""
        if not isinstance(sid, str):
            return False
        with self._lock:
            last = self._last_used.get(sid)
            if last is None or now - last > self.idle_s or now - self._started.get(sid, now) > self.max_s:
                self._last_used.pop(sid, None)
                self._started.pop(sid, None)
                return False
            self._last_used[sid] = now
            return True

    def end(self, sid: object) -> None:
        if isinstance(sid, str):
            with self._lock:
                self._last_used.pop(sid, None)
                self._started.pop(sid, None)

    def _forget_idle(self, now: float) -> None:
        ended = [
            sid
            for sid, last in self._last_used.items()
            if now - last > self.idle_s or now - self._started[sid] > self.max_s
        ]
        for sid in ended:
            del self._last_used[sid], self._started[sid]

    def __len__(self) -> int:
        return len(self._last_used)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every form carries it."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """A 403 unless the posted form carries this session's CSRF token."""
    form = await request.form()
    sent = form.get("csrf")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "this form has expired or did not come from this app: reload the page and try again")


def login_gate(
    access: Access, sessions: Sessions
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware: without a live session (logged out, idle too long, or from before a restart),
    every page but the login page sends the browser to log in."""

    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if access.login_required and not path.startswith(OPEN_PATHS) and not _live(request, sessions):
            request.session.pop("user", None)
            if request.method != "GET":
                return Response("log in first", status_code=401)
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return await call_next(request)

    return gate


def _live(request: Request, sessions: Sessions) -> bool:
    return bool(request.session.get("user")) and sessions.touch(request.session.get("sid"), time.monotonic())


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this app, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/contacts"
    return target

"""Access to the web app: one account from the environment, a signed session cookie, a CSRF token on
every form, and the contact lists the account may see (docs/web.md "Access")."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
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


class LoginThrottle:
    """After ``attempts`` wrong passwords from one address within ``window_s``, that address waits out the
    window: guessing the password gets slow, the account is never locked for everyone."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[str, list[float]] = {}

    def _recent(self, client: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked_for(self, client: str, now: float) -> float:
        """Seconds ``client`` must wait before trying again (0: it may try now)."""
        recent = self._recent(client, now)
        return self.window_s - (now - recent[0]) if len(recent) >= self.attempts else 0.0

    def failed(self, client: str, now: float) -> None:
        self._failures.setdefault(client, []).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


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


def login_gate(access: Access) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware: without a session, every page but the login page sends the browser to log in."""

    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if access.login_required and not request.session.get("user") and not path.startswith(OPEN_PATHS):
            if request.method != "GET":
                return Response("log in first", status_code=401)
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return await call_next(request)

    return gate


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this app, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/contacts"
    return target

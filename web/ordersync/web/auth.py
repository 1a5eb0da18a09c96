"""Access to the web app: accounts in PostgreSQL (web/accounts.py) and a bootstrap account from the
environment, sessions the server keeps, a CSRF token on every form, and the contact lists each reader may
see (docs/security.md)."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ordersync.runtime.settings import Settings

OPEN_PATHS = ("/login", "/static/")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The bootstrap account from the environment (``ORDERSYNC_WEB_USER`` / ``_PASSWORD`` / ``_LISTS``):
    the demo's account, and the first admin of a new installation, who adds the others with ``ordersync
    users``. It is an admin."""

    user: str | None
    password: str | None
    lists: tuple[str, ...] | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        password = settings.web_password.get_secret_value() if settings.web_password else None
        return cls(settings.web_user or None, password or None, parse_lists(settings.web_lists))

    @property
    def login_required(self) -> bool:
        return self.user is not None

    def problem(self, host: str, accounts_in_database: bool = False) -> str | None:
        """Why the app must not start on ``host`` with this access, if it must not."""
        if (self.user is None) != (self.password is None):
            return "set both ORDERSYNC_WEB_USER and ORDERSYNC_WEB_PASSWORD, or neither"
        if not is_loopback(host) and not self.login_required and not accounts_in_database:
            return (
                f"--host {host} is not a loopback address and the app shows personal data: add an account "
                "(ordersync users add NAME) or set ORDERSYNC_WEB_USER and ORDERSYNC_WEB_PASSWORD to require a login"
            )
        return None

    def check(self, user: str, password: str) -> bool:
        if self.user is None or self.password is None:
            return False
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        return hmac.compare_digest(password.encode(), self.password.encode()) and same_user

    def sees(self, list_id: str | None) -> bool:
        return self.lists is None or list_id in self.lists


@dataclass(frozen=True)
class Reader:
    """Who is reading a page: the account (None: nobody logged in, on loopback without accounts), the
    lists it sees (None: all) and whether it may read the audit trail."""

    user: str | None
    lists: tuple[str, ...] | None
    admin: bool

    def sees(self, list_id: str | None) -> bool:
        return self.lists is None or list_id in self.lists


def parse_lists(text: str | None) -> tuple[str, ...] | None:
    """``"1, 3"`` → ("1", "3"); empty or None: every list."""
    if not text:
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip()) or None


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


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this app, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/contacts"
    return target

"""What keeps the app safe beyond the login (docs/security.md): the Host header checked against
the names the app serves, security headers on every answer (sessions: ordersync.web.auth)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordersync.web.auth import is_loopback

# Scripts and styles only from the app's own files: an injected <script> or on* attribute never runs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lower case (``[::1]:8000`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def allowed_hosts(bound: str, configured: str | None, login_required: bool) -> frozenset[str] | None:
    """The Host names to answer, or None for any. Without a login only loopback names and the configured
    ones: a page on another site that rebinds its DNS name to 127.0.0.1 sends its own name and is refused."""
    names = {host_name(n) for n in (configured or "").split(",") if n.strip()}
    if login_required and not names:
        return None
    if is_loopback(bound) or not login_required:
        names.update(LOOPBACK_NAMES)
    if bound not in ("0.0.0.0", "::"):
        names.add(host_name(bound) if not bound.count(":") > 1 else bound.lower())
    return frozenset(names)


class Guard:
    """ASGI middleware: refuses unknown Host names (400) and sets the security headers; pages and exports
    (personal data) are never cached, the stylesheet and scripts may be."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.hosts is not None:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                await PlainTextResponse("unknown host: set ORDERSYNC_WEB_ALLOWED_HOSTS", 400)(scope, receive, send)
                return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            await PlainTextResponse("a NUL character is not allowed in a request", 400)(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if not cacheable:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)

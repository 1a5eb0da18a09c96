"""HTTP to a store: retries with backoff for 429 / 5xx / timeouts / broken responses / non-JSON pages,
Retry-After honoured, then one clear error naming the store and the URL (with any credentials redacted).
The connector's store loop (ordersync.producers.run) decides what happens after that error.

The store's credentials go to the store's own origin (scheme, host, port) only: redirects are followed
by this module, not by aiohttp, and only within that origin; one to anywhere else is a StoreError, so a
store (or anything on its path) cannot send the login to another host."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from ordersync.producers.documents import page_text

log = logging.getLogger(__name__)
SECRET_PARAMS = {"consumer_key", "consumer_secret", "ws_key"}
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 5


class StoreError(RuntimeError):
    """A store request failed for good; the message names the store, the URL and the reason."""

    def __init__(self, store_id: str, url: str, reason: str, *, refused: bool = False) -> None:
        super().__init__(f"store {store_id}: {reason} ({url})")
        self.store_id, self.url, self.reason = store_id, url, reason
        self.refused = refused  # 401/403: the credentials were refused, not a passing fault


@dataclass(frozen=True)
class Response:
    text: str
    headers: dict[str, str]
    status: int


def redacted(url: str, params: dict[str, Any] | None) -> str:
    shown = {k: ("***" if k in SECRET_PARAMS else v) for k, v in (params or {}).items()}
    return f"{url}?{urlencode(shown, safe='[],|>:')}" if shown else url


class StoreHttp:
    def __init__(
        self,
        store_id: str,
        base_url: str,
        *,
        auth: aiohttp.BasicAuth | None = None,
        query_auth: dict[str, str] | None = None,
        attempts: int = 6,
        timeout_s: float = 30.0,
        max_backoff_s: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        self.store_id = store_id
        self.base_url = base_url.rstrip("/")
        self.origin = URL(self.base_url).origin()
        self.auth = auth
        self.query_auth = query_auth or {}
        self.attempts = attempts
        self.max_backoff_s = max_backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self.retries = 0
        # Told (epoch seconds until, reason) when the store asked to wait (Retry-After): for the health board.
        self.on_wait: Callable[[float, str], None] | None = None

    async def __aenter__(self) -> StoreHttp:
        self._session = aiohttp.ClientSession(timeout=self.timeout, auth=self.auth)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, url: str, query: dict[str, Any], shown: str) -> tuple[int, dict[str, str], bytes]:
        """One request, following redirects within the store's origin only."""
        assert self._session is not None, "use StoreHttp as an async context manager"
        target, params = URL(url), query
        for _ in range(MAX_REDIRECTS + 1):
            async with self._limit, self._session.get(target, params=params, allow_redirects=False) as response:
                body = await response.read()
                headers = {k: v for k, v in response.headers.items()}
                if response.status not in REDIRECT_STATUSES:
                    return response.status, headers, body
            target = target.join(URL(headers.get("Location", "")))
            if target.origin() != self.origin:
                raise StoreError(
                    self.store_id,
                    shown,
                    f"HTTP {response.status} redirects to another origin ({target.origin()}): not followed, "
                    "the store's credentials are sent to its own origin only",
                )
            params = dict(self.query_auth)  # the Location carries its own query; add only the login
        raise StoreError(self.store_id, shown, f"more than {MAX_REDIRECTS} redirects")

    async def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        expect_json: bool = True,
        accept: tuple[int, ...] = (),
    ) -> Response:
        """The store's 200 answer (or one with a status in ``accept``), after retries."""
        assert self._session is not None, "use StoreHttp as an async context manager"
        url = self.base_url + path
        shown = redacted(url, params)
        query = {**(params or {}), **self.query_auth}
        delay = 0.5
        reason = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            wait: float | None = None
            try:
                status, headers, body = await self._fetch(url, query, shown)
                text = page_text(body)
                if status == 200:
                    if not expect_json or _looks_like_json(text):
                        return Response(text, headers, 200)
                    reason = f"HTTP 200 but the body is not JSON (starts {text[:60]!r})"
                elif status in accept:
                    return Response(text, headers, status)
                elif status in RETRY_STATUSES:
                    reason = f"HTTP {status}"
                    wait = _retry_after(headers.get("Retry-After"))
                elif status in (401, 403):
                    raise StoreError(self.store_id, shown, f"HTTP {status}: credentials refused", refused=True)
                else:
                    raise StoreError(self.store_id, shown, f"HTTP {status}: {text[:200]!r}")
            except (TimeoutError, aiohttp.ClientError) as exc:  # ClientError: also a malformed response
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt == self.attempts:
                break
            self.retries += 1
            pause = wait if wait is not None else delay * (1 + random.random() * 0.2)
            log.warning(
                "store %s: %s on %s; retry %d/%d in %.1fs",
                self.store_id,
                reason,
                shown,
                attempt,
                self.attempts - 1,
                pause,
            )
            if wait is not None and self.on_wait is not None:  # the store said how long: show it
                self.on_wait(time.time() + pause, f"{reason}, Retry-After")
            await asyncio.sleep(pause)
            delay = min(delay * 2, self.max_backoff_s)
        raise StoreError(self.store_id, shown, f"gave up after {self.attempts} attempts: {reason}")


def header_int(headers: dict[str, str], name: str, store_id: str, url: str) -> int | None:
    """A whole-number header of a store's answer (None when absent); an unreadable one is that store's
    fault, a StoreError, never a crash of the connector."""
    value = headers.get(name)
    if value is None:
        return None
    if not (value.strip().isascii() and value.strip().isdigit()) or len(value.strip()) > 18:
        raise StoreError(store_id, url, f"unreadable {name} header {value[:40]!r}: not a whole number")
    return int(value)


def _looks_like_json(text: str) -> bool:
    """A cheap shape check (an HTML error page, an empty or cut-off body fail it). The full parse happens
    once, where the documents are split out: parsing every page twice cost a quarter of the connector's
    CPU (bench/connector_backfill.py --profile)."""
    stripped = text.strip()
    return bool(stripped) and stripped[0] in "[{" and stripped[-1] in "]}"


MAX_RETRY_AFTER_S = 3600.0  # a store asking for longer (Retry-After: 1e308) is asked again after an hour


def _retry_after(value: str | None) -> float | None:
    """Seconds a store asks us to wait, at most MAX_RETRY_AFTER_S (None: not a number of seconds)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))

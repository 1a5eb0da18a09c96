"""What both simulators share: HTTP Basic auth checks, injected faults, PHP-style JSON, a live ticker."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def php_json(value: Any) -> str:
    """JSON as PHP's json_encode writes it: slashes escaped as \\/ (WooCommerce and PrestaShop both do)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


@dataclass
class Faults:
    """Faults to inject: the next N requests fail with a status, or a random share of all requests."""

    queued: list[int] = field(default_factory=list)
    random_rate: float = 0.0
    random_status: tuple[int, ...] = (429, 500)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    served: int = 0
    injected: int = 0
    latency_s: float = 0.0  # added to every API request: a slow shop
    live_paused: bool = False  # tests freeze the shop to compare the pipeline's result with its state
    failing: int | None = None  # every API request answered with this status until it is cleared (an outage)
    headers: dict[str, str] = field(default_factory=dict)  # set on every API answer (e.g. X-WP-Total: n/a)
    redirect_to: str | None = None  # product lookups answered 302 to this URL (another host, e.g.)

    def next_fault(self) -> int | None:
        if self.failing is not None:
            return self.failing
        if self.queued:
            return self.queued.pop(0)
        if self.random_rate and self.rng.random() < self.random_rate:
            return self.rng.choice(self.random_status)
        return None


def fault_middleware(faults: Faults) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__sim"):
            return await handler(request)
        faults.served += 1
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.redirect_to and request.path.endswith("/products"):
            raise web.HTTPFound(faults.redirect_to)
        status = faults.next_fault()
        if status is None:
            response = await handler(request)
            response.headers.update(faults.headers)
            return response
        faults.injected += 1
        if status == 429:
            return web.json_response(
                {"code": "too_many_requests", "message": "Slow down", "data": {"status": 429}},
                status=429,
                headers={"Retry-After": "1", **{k: v for k, v in faults.headers.items() if k == "Retry-After"}},
            )
        if status == 200:  # an HTML error page with a 200, as misconfigured PHP hosts send
            return web.Response(text="<html><body><h1>Fatal error</h1></body></html>", content_type="text/html")
        return web.Response(
            status=status, text="<html><body>Internal Server Error</body></html>", content_type="text/html"
        )

    return middleware


def add_control_routes(
    app: web.Application, faults: Faults, tick: Callable[[int, int, int, int, int], Awaitable[dict[str, Any]]]
) -> None:
    """/__sim/faults queues failures; /__sim/tick creates, updates and trashes orders, edits customers
    (a new phone number) and, in the WooCommerce shop, deletes customers, now."""

    async def post_faults(request: web.Request) -> web.Response:
        body = await request.json()
        faults.queued.extend(int(s) for s in body.get("next", []))
        if "latency_s" in body:
            faults.latency_s = float(body["latency_s"])
        if "live_paused" in body:
            faults.live_paused = bool(body["live_paused"])
        if "random_rate" in body:
            faults.random_rate = float(body["random_rate"])
        if "headers" in body:
            faults.headers = {str(k): str(v) for k, v in body["headers"].items()}
        if "redirect_to" in body:
            faults.redirect_to = body["redirect_to"]
        if "failing" in body:
            faults.failing = None if body["failing"] is None else int(body["failing"])
        return web.json_response(
            {"queued": faults.queued, "random_rate": faults.random_rate, "live_paused": faults.live_paused}
        )

    async def post_tick(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        result = await tick(
            int(body.get("creates", 0)),
            int(body.get("updates", 0)),
            int(body.get("trashes", 0)),
            int(body.get("customer_deletes", 0)),
            int(body.get("customer_updates", 0)),
        )
        return web.json_response(result)

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response({"served": faults.served, "injected": faults.injected})

    app.router.add_post("/__sim/faults", post_faults)
    app.router.add_post("/__sim/tick", post_tick)
    app.router.add_get("/__sim/stats", get_stats)


async def run_live(rate: float, step: Callable[[], Awaitable[None]]) -> None:
    """Keep changing the shop at about ``rate`` changes per second."""
    if rate <= 0:
        return
    interval = 1.0 / rate
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        await step()
        next_at += interval
        # Behind by more than a second (paused, or a slow step): carry on from now, not in a burst.
        next_at = max(next_at, loop.time() - 1.0)
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def serve_forever(
    app: web.Application, host: str, port: int, rate: float, step: Callable[[], Awaitable[None]]
) -> None:
    """Serve a simulator's app, changing the shop live at ``rate`` changes per second."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await run_live(rate, step)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

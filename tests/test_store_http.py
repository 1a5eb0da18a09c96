"""StoreHttp against two local HTTP servers (two origins): redirects within the store's origin are followed
with its login, a redirect to another origin is refused before anything is sent there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from ordersync.producers.http_client import StoreError, StoreHttp

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def two_origins() -> AsyncIterator[tuple[str, str, list[dict[str, str]]]]:
    seen_elsewhere: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen_elsewhere.append(dict(request.headers))
        return web.json_response([])

    other = web.Application()
    other.router.add_get("/steal", elsewhere)
    other_runner, other_url = await serve(other)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/api/orders?page=2")

    async def orders(request: web.Request) -> web.Response:
        return web.json_response([{"auth": request.headers.get("Authorization", "")}])

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other_url}/steal")

    store = web.Application()
    store.router.add_get("/api/moved", moved)
    store.router.add_get("/api/orders", orders)
    store.router.add_get("/api/away", away)
    store_runner, store_url = await serve(store)
    try:
        yield store_url, other_url, seen_elsewhere
    finally:
        await store_runner.cleanup()
        await other_runner.cleanup()


def test_redirects_are_followed_within_the_store_and_refused_beyond_it() -> None:
    async def scenario() -> None:
        async for store_url, _other_url, seen_elsewhere in two_origins():
            http = StoreHttp("w", store_url, auth=aiohttp.BasicAuth("ck_x", "cs_y"), attempts=1)
            async with http:
                followed = await http.get("/api/moved")
                assert "Basic " in followed.text  # the login went along, within the store's origin
                with pytest.raises(StoreError, match="redirects to another origin") as refused:
                    await http.get("/api/away")
                assert "cs_y" not in str(refused.value)
            assert seen_elsewhere == []  # not even a request without the login

    asyncio.run(scenario())

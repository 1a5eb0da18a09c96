"""``ordersync connect``: run the connectors of the configured stores (backfill, then optionally follow)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from ordersync import heartbeat
from ordersync.settings import Settings
from ordersync.stores import StoreConfig
from producers.connector import Connector, Progress, Topics, make_source
from producers.cursors import CursorStore
from producers.http_client import StoreError
from producers.publisher import Publisher, PublishError

log = logging.getLogger("ordersync.connector")


@dataclass
class ConnectResult:
    orders: int
    customers: int
    errors: list[str]


async def connect(settings: Settings, stores: list[StoreConfig], *, follow: bool, full: bool) -> ConnectResult:
    topics = Topics.with_prefix(settings.topic_prefix)
    publisher = Publisher(settings.kafka_bootstrap)
    cursors = CursorStore(settings.kafka_bootstrap, topics.state, publisher)
    await asyncio.to_thread(cursors.load)
    if full:
        for store in stores:
            await cursors.reset(store.id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connectors: list[Connector] = []
    errors: list[str] = []

    async def run_store(store: StoreConfig) -> None:
        source, http = make_source(store)
        async with http:
            connector = Connector(store, source, publisher, cursors, topics)
            connectors.append(connector)
            progress = Progress(store.id, total=await source.count_orders())
            await connector.backfill(progress)
            progress.finish()
            log.info(
                "%s: backfill complete (%d orders, %d customers this run)",
                store.id,
                connector.published_orders,
                connector.published_customers,
            )
            if follow:
                await connector.follow(stop)

    async def guarded(store: StoreConfig) -> None:
        try:
            await run_store(store)
        except (StoreError, PublishError) as exc:
            errors.append(str(exc))
            log.error("%s", exc)

    tasks = [asyncio.create_task(guarded(store)) for store in stores]
    stopper: asyncio.Task[object] = asyncio.create_task(stop.wait())
    beating = asyncio.create_task(heartbeat.beat_forever())
    everything: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*tasks))
    await asyncio.wait([everything, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    beating.cancel()
    try:
        await publisher.flush()
    except PublishError as exc:
        errors.append(str(exc))
    return ConnectResult(
        sum(c.published_orders for c in connectors), sum(c.published_customers for c in connectors), errors
    )

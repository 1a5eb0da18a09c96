"""``ordersync connect``: run the connectors of the configured stores (backfill, then optionally follow).

Each store runs in its own loop. In follow mode that loop never ends while the process runs: a store
that fails (unreachable, 5xx past the HTTP retries, Kafka not acknowledging, credentials refused) is
marked failing in the health board, waits a capped, jittered backoff (credentials refused: a slow,
fixed pace) and starts again from its cursor. One store's trouble never touches another's: an error of
any other kind inside one store's loop (an answer of a shape nobody foresaw, a bug on its path) is that
store's failure too, logged with its traceback once, never the end of every store's connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from dataclasses import dataclass

from ordersync.producers.connector import Connector, Progress, make_source
from ordersync.producers.cursors import CursorStore
from ordersync.producers.http_client import StoreError
from ordersync.producers.publisher import Publisher, PublishError
from ordersync.runtime import heartbeat
from ordersync.runtime.settings import Settings
from ordersync.runtime.store_health import HealthBoard
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas.topics import TopicNames

log = logging.getLogger(__name__)
STORE_FAULTS = (StoreError, PublishError)  # a store (or Kafka) failing, not this program


@dataclass
class ConnectResult:
    orders: int
    customers: int
    dead_letters: int
    errors: list[str]


@dataclass(frozen=True)
class Backoff:
    """How long a failing store waits before its next attempt."""

    first_s: float = 1.0
    max_s: float = 60.0
    refused_s: float = 300.0  # credentials refused: someone must fix them; ask again now and then

    def delay(self, failures: int, refused: bool) -> float:
        if refused:
            return self.refused_s
        return float(min(self.max_s, self.first_s * 2 ** min(failures - 1, 20)) * random.uniform(0.5, 1.0))


async def connect(
    settings: Settings, stores: list[StoreConfig], *, follow: bool, full: bool, backoff: Backoff | None = None
) -> ConnectResult:
    backoff = backoff or Backoff(max_s=settings.store_retry_max_s, refused_s=settings.store_refused_retry_s)
    topics = TopicNames.with_prefix(settings.topic_prefix)
    publisher = Publisher(settings.kafka_bootstrap)
    cursors = CursorStore(settings.kafka_bootstrap, topics.connector_state, publisher)
    await asyncio.to_thread(cursors.load)
    if full:
        for store in stores:
            await cursors.reset(store.id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    board = HealthBoard.from_env([s.id for s in stores])
    connectors: list[Connector] = []
    errors: list[str] = []

    async def attempt(store: StoreConfig) -> None:
        source, http = make_source(store)
        http.on_wait = lambda until, why: board.waiting(store.id, until, why)
        async with http:
            connector = Connector(store, source, publisher, cursors, topics)
            connectors.append(connector)
            progress = Progress(store.id, total=await source.count_orders())
            await connector.backfill(
                progress, on_progress=lambda: board.backfilled(store.id, progress.done, progress.total)
            )
            progress.finish()
            board.backfilled(store.id, progress.done, progress.total, complete=True)
            log.info(
                "%s: backfill complete (%d orders, %d customers, %d dead letters this run)",
                store.id,
                connector.published_orders,
                connector.published_customers,
                connector.dead_letters,
            )
            if follow:
                await connector.follow(stop, on_poll=lambda: board.succeeded(store.id))

    async def run_store(store: StoreConfig) -> None:
        while not stop.is_set():
            try:
                await attempt(store)
                return
            except Exception as exc:
                if not isinstance(exc, STORE_FAULTS):  # unforeseen: this store's failure, with the details
                    log.error("%s: unexpected %s", store.id, type(exc).__name__, exc_info=exc)
                    exc = StoreError(store.id, store.base_url, f"unexpected {type(exc).__name__}: {exc}"[:300])
                board.failed(store.id, str(exc))
                if not follow:
                    errors.append(str(exc))
                    log.error("%s", exc)
                    return
                failures = board.stores[store.id].consecutive_failures
                pause = backoff.delay(failures, refused=isinstance(exc, StoreError) and exc.refused)
                log.error("%s (failure %d in a row; next attempt in %.0fs)", exc, failures, pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    tasks = [asyncio.create_task(run_store(store)) for store in stores]
    stopper: asyncio.Task[object] = asyncio.create_task(stop.wait())
    beating = asyncio.create_task(heartbeat.beat_forever())
    everything: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*tasks))
    try:
        await asyncio.wait([everything, stopper], return_when=asyncio.FIRST_COMPLETED)
        if everything.done():
            everything.result()  # a fault of this process (not a store's): raise it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        beating.cancel()
        await asyncio.to_thread(publisher.close)
    return ConnectResult(
        sum(c.published_orders for c in connectors),
        sum(c.published_customers for c in connectors),
        sum(c.dead_letters for c in connectors),
        errors,
    )

"""The connector loop for one store: backfill the full history once (resumable), then follow changes
by polling. Raw events go to ``raw.orders`` / ``raw.customers``; cursors to ``connector-state``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ordersync.producers.cursors import Cursor, CursorStore
from ordersync.producers.documents import Rejected, raw_bytes
from ordersync.producers.http_client import StoreHttp
from ordersync.producers.prestashop import PrestaShopSource
from ordersync.producers.publisher import Deliveries, Publisher
from ordersync.producers.recent import RecentlyPublished
from ordersync.producers.source import (
    BAD_DOCUMENT_ERRORS,
    Document,
    Page,
    StoreSource,
    fallback_id,
    raw_customer_event,
    raw_order_event,
)
from ordersync.producers.woocommerce import WooCommerceSource
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas import encode
from ordersync.schemas.batches import batch_of, by_partition
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.records import OrderContext
from ordersync.schemas.topics import TopicNames

log = logging.getLogger(__name__)
POLL_OVERLAP = dt.timedelta(seconds=5)  # re-read a little: same-second changes and clock skew
CHECKPOINT_EVERY = 2000  # orders between cursor saves during a backfill


@dataclass
class Progress:
    """Orders/s and ETA on a terminal; a log line every few seconds otherwise."""

    store_id: str
    total: int | None = None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last_print: float = 0.0
    tty: bool = field(default_factory=lambda: sys.stderr.isatty())

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last_print < (0.2 if self.tty else 5.0):
            return
        self.last_print = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            share = min(1.0, self.done / self.total)
            eta = (self.total - self.done) / rate if rate else 0
            bar = "#" * int(share * 30)
            text = f"{self.store_id}: [{bar:<30}] {self.done}/{self.total} orders {rate:,.0f}/s ETA {eta:,.0f}s"
        else:
            text = f"{self.store_id}: {self.done} orders {rate:,.0f}/s"
        if self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        else:
            log.info(text)

    def finish(self) -> None:
        if self.tty and self.last_print:
            print(file=sys.stderr)


def make_source(store: StoreConfig) -> tuple[StoreSource, StoreHttp]:
    if store.platform == "woocommerce":
        http = WooCommerceSource.http_for(store)
        return WooCommerceSource(store, http), http
    http = PrestaShopSource.http_for(store)
    return PrestaShopSource(store, http), http


class Connector:
    """One store's connector. Its events are tracked in its own ``Deliveries``: a cursor moves only past
    events Kafka acknowledged (published or dead-lettered), whatever the other stores do."""

    def __init__(
        self, store: StoreConfig, source: StoreSource, publisher: Publisher, cursors: CursorStore, topics: TopicNames
    ) -> None:
        self.store = store
        self.source = source
        self.publisher = publisher
        self.cursors = cursors
        self.topics = topics
        self.deliveries = Deliveries()
        self.published_orders = 0
        self.published_customers = 0
        self.dead_letters = 0
        self._recent = RecentlyPublished()  # documents the overlapping polls need not send again

    def _dead_letter(self, kind: str, text: str, raw: bytes | None, reason: str) -> None:
        """Publish an unusable store document unchanged, with the reason; logged without its content."""
        self.dead_letters += 1
        log.warning("%s: %s document dead-lettered: %s", self.store.id, kind, reason)
        headers = dead_letter_headers(
            reason, "connector", store=self.store.id, platform=self.source.platform, document=kind
        )
        key = f"{self.store.id}:{fallback_id(text)}"
        self.publisher.publish(self.deliveries, self.topics.dlq, key, raw or raw_bytes(text), list(headers))

    def _readable(self, kind: str, documents: list[Document]) -> list[Document]:
        """The documents that parsed; the others are dead-lettered as the bytes received."""
        out = []
        for text, doc in documents:
            if isinstance(doc, Rejected):
                self._dead_letter(kind, text, doc.raw, doc.reason)
            else:
                out.append((text, doc))
        return out

    async def _contexts(self, documents: list[Document]) -> list[OrderContext | Exception]:
        """Each document's context; if the page's cannot be built, each document's alone, so that only
        the document that breaks it fails."""
        try:
            return list(await self.source.contexts(documents))
        except BAD_DOCUMENT_ERRORS:
            out: list[OrderContext | Exception] = []
            for document in documents:
                try:
                    out.append((await self.source.contexts([document]))[0])
                except BAD_DOCUMENT_ERRORS as exc:
                    out.append(exc)
            return out

    def _keyed_event(self, kind: str, text: str, build: Callable[[], tuple[str, bytes]]) -> tuple[str, bytes] | None:
        """``build()``'s (id, encoded event), or None once a document it cannot read is dead-lettered."""
        try:
            return build()
        except BAD_DOCUMENT_ERRORS as exc:
            self._dead_letter(kind, text, None, f"unreadable {kind}: {type(exc).__name__}: {exc}")
            return None

    async def publish_orders(self, page: Page, obtained_by: str) -> int:
        """Publish a page's orders: the events that share a partition go as one raw_order_batch message
        (docs/contract.md "Batches"), in the order the store listed them."""
        documents = self._readable("order", page.documents)
        contexts = await self._contexts(documents)
        keyed: list[tuple[str, bytes]] = []
        for (text, doc), context in zip(documents, contexts, strict=True):

            def build(text: str = text, doc: Any = doc, context: Any = context) -> tuple[str, bytes]:
                if isinstance(context, Exception):
                    raise context
                # A document without a readable id is still published: the processor dead-letters it.
                order_id = self.source.order_id(doc) or fallback_id(text)
                event = raw_order_event(
                    self.store, self.source.platform, text, order_id, obtained_by, self.source.order_modified_at(doc),
                    context, self.source.operation(doc),
                )  # fmt: skip
                return order_id, encode("raw_order_event", event)

            if (event := self._keyed_event("order", text, build)) is not None:
                keyed.append((f"{self.store.id}:{event[0]}", event[1]))
        topic = self.topics.raw_orders
        for partition, group in by_partition(keyed, self.publisher.partitions(topic)):
            if len(group) == 1:
                self.publisher.publish(self.deliveries, topic, group[0][0], group[0][1])
            else:  # keyed by its first event; placed explicitly where every one of its keys belongs
                value = batch_of(str(uuid.uuid4()), [value for _, value in group])
                self.publisher.publish(self.deliveries, topic, group[0][0], value, partition=partition)
        self.publisher.poll()
        self.published_orders += len(keyed)
        return len(page.documents)

    async def publish_customers(self, page: Page, obtained_by: str) -> int:
        published = 0
        for text, doc in self._readable("customer", page.documents):

            def build(text: str = text, doc: Any = doc) -> tuple[str, bytes]:
                cid = self.source.customer_id(doc) or fallback_id(text)
                event = raw_customer_event(
                    self.store, self.source.platform, text, cid, obtained_by, self.source.customer_modified_at(doc)
                )
                return cid, encode("raw_customer_event", event)

            if (keyed := self._keyed_event("customer", text, build)) is not None:
                cid, value = keyed
                self.publisher.publish(self.deliveries, self.topics.raw_customers, f"{self.store.id}:{cid}", value)
                published += 1
        self.published_customers += published
        return len(page.documents)

    async def save(self, cursor: Cursor) -> None:
        await self.cursors.save(cursor, self.deliveries)

    async def backfill(self, progress: Progress | None = None, on_progress: Callable[[], None] | None = None) -> None:
        await self._backfill_stream("CUSTOMERS", self.source.customer_pages, self.publish_customers, None, on_progress)
        await self._backfill_stream(
            "ORDERS",
            lambda pos: self.source.order_pages(pos, dt.datetime.now(dt.UTC)),
            self.publish_orders,
            progress,
            on_progress,
        )

    async def _backfill_stream(
        self,
        stream: str,
        pages: Callable[[str | None], AsyncIterator[Page]],
        publish: Callable[[Page, str], Any],
        progress: Progress | None,
        on_progress: Callable[[], None] | None,
    ) -> None:
        cursor = self.cursors.get(self.store.id, stream)
        if cursor.backfill_complete:
            return
        if cursor.high_water_mark is None:
            # Polling later picks up everything changed since the backfill began.
            cursor = cursor.advanced(high_water_mark=dt.datetime.now(dt.UTC) - POLL_OVERLAP)
        since_save = 0
        async for page in pages(cursor.backfill_position):
            n = await publish(page, "BACKFILL")
            since_save += n
            cursor = cursor.advanced(
                backfill_position=page.position or cursor.backfill_position, published=cursor.published + n
            )
            if progress is not None:
                progress.add(n)
            if since_save >= CHECKPOINT_EVERY:
                await self.save(cursor)
                since_save = 0
                if on_progress is not None:
                    on_progress()
        await self.save(cursor.advanced(backfill_complete=True))

    async def poll_once(self) -> int:
        """Publish every order changed since the high-water mark; then move the mark."""
        cursor = self.cursors.get(self.store.id, "ORDERS")
        since = (cursor.high_water_mark or dt.datetime.now(dt.UTC)) - POLL_OVERLAP
        started = dt.datetime.now(dt.UTC)
        count = 0
        newest = cursor.high_water_mark
        try:
            async for page in self.source.changed_orders(since):
                fresh = []
                for text, doc in page.documents:
                    modified = self.source.order_modified_at(doc)
                    if modified is not None and (newest is None or modified > newest):
                        newest = modified
                    if self._recent.is_new(self.source.order_id(doc) or fallback_id(text), text, modified):
                        fresh.append((text, doc))
                if fresh:
                    count += await self.publish_orders(Page(fresh, page.position), "POLL")
            if isinstance(self.source, PrestaShopSource):
                async for page in self.source.changed_customers(since):
                    await self.publish_customers(page, "POLL")
            # Never beyond when this scan began: an order changed during the scan, on a page already
            # passed, must still be found by the next one.
            mark = min(newest, started) if newest is not None else cursor.high_water_mark
            await self.save(cursor.advanced(high_water_mark=mark, published=cursor.published + count))
        except BaseException:
            # What it remembers may not have reached Kafka: forget it all, the next poll re-sends.
            self._recent = RecentlyPublished()
            raise
        self._recent.forget_before(since)
        return count

    async def rescan_customers(self) -> int:
        """Read every customer again and publish those modified since the last rescan (or the backfill).

        WooCommerce's customers API cannot list changes since a time, so customer changes arrive by
        customer.* webhooks; one that is missed (receiver down, delivery disabled) would leave its
        contact stale for good without this."""
        cursor = self.cursors.get(self.store.id, "CUSTOMERS")
        since = cursor.high_water_mark - POLL_OVERLAP if cursor.high_water_mark is not None else None
        started = dt.datetime.now(dt.UTC)
        newest = cursor.high_water_mark
        count = 0
        async for page in self.source.customer_pages(None):
            fresh = []
            for text, doc in page.documents:
                modified = self.source.customer_modified_at(doc)
                if since is None or modified is None or modified > since:
                    fresh.append((text, doc))
                if modified is not None and (newest is None or modified > newest):
                    newest = modified
            if fresh:
                count += await self.publish_customers(Page(fresh, page.position), "POLL")
        # As for orders: never beyond when the scan began.
        mark = min(newest, started) if newest is not None else started
        await self.save(cursor.advanced(high_water_mark=mark))
        return count

    async def follow(self, stop: asyncio.Event, on_poll: Callable[[], None] | None = None) -> None:
        """Poll until ``stop``; ``on_poll`` after every poll that went through."""
        rescans = isinstance(self.source, WooCommerceSource) and self.store.customer_rescan_s > 0
        next_rescan = time.monotonic() + self.store.customer_rescan_s
        while not stop.is_set():
            started = time.monotonic()
            count = await self.poll_once()
            if count:
                log.info("%s: %d changed orders published", self.store.id, count)
            if rescans and started >= next_rescan:
                changed = await self.rescan_customers()
                log.info("%s: customer rescan published %d changed customers", self.store.id, changed)
                next_rescan = time.monotonic() + self.store.customer_rescan_s
            if on_poll is not None:
                on_poll()
            remaining = self.store.poll_interval_s - (time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.05, remaining))

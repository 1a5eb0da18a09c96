"""WooCommerce REST v3 connector (docs/store-apis.md §1).

- Backfill: ``/orders?status=any`` (and ``status=trash``) ordered by creation date ascending, bounded
  by ``before`` = the time the backfill began, GMT dates, paged by creation time (see
  ``_by_creation``: offsets shift when an order is trashed during the scan). The position is the last
  published order's ``date_created_gmt``; a resumed backfill asks for ``after`` = position - 1 s (the
  overlap re-sends a few orders: harmless).
- Incremental: ``modified_after`` (GMT), paged the same way, every poll interval.
- Customers: by id, through offsets that overlap the previous page (see ``customer_pages``): a
  customer deleted during the scan must not hide the next one. One page at a time.
- Categories are not on line items: products are fetched with ``/products?include=…`` and cached.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ordersync.producers.documents import PageError, split_array
from ordersync.producers.http_client import StoreError, StoreHttp, header_int
from ordersync.producers.source import Document, Page, base_context, document_id, fallback_id, parse_time
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas.records import Category, OrderContext

API = "/wp-json/wc/v3"
PER_PAGE = 100
CUSTOMER_OVERLAP = 10  # customers deleted between two pages that a customer scan absorbs without stepping back


def _gmt(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _before_second(created_gmt: str) -> str:
    """One second before a ``date_created_gmt`` (one ``_created`` accepted), as an ``after`` bound that
    still includes it."""
    return _gmt(dt.datetime.fromisoformat(created_gmt).replace(tzinfo=dt.UTC) - dt.timedelta(seconds=1))


def _int_id(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def _order_id(text: str, doc: Any) -> str:
    return document_id(doc) or fallback_id(text)


def _customer_id(doc: Any) -> int | None:
    value = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(value, str):
        return _int_id(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _created(doc: Any) -> str | None:
    """A ``date_created_gmt`` that can anchor the next page; None for a missing or unreadable one."""
    value = doc.get("date_created_gmt") if isinstance(doc, dict) else None
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return value if moment.tzinfo is None and moment.year > 1 else None


class WooCommerceSource:
    platform = "WOOCOMMERCE"

    def __init__(self, store: StoreConfig, http: StoreHttp) -> None:
        self.store = store
        self.http = http
        self._categories: dict[str, list[Category]] = {}

    @classmethod
    def http_for(cls, store: StoreConfig, *, query_auth: bool = False) -> StoreHttp:
        key, secret = store.secret("consumer_key_env"), store.secret("consumer_secret_env")
        if query_auth:  # for servers that drop the Authorization header ("Consumer key is missing")
            return StoreHttp(store.id, store.base_url, query_auth={"consumer_key": key, "consumer_secret": secret})
        return StoreHttp(store.id, store.base_url, auth=aiohttp.BasicAuth(key, secret))

    async def _page(self, path: str, params: dict[str, Any]) -> tuple[list[Document], dict[str, str]]:
        response = await self.http.get(API + path, params)
        try:
            return split_array(response.text), response.headers
        except PageError as exc:
            raise StoreError(self.store.id, self.store.base_url + API + path, f"unreadable page: {exc}") from exc

    async def count_orders(self) -> int | None:
        _, headers = await self._page("/orders", {"per_page": 1, "status": "any"})
        return header_int(headers, "X-WP-Total", self.store.id, self.store.base_url + API + "/orders")

    def _last_created(self, docs: list[Document]) -> str | None:
        return next((created for _, doc in reversed(docs) if (created := _created(doc))), None)

    async def order_pages(self, position: str | None, until: dt.datetime) -> AsyncIterator[Page]:
        params: dict[str, Any] = {"dates_are_gmt": "true", "before": _gmt(until)}
        after = _before_second(position) if position else None
        last = position
        for status in ("any", "trash"):
            async for docs in self._by_creation({**params, "status": status}, after):
                if status == "any":
                    last = self._last_created(docs) or last
                yield Page(docs, last)

    async def changed_orders(self, since: dt.datetime) -> AsyncIterator[Page]:
        params = {"dates_are_gmt": "true", "modified_after": _gmt(since)}
        for status in ("any", "trash"):
            async for docs in self._by_creation({**params, "status": status}, None):
                yield Page(docs, None)

    async def deleted_at(self, order_id: int) -> dt.datetime | None:
        """When the store says order ``order_id`` was deleted: its modification time when it is in the
        trash, the store's own clock (the Date header) when it is gone for good; None while it is live.
        A webhook's ``order.deleted`` is confirmed here before anything is deleted (docs/store-apis.md §1)."""
        url = f"{API}/orders/{order_id}"
        response = await self.http.get(url, {"context": "view"}, accept=(404, 410))
        if response.status != 200:
            stamp = response.headers.get("Date")
            try:
                return email.utils.parsedate_to_datetime(stamp or "").astimezone(dt.UTC)
            except (ValueError, TypeError):
                raise StoreError(self.store.id, self.store.base_url + url, "a 404 without a Date header") from None
        try:
            doc = json.loads(response.text)
        except ValueError:
            raise StoreError(self.store.id, self.store.base_url + url, "the order is not JSON") from None
        if not isinstance(doc, dict) or doc.get("status") != "trash":
            return None
        modified = parse_time(doc.get("date_modified_gmt"), "UTC")
        if modified is None:
            raise StoreError(self.store.id, self.store.base_url + url, "a trashed order without date_modified_gmt")
        return modified

    async def _by_creation(self, params: dict[str, Any], after: str | None) -> AsyncIterator[list[Document]]:
        """Every order of a query, oldest first, each request anchored on the creation time of the last
        order seen (``after``) rather than on an offset. Offsets are not stable: an order trashed during
        the scan leaves ``status=any`` and every later order moves one place up, so an offset-paged scan
        skips one (we lost orders that way). The anchor is one second before the last creation time,
        because ``after`` is exclusive and dates have whole seconds; orders already yielded are dropped.
        Only when a whole page shares one second does it page by offset under the same anchor."""
        seen: dict[str, str] = {}  # id → creation time, for orders at or after the anchor
        page = 1
        while True:
            query = {**params, "orderby": "date", "order": "asc", "per_page": PER_PAGE, "page": page}
            if after:
                query["after"] = after
            docs, _ = await self._page("/orders", query)
            fresh = [(text, doc) for text, doc in docs if _order_id(text, doc) not in seen]
            if fresh:
                yield fresh
            if len(docs) < PER_PAGE:
                return
            for text, doc in docs:
                seen[_order_id(text, doc)] = _created(doc) or ""
            last = self._last_created(docs)
            anchor = _before_second(last) if last else None
            if anchor is None or anchor == after:
                page += 1  # a full page within one second (or undated orders): step past it
                continue
            after, page = anchor, 1
            seen = {oid: created for oid, created in seen.items() if created > anchor}

    async def customer_pages(self, position: str | None) -> AsyncIterator[Page]:
        """Every customer, by id. The customers list has no "after this id" filter, only offsets, and a
        customer deleted during the scan moves every later one a place down, so a plain offset scan
        skips one per deletion. Each request therefore starts ``CUSTOMER_OVERLAP`` places early and
        keeps only ids above the last one seen; if even the first id returned is above it, more
        customers were deleted than the overlap absorbs, and the request is repeated further back."""
        last_id, offset = 0, 0  # customers up to last_id are published; offset: where the next one was
        while True:
            start = max(0, offset - CUSTOMER_OVERLAP)
            params = {"orderby": "id", "order": "asc", "role": "all", "per_page": PER_PAGE, "offset": start}
            docs, _ = await self._page("/customers", params)
            ids = [_customer_id(doc) for _, doc in docs]
            known = [cid for cid in ids if cid is not None]
            if start > 0 and known and known[0] > last_id:
                offset = start - PER_PAGE + CUSTOMER_OVERLAP  # went past unseen customers: step back
                continue
            # A document without a readable id is always kept: the processor dead-letters it.
            fresh = [d for d, cid in zip(docs, ids, strict=True) if cid is None or cid > last_id]
            if fresh:
                yield Page(fresh, None)
                last_id = max([last_id, *known])
            if len(docs) < PER_PAGE:
                return
            offset = start + len(docs)

    async def contexts(self, documents: list[Document]) -> list[OrderContext]:
        wanted: set[str] = set()
        for _, doc in documents:
            for line in (doc.get("line_items") or []) if isinstance(doc, dict) else []:
                if isinstance(line, dict) and line.get("product_id"):
                    wanted.add(str(line["product_id"]))
        # Product ids are integers; any other id cannot be asked for (the store answers 400) and has no categories.
        missing = sorted((p for p in wanted - set(self._categories) if _int_id(p) is not None), key=int)
        for start in range(0, len(missing), PER_PAGE):
            chunk = missing[start : start + PER_PAGE]
            docs, _ = await self._page("/products", {"include": ",".join(chunk), "per_page": PER_PAGE})
            for _, product in docs:
                if not isinstance(product, dict):
                    continue  # an unreadable product: its orders go without categories
                self._categories[str(product.get("id"))] = [
                    {"id": str(c.get("id")), "name": str(c.get("name")), "slug": c.get("slug")}
                    for c in product.get("categories") or []
                ]
            for pid in chunk:
                self._categories.setdefault(pid, [])  # deleted products: no categories, asked only once
        out = []
        for _, doc in documents:
            context = base_context(self.store)
            lines = (doc.get("line_items") or []) if isinstance(doc, dict) else []
            pids = sorted(
                {str(line.get("product_id")) for line in lines if isinstance(line, dict) and line.get("product_id")}
            )
            context["product_categories"] = [
                {"product_id": pid, "categories": self._categories.get(pid, [])} for pid in pids
            ]
            out.append(context)
        return out

    def order_id(self, doc: Any) -> str | None:
        return document_id(doc)

    def order_modified_at(self, doc: Any) -> dt.datetime | None:
        if not isinstance(doc, dict):
            return None
        return parse_time(doc.get("date_modified_gmt"), "UTC") or parse_time(
            doc.get("date_modified"), self.store.timezone
        )

    customer_id = order_id

    def operation(self, doc: Any) -> str:
        """A trashed order (status "trash") is a delete for everyone downstream."""
        return "DELETE" if isinstance(doc, dict) and doc.get("status") == "trash" else "UPSERT"

    def customer_modified_at(self, doc: Any) -> dt.datetime | None:
        return self.order_modified_at(doc)

"""PrestaShop 8 Webservice connector (docs/store-apis.md §2).

- Auth: the key as the Basic-auth user, no password. Output ``output_format=JSON&display=full``.
- Backfill: ``sort=[id_ASC]`` with ``filter[id]=>[position]`` and ``limit=offset,count`` pages fetched
  ``page_concurrency`` at a time until an empty page (there is no total-count header). The position is
  the last published id, so a resumed backfill is exact.
- Incremental: ``date=1&filter[date_upd]=[from,to]`` in the shop's local time.
- Context carried in each event, because orders hold only ids: the order state's name and flags
  (state ids differ between installs), the currency ISO code, the customer's e-mail and names, and
  product categories.
- Both typings are accepted (1.7-era strings, newer ints); multilingual names as arrays or strings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ordersync.producers.documents import PageError, readable, split_resource_list
from ordersync.producers.http_client import StoreError, StoreHttp
from ordersync.producers.source import Document, Page, base_context, document_id, parse_time
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas.records import CustomerRef, OrderContext, OrderState

PER_PAGE = 100
BATCH_IDS = 50


def _text(value: Any) -> str:
    """A multilingual field ([{"id": "1", "value": "…"}]) or a plain value: the first language's text."""
    if isinstance(value, list):
        return str(value[0].get("value", "")) if value and isinstance(value[0], dict) else ""
    return "" if value is None else str(value)


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


class PrestaShopSource:
    platform = "PRESTASHOP"

    def __init__(self, store: StoreConfig, http: StoreHttp) -> None:
        self.store = store
        self.http = http
        self.tz = zoneinfo.ZoneInfo(store.timezone)
        self._states: dict[str, OrderState] = {}
        self._currencies: dict[str, str] = {}
        self._customers: dict[str, CustomerRef] = {}
        self._product_categories: dict[str, list[str]] = {}
        self._category_names: dict[str, str] = {}

    @classmethod
    def http_for(cls, store: StoreConfig) -> StoreHttp:
        return StoreHttp(store.id, store.base_url, auth=aiohttp.BasicAuth(store.secret("api_key_env"), ""))

    async def _list(self, resource: str, params: dict[str, Any]) -> list[Document]:
        response = await self.http.get(f"/api/{resource}", {"output_format": "JSON", "display": "full", **params})
        try:
            return split_resource_list(response.text, resource)
        except PageError as exc:
            raise StoreError(self.store.id, f"{self.store.base_url}/api/{resource}", f"unreadable page: {exc}") from exc

    async def count_orders(self) -> int | None:
        return None  # the Webservice documents no total-count header

    async def _offset_pages(self, resource: str, params: dict[str, Any]) -> AsyncIterator[list[Document]]:
        window = max(1, self.store.page_concurrency)
        offset = 0
        while True:
            offsets = [offset + i * PER_PAGE for i in range(window)]
            results = await asyncio.gather(
                *(self._list(resource, {**params, "limit": f"{o},{PER_PAGE}"}) for o in offsets)
            )
            for docs in results:
                if not docs:
                    return
                yield docs
                if len(docs) < PER_PAGE:
                    return
            offset += window * PER_PAGE

    async def order_pages(self, position: str | None, until: dt.datetime) -> AsyncIterator[Page]:
        params: dict[str, Any] = {"sort": "[id_ASC]"}
        if position:
            params["filter[id]"] = f">[{position}]"
        last = position
        async for docs in self._offset_pages("orders", params):
            ids = [i for i in (self.order_id(d) for _, d in docs) if i is not None and i.isascii() and i.isdigit()]
            last = ids[-1] if ids else last
            yield Page(docs, last)

    def _local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    async def changed_orders(self, since: dt.datetime) -> AsyncIterator[Page]:
        upper = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        params = {"sort": "[id_ASC]", "date": "1", "filter[date_upd]": f"[{self._local(since)},{self._local(upper)}]"}
        async for docs in self._offset_pages("orders", params):
            yield Page(docs, None)

    async def customer_pages(self, position: str | None) -> AsyncIterator[Page]:
        params: dict[str, Any] = {"sort": "[id_ASC]"}
        if position:
            params["filter[id]"] = f">[{position}]"
        async for docs in self._offset_pages("customers", params):
            ids = [i for i in (self.customer_id(d) for _, d in docs) if i]
            yield Page(docs, ids[-1] if ids else position)

    async def changed_customers(self, since: dt.datetime) -> AsyncIterator[Page]:
        upper = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        params = {"sort": "[id_ASC]", "date": "1", "filter[date_upd]": f"[{self._local(since)},{self._local(upper)}]"}
        async for docs in self._offset_pages("customers", params):
            yield Page(docs, None)

    # -- context ------------------------------------------------------------------------------------
    async def _load_states(self) -> None:
        for _, s in readable(await self._list("order_states", {})):
            self._states[str(s.get("id"))] = {
                "id": str(s.get("id")),
                "name": _text(s.get("name")),
                "paid": _flag(s.get("paid")),
                "shipped": _flag(s.get("shipped")),
                "delivery": _flag(s.get("delivery")),
                "logable": _flag(s.get("logable")),
                "invoice": _flag(s.get("invoice")),
                "module_name": s.get("module_name") or None,
            }

    async def _by_ids(self, resource: str, ids: list[str]) -> list[Document]:
        out: list[Document] = []
        for start in range(0, len(ids), BATCH_IDS):
            chunk = ids[start : start + BATCH_IDS]
            out += await self._list(resource, {"filter[id]": "[" + "|".join(chunk) + "]"})
        return out

    async def contexts(self, documents: list[Document]) -> list[OrderContext]:
        orders = [d for _, d in documents if isinstance(d, dict)]
        if not self._currencies:
            self._currencies = {
                str(c.get("id")): str(c.get("iso_code")) for _, c in readable(await self._list("currencies", {}))
            }
        state_ids = {str(o.get("current_state")) for o in orders}
        if not self._states or state_ids - set(self._states):
            await self._load_states()  # a state created since we last looked
        customer_ids = sorted({str(o.get("id_customer")) for o in orders if str(o.get("id_customer") or "0") != "0"})
        for _, c in readable(await self._by_ids("customers", [c for c in customer_ids if c not in self._customers])):
            self._customers[str(c.get("id"))] = {
                "id": str(c.get("id")),
                "email": c.get("email") or None,
                "first_name": c.get("firstname") or None,
                "last_name": c.get("lastname") or None,
            }
        product_ids = sorted(
            {
                str(r.get("product_id"))
                for o in orders
                for r in ((o.get("associations") or {}).get("order_rows") or [])
                if isinstance(r, dict)
            }
        )
        missing = [p for p in product_ids if p not in self._product_categories]
        if missing:
            for _, p in readable(await self._by_ids("products", missing)):
                cats = [str(c.get("id")) for c in ((p.get("associations") or {}).get("categories") or [])]
                self._product_categories[str(p.get("id"))] = cats or [str(p.get("id_category_default"))]
            for pid in missing:
                self._product_categories.setdefault(pid, [])
            wanted = {c for p in missing for c in self._product_categories[p]} - set(self._category_names)
            if wanted:
                for _, c in readable(await self._list("categories", {})):
                    self._category_names[str(c.get("id"))] = _text(c.get("name"))
        out = []
        for _, doc in documents:
            context = base_context(self.store)
            if isinstance(doc, dict):
                context["currency_iso"] = self._currencies.get(str(doc.get("id_currency")))
                context["order_state"] = self._states.get(str(doc.get("current_state")))
                context["customer"] = self._customers.get(str(doc.get("id_customer")))
                rows = (doc.get("associations") or {}).get("order_rows") or []
                pids = sorted({str(r.get("product_id")) for r in rows if isinstance(r, dict)})
                context["product_categories"] = [
                    {
                        "product_id": pid,
                        "categories": [
                            {"id": cid, "name": self._category_names.get(cid, cid), "slug": None}
                            for cid in self._product_categories.get(pid, [])
                        ],
                    }
                    for pid in pids
                ]
            out.append(context)
        return out

    def order_id(self, doc: Any) -> str | None:
        return document_id(doc)

    def order_modified_at(self, doc: Any) -> dt.datetime | None:
        return parse_time(doc.get("date_upd"), self.store.timezone) if isinstance(doc, dict) else None

    customer_id = order_id
    customer_modified_at = order_modified_at

    def operation(self, doc: Any) -> str:
        return "UPSERT"

"""A WooCommerce REST v3 simulator (docs/store-apis.md §1): the documented endpoints, paging headers,
filters, auth, quirks (number ≠ id, guests with customer_id 0 and empty e-mails, null SKUs, a float
``price``, string image ids, PHP ``\\/`` escaping, custom statuses) and signed webhooks."""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import zoneinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ordersync.producers.documents import raw_bytes
from ordersync.producers.simulators.faults import (
    Faults,
    add_control_routes,
    basic_credentials,
    fault_middleware,
    php_json,
    serve_forever,
)
from ordersync.producers.simulators.shop import Order, Shop, StatusModel

API = "/wp-json/wc/v3"
STATUSES = StatusModel(
    initial=[
        ("completed", 55), ("processing", 12), ("on-hold", 4), ("pending", 8), ("cancelled", 6),
        ("refunded", 4), ("failed", 4), ("checkout-draft", 2), ("awaiting-shipment", 3),
    ],
    transitions={
        "checkout-draft": ["pending"], "pending": ["processing", "cancelled", "failed"], "failed": ["pending"],
        "on-hold": ["processing", "cancelled"], "processing": ["completed", "refunded", "awaiting-shipment"],
        "awaiting-shipment": ["completed"], "completed": ["refunded"],
    },
    refunded="refunded",
    canceled="cancelled",
)  # fmt: skip


def _fmt(moment: dt.datetime | None, tz: zoneinfo.ZoneInfo | None = None) -> str | None:
    if moment is None:
        return None
    local = moment.astimezone(tz) if tz else moment.astimezone(dt.UTC)
    return local.strftime("%Y-%m-%dT%H:%M:%S")


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _with_nul(text: str) -> str:
    nul = "\\u0000"  # the JSON escape of U+0000, as json_encode writes it
    text = text.replace('"billing":{"first_name":"', '"billing":{"first_name":"A' + nul, 1)
    return re.sub(r'("line_items":\[\{"id":\d+,"name":")', lambda m: m.group(1) + "x" + nul, text, count=1)


POISONS = {
    # a byte that is not UTF-8 in the billing name
    "not_utf8": lambda t: t.replace('"billing":{"first_name":"', '"billing":{"first_name":"\udcff', 1),
    # dates that do not exist, or exist only west of UTC
    "bad_date": lambda t: re.sub(r'"date_created_gmt":"[^"]*"', '"date_created_gmt":"2024-13-45T99:00:00"', t, count=1),
    "year_one": lambda t: re.sub(r'"date_created(_gmt)?":"[^"]*"', r'"date_created\1":"0001-01-01T00:00:00"', t),
    # nesting deeper than any JSON parser's recursion allows
    "deep": lambda t: t.replace('"meta_data":[]', '"meta_data":' + "[" * 100_000 + "]" * 100_000, 1),
    # a product id that str.isdigit() accepts and int() refuses
    "superscript_id": lambda t: re.sub(r'"product_id":\d+', '"product_id":"\u00b2"', t, count=1),
    # U+0000 in an item name and in the customer's name (PostgreSQL stores no NUL)
    "nul": _with_nul,
}


def poison(kind: str, text: str) -> str:
    poisoned: str = POISONS[kind](text)
    assert poisoned != text, f"poison {kind!r} found nothing to break"
    return poisoned


class WooCommerceSimulator:
    def __init__(
        self,
        *,
        seed: int,
        orders: int,
        consumer_key: str,
        consumer_secret: str,
        timezone: str = "Europe/Zurich",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.shop = Shop(seed, orders, STATUSES)
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.key, self.secret = consumer_key, consumer_secret
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.faults = faults or Faults()
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self._session: aiohttp.ClientSession | None = None
        # Rendering 100 orders per page in Python is slow; a shop serving a big backfill should not
        # be the bottleneck of the connector's benchmark, so texts and query results are cached.
        self._texts: dict[int, tuple[dt.datetime, bool, str, str]] = {}
        self._queries: dict[tuple[Any, ...], tuple[int, list[Order]]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self.poisoned: dict[int, str] = {}  # order id → how its text is broken (see POISONS)

    # -- rendering ----------------------------------------------------------------------------------
    def render_order(self, order: Order) -> dict[str, Any]:
        shop, tz = self.shop, self.tz
        paid = order.status in ("processing", "completed", "refunded", "awaiting-shipment")
        line_items = []
        for line in order.lines:
            product = shop.products[line.product_id - 1]
            line_items.append(
                {
                    "id": line.id,
                    "name": line.name + (f" - Size {line.variation_id % 100}" if line.variation_id else ""),
                    "product_id": line.product_id,
                    "variation_id": line.variation_id,
                    "quantity": line.quantity,
                    "tax_class": "",
                    "subtotal": _money(line.total),
                    "subtotal_tax": _money((line.total * Decimal("0.23")).quantize(Decimal("0.01"))),
                    "total": _money(line.total),
                    "total_tax": _money((line.total * Decimal("0.23")).quantize(Decimal("0.01"))),
                    "taxes": [],
                    "meta_data": [{"id": line.id * 10, "key": "pa_size", "value": str(line.variation_id % 100)}]
                    if line.variation_id
                    else [],
                    "sku": line.sku,
                    # A JSON number computed as total / quantity, as WooCommerce does (often not exact).
                    "price": float(line.total) / line.quantity,
                    "image": {
                        "id": str(line.product_id + 1100),
                        "src": f"https://shop.example.ch/img/{product.id}.jpg",
                    },
                    "parent_name": line.name if line.variation_id else None,
                }
            )
        return {
            "id": order.id,
            "parent_id": 0,
            "status": "trash" if order.trashed else order.status,
            "number": order.number,
            "order_key": f"wc_order_{order.id:08x}",
            "created_via": "checkout",
            "version": "8.6.1",
            "currency": order.currency,
            "date_created": _fmt(order.created, tz),
            "date_created_gmt": _fmt(order.created),
            "date_modified": _fmt(order.modified, tz),
            "date_modified_gmt": _fmt(order.modified),
            "discount_total": _money(order.discount),
            "discount_tax": "0.00",
            "shipping_total": _money(order.shipping),
            "shipping_tax": "0.00",
            "cart_tax": _money(order.tax),
            "total": _money(order.total),
            "total_tax": _money(order.tax),
            "prices_include_tax": False,
            "customer_id": order.customer_id,
            "customer_ip_address": "203.0.113.7",
            "customer_user_agent": "Mozilla/5.0",
            "customer_note": "",
            "billing": {
                "first_name": order.first_name, "last_name": order.last_name, "company": "", "address_1": "Rua 1",
                "address_2": "", "city": "Lisboa", "state": "", "postcode": "1000-001", "country": "PT",
                "email": order.email, "phone": "",
            },
            "shipping": {
                "first_name": order.first_name, "last_name": order.last_name, "company": "", "address_1": "Rua 1",
                "address_2": "", "city": "Lisboa", "state": "", "postcode": "1000-001", "country": "PT", "phone": "",
            },
            "payment_method": "bacs",
            "payment_method_title": "Direct bank transfer",
            "transaction_id": "",
            "date_paid": _fmt(order.created, tz) if paid else None,
            "date_paid_gmt": _fmt(order.created) if paid else None,
            "date_completed": _fmt(order.modified, tz) if order.status == "completed" else None,
            "date_completed_gmt": _fmt(order.modified) if order.status == "completed" else None,
            "cart_hash": "",
            "meta_data": [],
            "line_items": line_items,
            "tax_lines": [],
            "shipping_lines": [{"id": order.id * 7, "method_title": "Flat rate", "method_id": "flat_rate", "total": _money(order.shipping), "total_tax": "0.00", "taxes": [], "meta_data": []}],
            "fee_lines": [],
            "coupon_lines": [{"id": order.id * 3, "code": order.coupon, "discount": _money(order.discount), "discount_tax": "0.00", "meta_data": []}] if order.coupon else [],
            "refunds": [{"id": r.id, "reason": r.reason, "total": "-" + _money(r.amount)} for r in order.refunds],
            "payment_url": f"https://shop.example.ch/checkout/order-pay/{order.id}/",
            "currency_symbol": "€",
            "_links": {
                "self": [{"href": f"https://shop.example.ch/wp-json/wc/v3/orders/{order.id}"}],
                "collection": [{"href": "https://shop.example.ch/wp-json/wc/v3/orders"}],
                **({"customer": [{"href": f"https://shop.example.ch/wp-json/wc/v3/customers/{order.customer_id}"}]} if order.customer_id else {}),
            },
        }  # fmt: skip

    def render_customer(self, cid: int) -> dict[str, Any]:
        c = self.shop.customers[cid]
        return {
            "id": c.id,
            "date_created": _fmt(c.created, self.tz),
            "date_created_gmt": _fmt(c.created),
            "date_modified": _fmt(c.modified, self.tz),
            "date_modified_gmt": _fmt(c.modified),
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "role": "customer",
            "username": c.email.strip().split("@")[0],
            "billing": {"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "phone": c.phone},
            "shipping": {"first_name": c.first_name, "last_name": c.last_name},
            "is_paying_customer": True,
            "avatar_url": "https://secure.gravatar.com/avatar/0",
            "meta_data": [],
        }

    # -- HTTP ---------------------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        creds = basic_credentials(request)
        if creds is None:
            creds = (request.query.get("consumer_key", ""), request.query.get("consumer_secret", ""))
        return hmac.compare_digest(creds[0], self.key) and hmac.compare_digest(creds[1], self.secret)

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message, "data": {"status": status}}, status=status)

    def order_text(self, order: Order) -> str:
        cached = self._texts.get(order.id)
        if cached is None or cached[0] != order.modified or cached[1] != order.trashed or cached[2] != order.status:
            text = php_json(self.render_order(order))
            if order.id in self.poisoned:
                text = poison(self.poisoned[order.id], text)
            cached = (order.modified, order.trashed, order.status, text)
            self._texts[order.id] = cached
        return cached[3]

    async def add_poison(self, request: web.Request) -> web.Response:
        """Create one new order per kind in POISONS, rendered broken in that way (and sent by no webhook:
        as if a plugin or an import wrote it); answers {kind: order id}."""
        kinds = (await request.json()).get("kinds", list(POISONS))
        made = {}
        for kind in kinds:
            if kind not in POISONS:
                return self._error(400, "sim_unknown_poison", f"unknown poison {kind!r}; known: {sorted(POISONS)}")
            order = self.shop.create_order()
            self.poisoned[order.id] = kind
            made[kind] = order.id
        return web.json_response(made)

    def _page(self, request: web.Request, items: list[Any], render: Any, text: Any = None) -> web.Response:
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "10"))
        except ValueError:
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): page, per_page")
        if page < 1 or not 1 <= per_page <= 100:
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): per_page (1-100), page (>= 1)")
        total = len(items)
        pages = math.ceil(total / per_page) if total else 0
        start = (page - 1) * per_page
        if request.query.get("offset", "").isdigit():  # WordPress: an offset overrides the page
            start = int(request.query["offset"])
        chunk = items[start : start + per_page]
        body = "[" + ",".join(text(x) for x in chunk) + "]" if text else php_json([render(x) for x in chunk])
        base = f"{request.scheme}://{request.host}{request.path}"
        params = {k: v for k, v in request.query.items() if k not in ("consumer_key", "consumer_secret")}
        links = []
        if page < pages:
            links.append(f'<{base}?{urlencode({**params, "page": page + 1})}>; rel="next"')
        if page > 1:
            links.append(f'<{base}?{urlencode({**params, "page": page - 1})}>; rel="prev"')
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        if links:
            headers["Link"] = ", ".join(links)
        # Poisoned texts may hold bytes that are not UTF-8, kept as lone surrogates until here.
        return web.Response(body=raw_bytes(body), content_type="application/json", headers=headers)

    def _filter_time(self, request: web.Request, name: str) -> dt.datetime | None:
        raw = request.query.get(name)
        if not raw:
            return None
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            gmt = request.query.get("dates_are_gmt", "false").lower() in ("1", "true")
            parsed = parsed.replace(tzinfo=dt.UTC if gmt else self.tz)
        return parsed

    async def list_orders(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        try:
            after, before = self._filter_time(request, "after"), self._filter_time(request, "before")
            mod_after, mod_before = (
                self._filter_time(request, "modified_after"),
                self._filter_time(request, "modified_before"),
            )
        except ValueError:
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): dates")
        statuses = set(request.query.getall("status[]", []) + request.query.get("status", "any").split(","))
        statuses.discard("")
        asked = [x.strip() for x in request.query.get("include", "").split(",") if x.strip()]
        if not all(x.isascii() and x.isdigit() for x in asked):  # WordPress validates include as integers
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): include")
        include = {int(x) for x in asked}
        orderby = request.query.get("orderby", "date")
        descending = request.query.get("order", "desc") == "desc"
        # Ordered by creation date, ``after`` cuts the cached list with a bisection: a client that
        # pages by creation date (a new ``after`` per request) does not cost a full scan each time.
        cut_after = after if orderby == "date" else None
        signature = (
            tuple(sorted(statuses)),
            tuple(sorted(include)),
            None if cut_after else after,
            before,
            mod_after,
            mod_before,
            orderby,
            request.query.get("order", "desc"),
        )
        cached = self._queries.get(signature)
        if cached is not None and cached[0] == self.shop.version:
            return self._page(
                request, self._created_after(cached[1], cut_after, descending), self.render_order, self.order_text
            )
        orders = []
        for order in self.shop.orders.values():
            if order.trashed and "trash" not in statuses:
                continue
            if not order.trashed and "any" not in statuses and order.status not in statuses:
                continue
            if include and order.id not in include:
                continue
            if (after and not cut_after and not order.created > after) or (before and not order.created < before):
                continue
            if (mod_after and not order.modified > mod_after) or (mod_before and not order.modified < mod_before):
                continue
            orders.append(order)
        key = {"id": lambda o: o.id, "modified": lambda o: (o.modified, o.id), "date": lambda o: (o.created, o.id)}.get(
            orderby
        )
        if key is None:
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): orderby")
        orders.sort(key=key, reverse=descending)
        if len(self._queries) > 64:
            self._queries.clear()
        self._queries[signature] = (self.shop.version, orders)
        return self._page(
            request, self._created_after(orders, cut_after, descending), self.render_order, self.order_text
        )

    @staticmethod
    def _created_after(orders: list[Order], after: dt.datetime | None, descending: bool) -> list[Order]:
        """The orders created strictly after ``after``, from a list ordered by creation date."""
        if after is None:
            return orders
        if descending:
            return orders[: bisect.bisect_left(orders, -after.timestamp(), key=lambda o: -o.created.timestamp())]
        return orders[bisect.bisect_right(orders, after, key=lambda o: o.created) :]

    async def get_order(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
        order = self.shop.orders.get(int(request.match_info["id"]))
        if order is None:
            return self._error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return web.Response(body=raw_bytes(self.order_text(order)), content_type="application/json")

    async def list_customers(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        ids = sorted(self.shop.customers, reverse=request.query.get("order", "asc") == "desc")
        return self._page(request, ids, self.render_customer)

    async def list_products(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        asked = [x.strip() for x in request.query.get("include", "").split(",") if x.strip()]
        if not all(x.isascii() and x.isdigit() for x in asked):  # WordPress validates include as integers
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): include")
        include = {int(x) for x in asked}
        products = [p for p in self.shop.products if not include or p.id in include]

        def render(p: Any) -> dict[str, Any]:
            return {"id": p.id, "name": p.name, "sku": p.sku or "", "price": f"{p.price:.2f}",
                    "categories": [{"id": cid, "name": name, "slug": name.lower().replace(" ", "-")} for cid, name in p.categories]}  # fmt: skip

        return self._page(request, products, render)

    # -- webhooks and live changes ------------------------------------------------------------------
    def signature(self, body: bytes) -> str:
        assert self.webhook_secret is not None
        return base64.b64encode(hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).digest()).decode()

    async def deliver(self, topic: str, payload: dict[str, Any]) -> None:
        if not self.webhook_url or not self.webhook_secret:
            return
        body = php_json(payload).encode()
        resource, event = topic.split(".")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/8.6.1 Hookshot (WordPress/6.4.3)",
            "X-WC-Webhook-Source": "https://shop.example.ch/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": self.signature(body),
            "X-WC-Webhook-ID": "12",
            "X-WC-Webhook-Delivery-ID": hashlib.md5(body, usedforsecurity=False).hexdigest(),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            async with self._session.post(self.webhook_url, data=body, headers=headers) as response:
                ok = 200 <= response.status < 303
        except aiohttp.ClientError:
            ok = False
        # Like WooCommerce: no retry. Polling is the safety net.
        if ok:
            self.webhooks_sent += 1
        else:
            self.webhooks_failed += 1

    def _schedule(self, topic: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.deliver(topic, payload))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def tick(
        self, creates: int, updates: int, trashes: int, customer_deletes: int = 0, customer_updates: int = 0
    ) -> dict[str, Any]:
        deleted = [cid for cid in (self.shop.delete_customer() for _ in range(customer_deletes)) if cid]
        edited = [c.id for c in (self.shop.update_customer() for _ in range(customer_updates)) if c]
        for cid in edited:
            self._schedule("customer.updated", self.render_customer(cid))
        changed: list[int] = []
        for _ in range(creates):
            order = self.shop.create_order()
            changed.append(order.id)
            self._schedule("order.created", self.render_order(order))
        for _ in range(updates):
            updated = self.shop.update_order()
            if updated:
                changed.append(updated.id)
                self._schedule("order.updated", self.render_order(updated))
        for _ in range(trashes):
            trashed = self.shop.trash_order()
            if trashed:
                changed.append(trashed.id)
                self._schedule("order.deleted", {"id": trashed.id})
        return {"changed": changed, "deleted_customers": deleted, "updated_customers": edited}

    async def live_step(self) -> None:
        if self.faults.live_paused:
            return
        if self.shop.rng.random() < 0.5:
            await self.tick(1, 0, 0)
        else:
            await self.tick(0, 1, 0)

    async def truth(self, _: web.Request) -> web.Response:
        """The simulator's own state, for tests that check the pipeline's result against it."""
        return web.json_response(
            {
                str(o.id): {"status": o.status, "total": _money(o.total), "trashed": o.trashed, "lines": len(o.lines),
                            "email": o.email, "changed_at": o.changed_at, "customer_id": o.customer_id, "refunded": _money(sum((r.amount for r in o.refunds), Decimal(0)))}
                for o in self.shop.orders.values()
            }
        )  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware(self.faults)])
        app.router.add_get(f"{API}/orders", self.list_orders)
        app.router.add_get(f"{API}/orders/{{id:\\d+}}", self.get_order)
        app.router.add_get(f"{API}/customers", self.list_customers)
        app.router.add_get(f"{API}/products", self.list_products)
        app.router.add_get("/__sim/truth", self.truth)
        app.router.add_post("/__sim/poison", self.add_poison)
        add_control_routes(app, self.faults, self.tick)

        async def close_session(_: web.Application) -> None:
            if self._session is not None:
                await self._session.close()

        app.on_cleanup.append(close_session)
        return app


async def serve(sim: WooCommerceSimulator, host: str, port: int, rate: float) -> None:
    await serve_forever(sim.app(), host, port, rate, sim.live_step)


__all__ = ["API", "STATUSES", "WooCommerceSimulator", "json", "serve"]

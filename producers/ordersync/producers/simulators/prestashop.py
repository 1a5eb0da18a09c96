"""A PrestaShop 8 Webservice simulator (docs/store-apis.md §2): key-as-user Basic auth (or ws_key),
``display=full``, ``limit=offset,count``, ``sort``, ``filter[...]`` with ``date=1``, multilingual fields,
install-specific order states (a custom one included), 1.7-era string typing or newer int typing, and an
empty list answered as ``[]``."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web

from ordersync.producers.simulators.faults import (
    Faults,
    add_control_routes,
    basic_credentials,
    fault_middleware,
    php_json,
    serve_forever,
)
from ordersync.producers.simulators.shop import Order, Shop, StatusModel

# (id, English name, paid, shipped, delivery, logable, invoice, module)
ORDER_STATES = [
    (1, "Awaiting check payment", 0, 0, 0, 0, 0, "ps_checkpayment"),
    (2, "Payment accepted", 1, 0, 0, 1, 1, ""),
    (3, "Processing in progress", 1, 0, 1, 1, 1, ""),
    (4, "Shipped", 1, 1, 1, 1, 1, ""),
    (5, "Delivered", 1, 1, 1, 1, 1, ""),
    (6, "Canceled", 0, 0, 0, 0, 0, ""),
    (7, "Refunded", 0, 0, 0, 0, 1, ""),
    (8, "Payment error", 0, 0, 0, 0, 0, ""),
    (9, "On backorder (paid)", 1, 0, 0, 0, 1, ""),
    (10, "Awaiting bank wire payment", 0, 0, 0, 0, 0, "ps_wirepayment"),
    (11, "Remote payment accepted", 1, 0, 0, 1, 1, ""),
    (12, "On backorder (not paid)", 0, 0, 0, 0, 0, ""),
    (13, "Awaiting Cash On Delivery validation", 0, 0, 0, 0, 0, "ps_cashondelivery"),
    (14, "Waiting for payment", 0, 0, 0, 0, 0, "ps_checkout"),  # added by a payment module
]
CURRENCIES = {1: "EUR", 2: "USD", 3: "CHF"}
STATUSES = StatusModel(
    initial=[("5", 40), ("4", 10), ("2", 8), ("3", 6), ("1", 4), ("10", 5), ("6", 6), ("7", 3), ("8", 3), ("14", 3), ("12", 2)],
    transitions={"1": ["2", "6"], "10": ["2", "6"], "14": ["2", "8"], "2": ["3", "4"], "3": ["4"], "4": ["5"],
                 "5": ["7"], "12": ["9"], "9": ["4"]},
    refunded="7",
    canceled="6",
)  # fmt: skip
_FILTER = re.compile(r"^filter\[(\w+)\]$")


def _rendered(
    cache: dict[int, tuple[Any, dict[str, Any]]], key: int, stamp: Any, render: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """A resource's rendering, redone only when its ``stamp`` (what it shows that can change) moved."""
    cached = cache.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, render())
        cache[key] = cached
    return cached[1]


class PrestaShopSimulator:
    def __init__(
        self,
        *,
        seed: int,
        orders: int,
        api_key: str,
        timezone: str = "Europe/Lisbon",
        typing: str = "ints",  # "strings": every value a string, as 1.7-era payloads
        faults: Faults | None = None,
    ) -> None:
        self.shop = Shop(seed, orders, STATUSES, currencies=tuple(CURRENCIES.values()), first_order_id=1)
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.api_key = api_key
        self.typing = typing
        self.faults = faults or Faults()
        self._rendered: dict[int, tuple[Any, dict[str, Any]]] = {}  # rendering is the slow part of a big backfill
        self._rendered_customers: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._order_rows: tuple[int, list[dict[str, Any]]] = (-1, [])  # all live orders, per shop version

    # -- rendering ----------------------------------------------------------------------------------
    def _id(self, value: int) -> int | str:
        return str(value) if self.typing == "strings" else value

    def _local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def _price(value: Decimal) -> str:
        return f"{value:.6f}"

    def render_order(self, order: Order) -> dict[str, Any]:
        i = self._id
        currency_id = next(k for k, v in CURRENCIES.items() if v == order.currency)
        total_excl = order.total - order.tax
        return {
            "id": order.id,  # an int in both typings, as in the docs' examples
            "id_address_delivery": i(order.id + 5000),
            "id_address_invoice": i(order.id + 5000),
            "id_cart": i(order.id + 9000),
            "id_currency": i(currency_id),
            "id_lang": i(1),
            "id_customer": i(order.customer_id),
            "id_carrier": i(2),
            "current_state": i(int(order.status)),
            "module": "ps_wirepayment",
            "invoice_number": i(0),
            "invoice_date": "0000-00-00 00:00:00",
            "delivery_number": i(0),
            "delivery_date": "0000-00-00 00:00:00",
            "valid": "1" if order.status in ("2", "3", "4", "5", "11") else "0",
            "date_add": self._local(order.created),
            "date_upd": self._local(order.modified),
            "shipping_number": "",
            "id_shop_group": i(1),
            "id_shop": i(1),
            "secure_key": "b44a6d9efd7a0076a0fbce6b15eaf3b1",
            "payment": "Bank wire",
            "recyclable": "0",
            "gift": "0",
            "gift_message": "",
            "mobile_theme": "0",
            "total_discounts": self._price(order.discount),
            "total_discounts_tax_incl": self._price(order.discount),
            "total_discounts_tax_excl": self._price(order.discount),
            "total_paid": self._price(order.total),
            "total_paid_tax_incl": self._price(order.total),
            "total_paid_tax_excl": self._price(total_excl),
            "total_paid_real": self._price(Decimal(0)),  # deprecated and misleading: never revenue
            "total_products": self._price(order.subtotal),
            "total_products_wt": self._price(order.subtotal),
            "total_shipping": self._price(order.shipping),
            "total_shipping_tax_incl": self._price(order.shipping),
            "total_shipping_tax_excl": self._price(order.shipping),
            "carrier_tax_rate": "0.000",
            "round_mode": i(2),
            "round_type": i(2),
            "conversion_rate": "1.000000",
            "reference": f"{order.id:09d}"[-9:].replace("0", "X"),
            "associations": {
                "order_rows": [
                    {
                        "id": i(line.id),
                        "product_id": i(line.product_id),
                        "product_attribute_id": i(line.variation_id),
                        "product_quantity": i(line.quantity),
                        "product_name": line.name
                        + (f" - Size : {line.variation_id % 100}" if line.variation_id else ""),
                        "product_reference": line.sku or "",
                        "product_ean13": "",
                        "product_isbn": "",
                        "product_upc": "",
                        "product_price": self._price(line.unit_price),
                        "id_customization": i(0),
                        "unit_price_tax_incl": self._price(line.unit_price),
                        "unit_price_tax_excl": self._price(line.unit_price),
                    }
                    for line in order.lines
                ]
            },
        }

    def render_customer(self, cid: int) -> dict[str, Any]:
        c = self.shop.customers[cid]
        return {
            "id": c.id,
            "id_default_group": self._id(3),
            "id_lang": self._id(1),
            "newsletter_date_add": "0000-00-00 00:00:00",
            "lastname": c.last_name,
            "firstname": c.first_name,
            "email": c.email,
            "newsletter": "1" if c.newsletter else "0",
            "optin": "0",
            "active": "1",
            "is_guest": "0",
            "deleted": "0",
            "date_add": self._local(c.created),
            "date_upd": self._local(c.modified),
        }

    @staticmethod
    def _multilang(text: str) -> list[dict[str, str]]:
        return [{"id": "1", "value": text}, {"id": "2", "value": text}]

    # -- HTTP ---------------------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        creds = basic_credentials(request)
        key = creds[0] if creds else request.query.get("ws_key", "")
        return hmac.compare_digest(key, self.api_key)

    def _unauthorised(self) -> web.Response:
        return web.Response(
            status=401,
            text="<?xml version='1.0'?><prestashop><errors><error><code>17</code>"
            "<message>Authentication key is empty</message></error></errors></prestashop>",
            headers={
                "WWW-Authenticate": 'Basic realm="Welcome to PrestaShop Webservice, please enter the authentication key as the login. No password required."'
            },
            content_type="text/xml",
        )

    def _filters(self, request: web.Request) -> list[tuple[str, str]]:
        return [(m.group(1), v) for k, v in request.query.items() if (m := _FILTER.match(k))]

    @staticmethod
    def _predicate(spec: str, is_date: bool) -> Callable[[Any], bool]:
        """PrestaShop filter syntax: [a|b], [a,b] (from inclusive, to exclusive for dates), >[x], <[x], ![x].
        Parsed once per request, then applied to every row."""
        negate = spec.startswith("!")
        spec = spec.lstrip("!")
        op = spec[0] if spec[0] in "<>" else ""
        inner = spec[len(op) :].strip("[]")

        def key(text: Any) -> Any:
            return str(text) if is_date else Decimal(str(text))

        if op in ("<", ">"):
            bound = key(inner)
            test: Callable[[Any], bool] = (lambda v: key(v) > bound) if op == ">" else (lambda v: key(v) < bound)
        elif "," in inner:
            low, high = (key(x) for x in inner.split(",", 1))
            test = (lambda v: low <= key(v) < high) if is_date else (lambda v: low <= key(v) <= high)
        else:
            wanted = set(inner.split("|"))
            test = lambda v: str(v) in wanted  # noqa: E731
        return (lambda v: not test(v)) if negate else test

    def _list(self, request: web.Request, resource: str, rows: list[dict[str, Any]]) -> web.Response:
        if request.query.get("output_format", request.headers.get("Output-Format", "XML")).upper() != "JSON":
            return web.Response(
                status=400, text="<prestashop><errors><error>XML only here</error></errors></prestashop>"
            )
        dates = request.query.get("date") == "1"
        for field, spec in self._filters(request):
            if field.startswith("date_") and not dates:
                return web.json_response({"errors": [{"code": 29, "message": "date filters need date=1"}]}, status=400)
            keep = self._predicate(spec, field.startswith("date_"))
            rows = [r for r in rows if field in r and keep(r[field])]
        sort = request.query.get("sort", "[id_ASC]").strip("[]")
        field, _, direction = sort.rpartition("_")
        rows.sort(key=lambda r: int(r["id"]) if field == "id" else str(r.get(field, "")), reverse=direction == "DESC")
        if "limit" in request.query:
            parts = request.query["limit"].split(",")
            offset, count = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, int(parts[0]))
            rows = rows[offset : offset + count]
        if request.query.get("display") != "full":
            rows = [{"id": r["id"]} for r in rows]
        body = php_json({resource: rows}) if rows else "[]"
        return web.Response(text=body, content_type="application/json")

    async def orders(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        if self._order_rows[0] != self.shop.version:
            rows = [
                _rendered(self._rendered, o.id, (o.modified, o.status), partial(self.render_order, o))
                for o in self.shop.orders.values()
                if not o.trashed
            ]
            self._order_rows = (self.shop.version, rows)
        return self._list(request, "orders", list(self._order_rows[1]))

    async def customers(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        rows = [
            _rendered(self._rendered_customers, cid, c.modified, partial(self.render_customer, cid))
            for cid, c in self.shop.customers.items()
        ]
        return self._list(request, "customers", rows)

    async def order_states(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        rows = [
            {"id": sid, "unremovable": "1", "delivery": str(d), "hidden": "0", "send_email": "1", "module_name": m,
             "invoice": str(inv), "color": "#32CD32", "logable": str(lg), "shipped": str(s), "paid": str(p),
             "pdf_delivery": "0", "pdf_invoice": "0", "deleted": "0", "name": self._multilang(name)}
            for sid, name, p, s, d, lg, inv, m in ORDER_STATES
        ]  # fmt: skip
        return self._list(request, "order_states", rows)

    async def currencies(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        rows = [
            {"id": cid, "iso_code": iso, "names": self._multilang(iso), "active": "1"}
            for cid, iso in CURRENCIES.items()
        ]
        return self._list(request, "currencies", rows)

    async def products(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        rows = [
            {"id": p.id, "id_category_default": self._id(p.categories[0][0]), "name": self._multilang(p.name),
             "associations": {"categories": [{"id": self._id(cid)} for cid, _ in p.categories]}}
            for p in self.shop.products
        ]  # fmt: skip
        return self._list(request, "products", rows)

    async def categories(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        seen: dict[int, str] = {}
        for p in self.shop.products:
            seen.update(dict(p.categories))
        rows = [{"id": cid, "name": self._multilang(name)} for cid, name in sorted(seen.items())]
        return self._list(request, "categories", rows)

    async def tick(
        self, creates: int, updates: int, trashes: int, customer_deletes: int = 0, customer_updates: int = 0
    ) -> dict[str, Any]:
        changed = [self.shop.create_order().id for _ in range(creates)]
        changed += [o.id for o in (self.shop.update_order() for _ in range(updates)) if o]
        edited = [c.id for c in (self.shop.update_customer() for _ in range(customer_updates)) if c]
        return {"changed": changed, "updated_customers": edited}

    async def live_step(self) -> None:
        if self.faults.live_paused:
            return
        await self.tick(1, 0, 0) if self.shop.rng.random() < 0.5 else await self.tick(0, 1, 0)

    async def truth(self, _: web.Request) -> web.Response:
        return web.json_response(
            {str(o.id): {"status": o.status, "total": f"{o.total:.2f}", "trashed": o.trashed, "lines": len(o.lines),
                         "email": o.email, "changed_at": o.changed_at, "customer_id": o.customer_id}
             for o in self.shop.orders.values()}
        )  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware(self.faults)])
        for name, handler in (
            ("orders", self.orders),
            ("customers", self.customers),
            ("order_states", self.order_states),
            ("currencies", self.currencies),
            ("products", self.products),
            ("categories", self.categories),
        ):
            app.router.add_get(f"/api/{name}", handler)
        app.router.add_get("/__sim/truth", self.truth)
        add_control_routes(app, self.faults, self.tick)
        return app


async def serve(sim: PrestaShopSimulator, host: str, port: int, rate: float) -> None:
    await serve_forever(sim.app(), host, port, rate, sim.live_step)

"""A WooCommerce shop double for benchmarks: every order document is generated and serialised before it
listens, and each request is answered from memory, so the connector, not the shop, is what a benchmark
measures (the full simulator renders documents per request and used as much CPU as the connector).

It answers what a backfill asks, as docs/store-apis.md §1 describes: ``/orders`` by creation time
(``after``/``before`` exclusive, ``orderby=date&order=asc``, ``page``/``per_page``, ``X-WP-Total`` and
``X-WP-TotalPages``), ``status=trash`` (empty), ``/customers`` (empty) and ``/products?include=``.
Authentication is not checked.

    python bench/shop_double.py PORT ORDERS
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import sys

from aiohttp import web

PRODUCTS = 200
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def order(i: int) -> tuple[str, bytes]:
    created = (START + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S")
    items = [
        {"id": j + 1, "name": f"Product {p}", "product_id": p, "variation_id": 0, "quantity": 1 + j,
         "subtotal": f"{10 + p}.50", "total": f"{10 + p}.50", "sku": f"S{p}", "price": 10.5}
        for j, p in enumerate(((i * 7 + k * 31) % PRODUCTS) + 1 for k in range(3))
    ]  # fmt: skip
    doc = {
        "id": i, "parent_id": 0, "number": str(i), "status": ("processing", "completed", "pending", "cancelled")[i % 4],
        "currency": "EUR", "date_created": created, "date_created_gmt": created, "date_modified": created,
        "date_modified_gmt": created, "discount_total": "0.00", "shipping_total": "4.00", "total": "99.50",
        "total_tax": "10.00", "customer_id": i % 20_000,
        "billing": {"first_name": "A", "last_name": "B", "email": f"c{i % 20_000}@example.com", "phone": ""},
        "shipping": {"first_name": "A", "last_name": "B"}, "line_items": items, "coupon_lines": [], "refunds": [],
        "_links": {"self": [{"href": f"https://shop.example/wp-json/wc/v3/orders/{i}"}]},
    }  # fmt: skip
    return created, json.dumps(doc).replace("/", "\\/").encode()


def app(orders: int) -> web.Application:
    made = [order(i) for i in range(1, orders + 1)]
    created = [c for c, _ in made]
    bodies = [b for _, b in made]
    products = json.dumps(
        [
            {"id": p, "categories": [{"id": p % 7 + 1, "name": f"Category {p % 7 + 1}", "slug": None}]}
            for p in range(1, PRODUCTS + 1)
        ]
    ).encode()

    def page(items: list[bytes], total: int, per_page: int) -> web.Response:
        pages = (total + per_page - 1) // per_page
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        return web.Response(body=b"[" + b",".join(items) + b"]", content_type="application/json", headers=headers)

    async def list_orders(request: web.Request) -> web.Response:
        q = request.query
        per_page = int(q.get("per_page", "10"))
        if q.get("status") == "trash":
            return page([], 0, per_page)
        lo = bisect.bisect_right(created, q["after"][:19]) if "after" in q else 0
        hi = bisect.bisect_left(created, q["before"][:19]) if "before" in q else len(created)
        start = lo + (int(q.get("page", "1")) - 1) * per_page
        return page(bodies[start : min(hi, start + per_page)], max(0, hi - lo), per_page)

    async def customers(request: web.Request) -> web.Response:
        return page([], 0, int(request.query.get("per_page", "10")))

    async def list_products(_: web.Request) -> web.Response:
        return web.Response(body=products, content_type="application/json", headers={"X-WP-Total": str(PRODUCTS)})

    application = web.Application()
    application.router.add_get("/wp-json/wc/v3/orders", list_orders)
    application.router.add_get("/wp-json/wc/v3/customers", customers)
    application.router.add_get("/wp-json/wc/v3/products", list_products)
    return application


if __name__ == "__main__":
    port, orders = int(sys.argv[1]), int(sys.argv[2])
    web.run_app(app(orders), host="127.0.0.1", port=port, access_log=None, print=lambda *_: print("ready", flush=True))

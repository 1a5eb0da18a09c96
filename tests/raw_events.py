"""Builders of raw events with realistic store documents, for processor tests."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from tests.samples import prestashop_raw_order_event, raw_order_event


def woo_doc(order_id: int = 1379, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": order_id,
        "number": str(order_id - 1168),
        "status": "processing",
        "currency": "EUR",
        "date_created": "2024-03-14T10:00:00",
        "date_created_gmt": "2024-03-14T09:00:00",
        "date_modified": "2024-03-14T10:05:00",
        "date_modified_gmt": "2024-03-14T09:05:00",
        "discount_total": "0.00",
        "shipping_total": "4.95",
        "total": "35.95",
        "total_tax": "1.00",
        "customer_id": 12,
        "billing": {"first_name": "Zoë", "last_name": "Müller", "email": "Zoe.Muller@Example.com", "phone": "+41 79"},
        "shipping": {"first_name": "Zoë", "last_name": "Müller", "phone": ""},
        "line_items": [
            {
                "id": 1,
                "name": "Trail Boot - 42",
                "product_id": 22,
                "variation_id": 23,
                "quantity": 3,
                "total": "30.00",
                "sku": None,
                "price": 10,
            },
        ],
        "coupon_lines": [],
        "refunds": [],
        "_links": {"self": [{"href": "https://shop.example.ch/wp-json/wc/v3/orders/1379"}]},
    }
    doc.update(overrides)
    return doc


def woo_event(doc: dict[str, Any] | None = None, *, php_escape: bool = True, **event: Any) -> dict[str, Any]:
    doc = doc or woo_doc()
    text = json.dumps(doc)
    if php_escape:
        text = text.replace("/", "\\/")
    out = raw_order_event()
    out.update(source_order_id=str(doc.get("id")), document=text, **event)
    out["context"]["product_categories"] = [
        {"product_id": "22", "categories": [{"id": "9", "name": "Shoes", "slug": "shoes"}]}
    ]
    return out


def ps_doc(order_id: int = 7, *, strings: bool = False, **overrides: Any) -> dict[str, Any]:
    def v(x: int) -> int | str:
        return str(x) if strings else x

    doc: dict[str, Any] = {
        "id": order_id,
        "id_customer": v(42),
        "id_currency": v(1),
        "current_state": v(2),
        "reference": "XKBKNABJK",
        "date_add": "2024-07-01 10:00:00",
        "date_upd": "2024-07-01 11:30:00",
        "total_paid": "20.230000",
        "total_paid_tax_incl": "20.230000",
        "total_paid_tax_excl": "16.450000",
        "total_paid_real": "0.000000",
        "total_shipping_tax_incl": "7.000000",
        "total_discounts_tax_incl": "0.000000",
        "valid": "1",
        "associations": {
            "order_rows": [
                {"id": v(1), "product_id": v(3), "product_attribute_id": v(13), "product_quantity": v(1),
                 "product_name": "Men Tshirt - Size : XXL", "product_reference": "", "unit_price_tax_excl": "9.450000",
                 "unit_price_tax_incl": "11.620000"},
            ]
        },
    }  # fmt: skip
    doc.update(overrides)
    return doc


def ps_event(doc: dict[str, Any] | None = None, state: dict[str, Any] | None = None, **event: Any) -> dict[str, Any]:
    doc = doc or ps_doc()
    out = prestashop_raw_order_event()
    out.update(source_order_id=str(doc.get("id")), document=json.dumps({"order": doc}), **event)
    if state is not None:
        out["context"]["order_state"] = state
    return out


def state(sid: int, name: str, paid: bool = False, shipped: bool = False) -> dict[str, Any]:
    return {
        "id": str(sid),
        "name": name,
        "paid": paid,
        "shipped": shipped,
        "delivery": shipped,
        "logable": paid,
        "invoice": paid,
        "module_name": None,
    }


T = dt.datetime(2024, 3, 14, 9, 5, tzinfo=dt.UTC)

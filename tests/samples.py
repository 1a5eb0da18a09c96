"""Realistic records for every schema subject, shared by contract tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

T0 = dt.datetime(2024, 3, 14, 9, 26, 53, 589000, tzinfo=dt.UTC)


def raw_order_event() -> dict[str, Any]:
    return {
        "event_id": "5b0c7e0e-1d0e-4a57-9b1c-0d7f3d0c2a11",
        "store_id": "woo-ch",
        "platform": "WOOCOMMERCE",
        "list_id": "7",
        "obtained_by": "WEBHOOK",
        "operation": "UPSERT",
        "source_order_id": "1379",
        "source_modified_at": T0,
        "fetched_at": T0 + dt.timedelta(seconds=2),
        "document": '{"id":1379,"number":"211","billing":{"email":""},"_links":{"self":[{"href":"https:\\/\\/resto-demo.ch"}]}}',
        "context": {
            "store_timezone": "Europe/Zurich",
            "currency_iso": None,
            "order_state": None,
            "product_categories": [
                {"product_id": "22", "categories": [{"id": "9", "name": "Chaussures élégantes", "slug": "chaussures"}]},
                {"product_id": "23", "categories": []},
            ],
            "customer": None,
        },
    }


def prestashop_raw_order_event() -> dict[str, Any]:
    event = raw_order_event()
    event.update(platform="PRESTASHOP", obtained_by="BACKFILL", source_modified_at=None)
    event["context"] = {
        "store_timezone": "Europe/Lisbon",
        "currency_iso": "EUR",
        "order_state": {
            "id": "2",
            "name": "Payment accepted",
            "paid": True,
            "shipped": False,
            "delivery": False,
            "logable": True,
            "invoice": True,
            "module_name": None,
        },
        "product_categories": [],
        "customer": {"id": "42", "email": "Joao@Example.PT", "first_name": "João", "last_name": None},
    }
    return event


def raw_customer_event() -> dict[str, Any]:
    return {
        "event_id": "e2",
        "store_id": "ps-pt",
        "platform": "PRESTASHOP",
        "list_id": "7",
        "obtained_by": "POLL",
        "operation": "UPSERT",
        "source_customer_id": "42",
        "source_modified_at": T0,
        "fetched_at": T0,
        "store_timezone": "Europe/Lisbon",
        "document": '{"id":42,"email":"joão@example.pt","firstname":"João"}',
    }


def contact() -> dict[str, Any]:
    return {
        "contact_id": "0d5c3a5e-8f1e-5b8e-9a37-1f2d3c4b5a69",
        "list_id": "7",
        "email": "zoë@example.com",
        "first_name": "Zoë",
        "last_name": None,
        "phone": None,
        "origin": "ORDER_BILLING",
        "store_customers": [],
        "created_at": T0,
        "updated_at": T0,
        "version": 1710408413589000,
    }


def order() -> dict[str, Any]:
    return {
        "order_key": "woo-ch:1379",
        "store_id": "woo-ch",
        "platform": "WOOCOMMERCE",
        "source_order_id": "1379",
        "order_number": "211",
        "list_id": "7",
        "contact_id": None,
        "contact_email": None,
        "matched": False,
        "store_customer_id": None,
        "status": "COMPLETED",
        "store_status": "refunded",
        "store_status_label": None,
        "currency": "CHF",
        "total": Decimal("1234.56"),
        "subtotal": Decimal("1200.00"),
        "tax_total": Decimal("24.56"),
        "shipping_total": Decimal("10.00"),
        "discount_total": Decimal("0"),
        "refunded_total": Decimal("10.00"),
        "net_total": Decimal("1224.56"),
        "refunds": [{"refund_id": "1400", "amount": Decimal("10.00"), "reason": "Größe passt nicht"}],
        "coupons": [{"code": "SPRING", "discount": Decimal("5.50")}],
        "items": [
            {
                "item_id": "1",
                "product_id": "22",
                "variation_id": "23",
                "sku": None,
                "name": "Chaussure « Élégance » – 42",
                "quantity": 2,
                "unit_price": Decimal("600.000000"),
                "total": Decimal("1200.00"),
                "categories": ["Chaussures élégantes"],
            }
        ],
        "created_at": T0,
        "modified_at": T0,
        "paid_at": None,
        "completed_at": T0,
        "deleted": False,
        "version": 1710408413589000,
        "source": "WEBHOOK",
        "historical": False,
    }


def activity() -> dict[str, Any]:
    return {
        "event_id": "3f1f0a5e-7b0d-5c3a-9f2e-8d7c6b5a4e3d",
        "type": "ORDER_STATUS_CHANGED",
        "order_key": "woo-ch:1379",
        "store_id": "woo-ch",
        "source_order_id": "1379",
        "list_id": "7",
        "contact_id": "0d5c3a5e-8f1e-5b8e-9a37-1f2d3c4b5a69",
        "occurred_at": T0,
        "from_status": "PENDING",
        "to_status": "COMPLETED",
        "from_store_status": "processing",
        "to_store_status": "completed",
        "currency": "CHF",
        "total": Decimal("-0.01"),
        "changed_fields": [],
        "version": 1710408413589000,
        "source": "BACKFILL",
        "historical": True,
    }


def connector_cursor() -> dict[str, Any]:
    return {
        "store_id": "woo-ch",
        "stream": "ORDERS",
        "backfill_complete": False,
        "backfill_position": "2024-03-14T09:26:53",
        "high_water_mark": None,
        "published": 0,
        "updated_at": T0,
    }


def raw_order_batch() -> dict[str, Any]:
    return {
        "batch_id": "0c0ffee0-0000-4000-8000-000000000001",
        "events": [raw_order_event(), prestashop_raw_order_event()],
    }


def trigger() -> dict[str, Any]:
    return {
        "trigger_id": "5b7c0f0e-1d2a-5e3b-8c4d-6e7f8a9b0c1d",
        "kind": "VIP_REACHED",
        "list_id": "7",
        "contact_id": "0d5c3a5e-8f1e-5b8e-9a37-1f2d3c4b5a69",
        "contact_email": "zoe@example.ch",
        "order_key": "woo-ch:1379",
        "store_id": "woo-ch",
        "source_order_id": "1379",
        "order_number": "1379",
        "status": "COMPLETED",
        "currency": "CHF",
        "total": Decimal("1200.00"),
        "net_total": Decimal("1150.00"),
        "items": [
            {
                "product_id": "31",
                "name": "Escarpins",
                "quantity": 1,
                "total": Decimal("1200.00"),
                "categories": ["Chaussures"],
            }
        ],
        "spent": Decimal("2150.00"),
        "threshold": Decimal("2000"),
        "rule": None,
        "suggested_categories": [],
        "suggested_products": [],
        "order_count": 3,
        "last_order_at": T0,
        "fired_at": T0,
        "purpose": "MARKETING",
        "marketing_consent": True,
    }


def campaign_event() -> dict[str, Any]:
    return {
        "event_id": "esp-771-click-1",
        "list_id": "7",
        "contact_id": "0d5c3a5e-8f1e-5b8e-9a37-1f2d3c4b5a69",
        "email": "zoe@example.ch",
        "campaign_id": "spring-26",
        "campaign_name": "Frühling -20 %",
        "channel": "EMAIL",
        "type": "CLICK",
        "occurred_at": T0,
        "holdout": False,
        "machine": False,
        "url": "https://shop.example.ch/boots",
        "source": "WEBHOOK",
        "received_at": T0,
    }


def attribution() -> dict[str, Any]:
    return {
        "order_key": "woo-ch:1379",
        "store_id": "woo-ch",
        "source_order_id": "1379",
        "list_id": "7",
        "contact_id": "0d5c3a5e-8f1e-5b8e-9a37-1f2d3c4b5a69",
        "campaign_id": "spring-26",
        "campaign_name": "Frühling -20 %",
        "channel": "EMAIL",
        "touch": "CLICK",
        "touch_event_id": "esp-771-click-1",
        "touched_at": T0,
        "order_created_at": T0,
        "historical": False,
    }


SAMPLES = {
    "raw_order_event": [raw_order_event(), prestashop_raw_order_event()],
    "raw_order_batch": [raw_order_batch()],
    "raw_customer_event": [raw_customer_event()],
    "contact": [
        contact(),
        {
            **contact(),
            "marketing_consent": False,
            "consent_history": [
                {"consent": True, "at": T0, "source": "store:ps-pt"},
                {"consent": False, "at": T0 + dt.timedelta(days=3), "source": "unsubscribe:spring-26"},
            ],
            "consent_at": T0 + dt.timedelta(days=3),
        },
    ],
    "order": [order()],
    "activity": [activity()],
    "connector_cursor": [connector_cursor()],
    "trigger": [trigger()],
    "campaign_event": [campaign_event()],
    "attribution": [attribution()],
}

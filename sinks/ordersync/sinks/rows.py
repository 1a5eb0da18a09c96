"""Decoded contract records → rows for COPY (pure). Column lists match migrations/001_initial.sql."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from psycopg.types.json import Jsonb

from ordersync.schemas.records import Activity, Attribution, CampaignEvent, Contact, Order, Trigger

R = TypeVar("R", bound=Mapping[str, Any])

ORDER_COLUMNS = (
    "store_id", "source_order_id", "order_key", "platform", "order_number", "list_id", "contact_id",
    "contact_email", "matched", "store_customer_id", "status", "store_status", "store_status_label", "currency",
    "total", "subtotal", "tax_total", "shipping_total", "discount_total", "refunded_total", "net_total",
    "refunds", "coupons", "created_at", "modified_at", "paid_at", "completed_at", "deleted", "version",
)  # fmt: skip
ITEM_COLUMNS = (
    "store_id", "source_order_id", "item_id", "product_id", "variation_id", "sku", "name", "quantity",
    "unit_price", "total", "categories",
)  # fmt: skip
ACTIVITY_COLUMNS = (
    "event_id", "type", "order_key", "store_id", "source_order_id", "list_id", "contact_id", "occurred_at",
    "from_status", "to_status", "from_store_status", "to_store_status", "currency", "total", "changed_fields",
    "version",
)  # fmt: skip
TRIGGER_COLUMNS = (
    "trigger_id", "kind", "list_id", "contact_id", "order_key", "store_id", "source_order_id", "currency", "total",
    "rule", "fired_at", "record",
)  # fmt: skip
CAMPAIGN_EVENT_COLUMNS = (
    "list_id", "event_id", "contact_id", "campaign_id", "campaign_name", "channel", "type", "occurred_at",
    "holdout", "machine", "url",
)  # fmt: skip
ATTRIBUTION_COLUMNS = (
    "store_id", "source_order_id", "list_id", "contact_id", "campaign_id", "campaign_name", "channel", "touch",
    "touch_event_id", "touched_at", "order_created_at", "historical",
)  # fmt: skip
CONTACT_COLUMNS = (
    "contact_id", "list_id", "email", "first_name", "last_name", "phone", "marketing_consent", "origin",
    "store_customers", "created_at", "updated_at", "version", "consent_history",
)  # fmt: skip


def without_nul(value: Any) -> Any:
    """``value`` with U+0000 removed from every string in it (PostgreSQL stores no NUL in text or jsonb)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    text = json.dumps(value, default=str)
    # json escapes NUL as \u0000, which jsonb refuses; the check is cheap, the cleaning rare.
    return json.dumps(without_nul(value), default=str) if "\\u0000" in text else text


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def order_row(order: Order) -> tuple[Any, ...]:
    values: dict[str, Any] = {**order, "refunds": _json(order["refunds"]), "coupons": _json(order["coupons"])}
    return tuple(values[c] for c in ORDER_COLUMNS)


def item_rows(order: Order) -> Iterable[tuple[Any, ...]]:
    for item in order["items"]:
        values: dict[str, Any] = {**item, "store_id": order["store_id"], "source_order_id": order["source_order_id"]}
        yield tuple(values[c] for c in ITEM_COLUMNS)


def activity_row(activity: Activity) -> tuple[Any, ...]:
    values: Mapping[str, Any] = activity
    return tuple(values[c] for c in ACTIVITY_COLUMNS)


def trigger_row(trigger: Trigger) -> tuple[Any, ...]:
    values: dict[str, Any] = {**trigger, "record": _json(trigger)}
    return tuple(values[c] for c in TRIGGER_COLUMNS)


def campaign_event_row(event: CampaignEvent) -> tuple[Any, ...]:
    values: Mapping[str, Any] = event
    return tuple(values[c] for c in CAMPAIGN_EVENT_COLUMNS)


def attribution_row(attribution: Attribution) -> tuple[Any, ...]:
    values: Mapping[str, Any] = attribution
    return tuple(values[c] for c in ATTRIBUTION_COLUMNS)


def contact_row(contact: Contact) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        **contact,
        "store_customers": _json(contact["store_customers"]),
        "consent_history": _json(contact.get("consent_history", [])),  # a contact of v2 or older has none
    }
    values.setdefault("marketing_consent", None)
    return tuple(values[c] for c in CONTACT_COLUMNS)


def latest_by(records: Iterable[R], key: Callable[[R], Hashable]) -> list[R]:
    """One record per key, the one with the highest version (later wins a tie): a batch may hold several
    versions of one order, and one INSERT ... ON CONFLICT cannot touch a row twice."""
    best: dict[Hashable, R] = {}
    for record in records:
        k = key(record)
        if k not in best or record["version"] >= best[k]["version"]:
            best[k] = record
    return list(best.values())

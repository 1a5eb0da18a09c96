"""What normalisation produces: an order in the contract's shape, and who it belongs to."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from ordersync.processors.values import NormaliseError
from ordersync.schemas.records import Order, RawOrderEvent


@dataclass(frozen=True)
class ContactHint:
    """Who the order belongs to, as the order itself says (billing, then shipping, then customer)."""

    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    store_customer_id: str | None


@dataclass(frozen=True)
class Normalised:
    order: Order  # contact_id / contact_email / matched are filled later
    contact: ContactHint


def load_document(document: str) -> Any:
    """Parse a store's JSON with every number as Decimal: money and prices never pass through float."""
    try:
        return json.loads(document, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise NormaliseError(f"document is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def require_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NormaliseError(f"{what} is not a JSON object")
    return value


def empty_totals() -> dict[str, Decimal]:
    zero = Decimal("0.000000")
    return {
        "total": zero,
        "subtotal": zero,
        "tax_total": zero,
        "shipping_total": zero,
        "discount_total": zero,
        "refunded_total": zero,
        "net_total": zero,
    }


def base_order(event: RawOrderEvent, source_order_id: str) -> dict[str, Any]:
    store_id = event["store_id"]
    return {
        "order_key": f"{store_id}:{source_order_id}",
        "store_id": store_id,
        "platform": event["platform"],
        "source_order_id": source_order_id,
        "list_id": event["list_id"],
        "contact_id": None,
        "contact_email": None,
        "matched": False,
        "deleted": False,
    }


def deleted_order(event: RawOrderEvent, source_order_id: str, version: int) -> Order:
    """A delete carries only the id: the order is marked deleted; other fields come from its last state."""
    fetched: dt.datetime = event["fetched_at"]
    deleted: dict[str, Any] = {
        **base_order(event, source_order_id),
        **empty_totals(),
        "order_number": None,
        "store_customer_id": None,
        "status": "UNKNOWN",
        "store_status": "deleted",
        "store_status_label": None,
        "currency": "XXX",
        "refunds": [],
        "coupons": [],
        "items": [],
        "created_at": fetched,
        "modified_at": fetched,
        "paid_at": None,
        "completed_at": None,
        "deleted": True,
        "version": version,
    }
    return cast(Order, deleted)

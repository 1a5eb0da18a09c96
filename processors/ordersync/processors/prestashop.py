"""PrestaShop 8 Webservice order documents → normalised orders (docs/store-apis.md §2).

Both typings are accepted: 1.7-era payloads with every value a string, newer ones with int ids.
The connector carries what the order lacks: the order state (name + flags), the currency ISO code,
the customer's e-mail, and product categories.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from ordersync.processors.model import ContactHint, Normalised, base_order, require_mapping
from ordersync.processors.status_map import PrestaShopState, is_refund_state, prestashop_status
from ordersync.processors.values import NormaliseError, ident, integer, micros, money, text, timestamp
from ordersync.processors.woocommerce import categories_by_product
from ordersync.schemas.records import CustomerRef, Order, OrderContext, RawOrderEvent


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def state_from_context(context: OrderContext) -> PrestaShopState | None:
    raw = context.get("order_state")
    if not raw:
        return None
    return PrestaShopState(
        id=str(raw["id"]),
        name=raw["name"],
        paid=_flag(raw["paid"]),
        shipped=_flag(raw["shipped"]),
        delivery=_flag(raw["delivery"]),
        logable=_flag(raw["logable"]),
    )


def normalise(event: RawOrderEvent, doc: Any, overrides: Mapping[str, str]) -> Normalised:
    doc = require_mapping(doc, "order")
    if "order" in doc and isinstance(doc["order"], dict):
        doc = doc["order"]  # a single-resource response: {"order": {...}}
    source_order_id = ident(doc.get("id"), "id")
    assert source_order_id is not None
    context = event["context"]
    tz = context["store_timezone"]
    state_id = ident(doc.get("current_state"), "current_state", required=False) or "0"
    state = state_from_context(context)
    currency = context.get("currency_iso")
    if not currency:
        raise NormaliseError(f"currency: id_currency {doc.get('id_currency')!r} was not resolved to an ISO code")
    created = timestamp(doc.get("date_add"), tz, "date_add", required=True)
    assert created is not None
    modified = timestamp(doc.get("date_upd"), tz, "date_upd") or created

    cats = categories_by_product(context)
    rows = (doc.get("associations") or {}).get("order_rows") or []
    items: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        row = require_mapping(row, f"order_rows[{i}]")
        product_id = ident(row.get("product_id"), f"order_rows[{i}].product_id", required=False) or "0"
        quantity = integer(row.get("product_quantity", 0), f"order_rows[{i}].product_quantity")
        unit_price = money(
            row.get("unit_price_tax_excl", row.get("product_price")), f"order_rows[{i}].unit_price_tax_excl"
        )
        items.append(
            {
                "item_id": ident(row.get("id"), f"order_rows[{i}].id") or str(i),
                "product_id": product_id,
                "variation_id": ident(
                    row.get("product_attribute_id"), f"order_rows[{i}].product_attribute_id", required=False
                ),
                "sku": text(row.get("product_reference")),
                "name": text(row.get("product_name")) or "",
                "quantity": quantity,
                "unit_price": unit_price,
                "total": unit_price * quantity,
                "categories": cats.get(product_id, []),
            }
        )
    total_incl = doc.get("total_paid_tax_incl")
    total = money(total_incl if total_incl not in (None, "") else doc.get("total_paid"), "total_paid_tax_incl")
    total_excl = money(doc.get("total_paid_tax_excl"), "total_paid_tax_excl")
    # PrestaShop orders carry no refund amounts (those are order slips): a refund state means the
    # whole order was refunded, so revenue net of refunds is zero.
    refunded = total if is_refund_state(state, state_id) else Decimal("0.000000")
    customer: CustomerRef | dict[str, Any] = context.get("customer") or {}
    order = cast(
        Order,
        {
            **base_order(event, source_order_id),
            "order_number": text(doc.get("reference")),
            "store_customer_id": ident(doc.get("id_customer"), "id_customer", required=False),
            "status": prestashop_status(state_id, state, overrides),
            "store_status": state_id,
            "store_status_label": state.name if state else None,
            "currency": currency.upper(),
            "total": total,
            "subtotal": sum((it["total"] for it in items), Decimal("0.000000")),
            "tax_total": total - total_excl if total_excl else Decimal("0.000000"),
            "shipping_total": money(
                doc.get("total_shipping_tax_incl", doc.get("total_shipping")), "total_shipping_tax_incl"
            ),
            "discount_total": money(
                doc.get("total_discounts_tax_incl", doc.get("total_discounts")), "total_discounts_tax_incl"
            ),
            "refunded_total": refunded,
            "net_total": total - refunded,
            "refunds": [{"refund_id": f"state-{state_id}", "amount": refunded, "reason": state.name if state else None}]
            if refunded
            else [],
            "coupons": [],
            "items": items,
            "created_at": created,
            "modified_at": modified,
            "paid_at": None,
            "completed_at": None,
            "version": micros(modified),
        },
    )
    hint = ContactHint(
        email=text(customer.get("email")),
        first_name=text(customer.get("first_name")),
        last_name=text(customer.get("last_name")),
        phone=None,
        store_customer_id=order["store_customer_id"],
    )
    return Normalised(order, hint)

"""WooCommerce REST v3 order documents → normalised orders (docs/store-apis.md §1)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from ordersync.processors.model import ContactHint, Normalised, base_order, require_mapping
from ordersync.processors.status_map import woocommerce_status
from ordersync.processors.values import NormaliseError, gmt_timestamp, ident, integer, micros, money, text, timestamp
from ordersync.schemas.records import Order, OrderContext, RawOrderEvent


def categories_by_product(context: OrderContext) -> dict[str, list[str]]:
    return {
        entry["product_id"]: [c["name"] for c in entry["categories"]] for entry in context.get("product_categories", [])
    }


def _when(doc: dict[str, Any], name: str, tz: str) -> Any:
    """Prefer the ``*_gmt`` field (UTC); fall back to the site-local one read in the store's zone."""
    gmt = gmt_timestamp(doc.get(f"{name}_gmt"), f"{name}_gmt")
    return gmt if gmt is not None else timestamp(doc.get(name), tz, name)


def normalise(event: RawOrderEvent, doc: Any, overrides: Mapping[str, str]) -> Normalised:
    doc = require_mapping(doc, "order")
    source_order_id = ident(doc.get("id"), "id")
    assert source_order_id is not None
    tz = event["context"]["store_timezone"]
    status = text(doc.get("status"))
    if status is None:
        raise NormaliseError("status: missing")
    currency = text(doc.get("currency")) or event["context"].get("currency_iso")
    if not currency or len(currency) != 3:
        raise NormaliseError(f"currency: {doc.get('currency')!r} is not an ISO 4217 code")
    created = _when(doc, "date_created", tz)
    if created is None:
        raise NormaliseError("date_created: missing")
    modified = _when(doc, "date_modified", tz) or created

    cats = categories_by_product(event["context"])
    items: list[dict[str, Any]] = []
    for i, line in enumerate(doc.get("line_items") or []):
        line = require_mapping(line, f"line_items[{i}]")
        product_id = ident(line.get("product_id"), f"line_items[{i}].product_id", required=False) or "0"
        quantity = integer(line.get("quantity", 0), f"line_items[{i}].quantity")
        line_total = money(line.get("total"), f"line_items[{i}].total")
        # `price` is a JSON number WooCommerce computes as total / quantity (often a long float such
        # as 3.3333333333333335); the exact source is the `total` string, so derive it from that.
        unit_price = _unit(line_total, quantity)
        items.append(
            {
                "item_id": ident(line.get("id"), f"line_items[{i}].id") or str(i),
                "product_id": product_id,
                "variation_id": ident(line.get("variation_id"), f"line_items[{i}].variation_id", required=False),
                "sku": text(line.get("sku")),
                "name": text(line.get("name")) or "",
                "quantity": quantity,
                "unit_price": unit_price,
                "total": line_total,
                "categories": cats.get(product_id, []),
            }
        )
    refunds: list[dict[str, Any]] = []
    for i, refund in enumerate(doc.get("refunds") or []):
        refund = require_mapping(refund, f"refunds[{i}]")
        refunds.append(
            {
                "refund_id": ident(refund.get("id"), f"refunds[{i}].id") or str(i),
                "amount": abs(money(refund.get("total"), f"refunds[{i}].total")),
                # The docs' list example says "refund" where the schema says "reason".
                "reason": text(refund.get("reason", refund.get("refund"))),
            }
        )
    coupons: list[dict[str, Any]] = []
    for i, coupon in enumerate(doc.get("coupon_lines") or []):
        coupon = require_mapping(coupon, f"coupon_lines[{i}]")
        coupons.append(
            {
                "code": text(coupon.get("code")) or "",
                "discount": money(coupon.get("discount"), f"coupon_lines[{i}].discount"),
            }
        )
    total = money(doc.get("total"), "total")
    refunded = sum((r["amount"] for r in refunds), Decimal("0.000000"))
    billing: dict[str, Any] = doc["billing"] if isinstance(doc.get("billing"), dict) else {}
    shipping: dict[str, Any] = doc["shipping"] if isinstance(doc.get("shipping"), dict) else {}
    order = cast(
        Order,
        {
            **base_order(event, source_order_id),
            "order_number": text(doc.get("number")),
            "store_customer_id": ident(doc.get("customer_id"), "customer_id", required=False),
            "status": woocommerce_status(status, overrides),
            "store_status": status,
            "store_status_label": None,
            "currency": currency.upper(),
            "total": total,
            "subtotal": sum((it["total"] for it in items), Decimal("0.000000")),
            "tax_total": money(doc.get("total_tax"), "total_tax"),
            "shipping_total": money(doc.get("shipping_total"), "shipping_total"),
            "discount_total": money(doc.get("discount_total"), "discount_total"),
            "refunded_total": refunded,
            "net_total": total - refunded,
            "refunds": refunds,
            "coupons": coupons,
            "items": items,
            "created_at": created,
            "modified_at": modified,
            "paid_at": _when(doc, "date_paid", tz),
            "completed_at": _when(doc, "date_completed", tz),
            "version": micros(modified),
        },
    )
    hint = ContactHint(
        email=text(billing.get("email")) or text(shipping.get("email")),
        first_name=text(billing.get("first_name")) or text(shipping.get("first_name")),
        last_name=text(billing.get("last_name")) or text(shipping.get("last_name")),
        phone=text(billing.get("phone")) or text(shipping.get("phone")),
        store_customer_id=order["store_customer_id"],
    )
    return Normalised(order, hint)


def _unit(total: Decimal, quantity: int) -> Decimal:
    if quantity == 0:
        return total
    return (total / quantity).quantize(Decimal("0.000001"))

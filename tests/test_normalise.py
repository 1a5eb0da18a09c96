"""Normalisation of both platforms' documents, with every quirk listed in docs/store-apis.md."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ordersync.processors.normalise import normalise_order
from ordersync.processors.values import NormaliseError, money, timestamp
from ordersync.schemas import encode
from tests.raw_events import ps_doc, ps_event, state, woo_doc, woo_event

UTC = dt.UTC


def test_woocommerce_order_becomes_a_contract_order() -> None:
    result = normalise_order(woo_event())
    order = result.order
    assert order["order_key"] == "woo-ch:1379"
    assert order["order_number"] == "211"  # number differs from id
    assert order["status"] == "PENDING" and order["store_status"] == "processing"
    assert order["total"] == Decimal("35.95") and isinstance(order["total"], Decimal)
    assert order["created_at"] == dt.datetime(2024, 3, 14, 9, 0, tzinfo=UTC)  # from the _gmt field
    assert order["version"] == int(dt.datetime(2024, 3, 14, 9, 5, tzinfo=UTC).timestamp() * 1_000_000)
    assert order["contact_email"] == "zoe.muller@example.com"
    item = order["items"][0]
    assert (item["product_id"], item["variation_id"], item["sku"]) == ("22", "23", None)
    assert item["unit_price"] == Decimal("10") and item["total"] == Decimal("30.00")
    assert item["categories"] == ["Shoes"]
    encode("order", order)  # fits the contract


def test_php_escaped_slashes_are_ordinary_json() -> None:
    escaped = normalise_order(woo_event(php_escape=True)).order
    plain = normalise_order(woo_event(php_escape=False)).order
    assert escaped == plain


def test_refunds_are_positive_and_revenue_is_net() -> None:
    doc = woo_doc(status="refunded", refunds=[{"id": 90, "reason": "Broken", "total": "-35.95"}])
    order = normalise_order(woo_event(doc)).order
    assert order["status"] == "CANCELED"
    assert order["refunds"] == [{"refund_id": "90", "amount": Decimal("35.95"), "reason": "Broken"}]
    assert order["net_total"] == Decimal("0")


def test_docs_example_refund_key_is_accepted() -> None:
    doc = woo_doc(refunds=[{"id": 91, "refund": "", "total": "-5.00"}])
    order = normalise_order(woo_event(doc)).order
    assert order["refunds"][0]["reason"] is None and order["net_total"] == Decimal("30.95")


def test_float_price_never_reaches_money() -> None:
    doc = woo_doc(
        line_items=[
            {
                "id": 1,
                "product_id": 5,
                "variation_id": 0,
                "quantity": 3,
                "total": "10.00",
                "sku": "A",
                "price": 3.3333333333333335,
            }
        ]
    )
    item = normalise_order(woo_event(doc)).order["items"][0]
    assert item["unit_price"] == Decimal("3.333333") and item["variation_id"] is None


def test_guest_with_empty_billing_email_is_unmatched_not_dropped() -> None:
    doc = woo_doc(customer_id=0, billing={"email": "", "first_name": "Ana"})
    result = normalise_order(woo_event(doc))
    assert result.order["store_customer_id"] is None
    assert result.order["contact_email"] is None and result.contact.email is None


def test_zone_less_dates_without_gmt_use_the_store_zone() -> None:
    doc = woo_doc()
    del doc["date_created_gmt"], doc["date_modified_gmt"]
    order = normalise_order(woo_event(doc)).order  # store zone Europe/Zurich (UTC+1 in March)
    assert order["created_at"] == dt.datetime(2024, 3, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("strings", [False, True])
def test_prestashop_both_typings_give_the_same_order(strings: bool) -> None:
    order = normalise_order(ps_event(ps_doc(strings=strings), state(2, "Payment accepted", paid=True))).order
    assert order["source_order_id"] == "7" and order["store_customer_id"] == "42"
    assert (
        order["status"] == "CREATED"
        and order["store_status"] == "2"
        and order["store_status_label"] == "Payment accepted"
    )
    assert order["currency"] == "EUR"
    assert order["total"] == Decimal("20.23") and order["tax_total"] == Decimal("3.78")
    item = order["items"][0]
    assert (item["variation_id"], item["sku"], item["quantity"]) == ("13", None, 1)
    # Lisbon is UTC+1 in July.
    assert order["created_at"] == dt.datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
    assert order["contact_email"] == "joao@example.pt"


def test_prestashop_refund_state_makes_net_revenue_zero() -> None:
    order = normalise_order(ps_event(ps_doc(current_state=7), state(7, "Refunded"))).order
    assert order["status"] == "CANCELED" and order["net_total"] == 0 and order["refunded_total"] == order["total"]


def test_prestashop_install_specific_state_resolved_by_name() -> None:
    order = normalise_order(ps_event(ps_doc(current_state=12), state(12, "Remote payment accepted", paid=True))).order
    assert order["status"] == "PENDING"


def test_prestashop_total_paid_real_is_never_revenue() -> None:
    order = normalise_order(ps_event(ps_doc(total_paid_real="40.460000"), state(2, "Payment accepted"))).order
    assert order["total"] == Decimal("20.23")


def test_overrides_apply_per_store() -> None:
    order = normalise_order(woo_event(woo_doc(status="refunded")), {"refunded": "COMPLETED"}).order
    assert order["status"] == "COMPLETED"


def test_delete_event_marks_the_order_deleted_with_a_newer_version() -> None:
    # Without the store's time of the deletion, our clock decides and the delete is newer than anything seen.
    event = woo_event(
        woo_doc(), operation="DELETE", fetched_at=dt.datetime(2024, 3, 14, 9, 0, tzinfo=UTC), source_modified_at=None
    )
    event["document"] = '{"id":1379}'
    order = normalise_order(event, previous_version=2_000_000_000_000_000).order
    assert order["deleted"] and order["version"] == 2_000_000_000_000_001


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(document="<html>Fatal error</html>"), "not JSON"),
        (lambda e: e.update(document=json.dumps(woo_doc(id=None))), "id: missing"),
        (lambda e: e.update(document=json.dumps(woo_doc(total="12,5x"))), "total"),
        (lambda e: e.update(document=json.dumps(woo_doc(total="1.1234567"))), "more than 6 decimal places"),
        (lambda e: e.update(document=json.dumps(woo_doc(currency="euro"))), "currency"),
        (lambda e: e.update(document=json.dumps(woo_doc(date_created_gmt="yesterday"))), "date_created_gmt"),
        (lambda e: e.update(document=json.dumps(woo_doc(id=555))), "does not match"),
        (lambda e: e.update(platform="OTHER"), "not supported"),
        (lambda e: e.update(document="[1, 2]"), "not a JSON object"),
        (
            lambda e: e.update(
                document=json.dumps(woo_doc(line_items=[{"id": 1, "product_id": 2, "quantity": -2, "total": "1"}]))
            ),
            "negative quantity",
        ),
    ],
)
def test_impossible_documents_raise_a_reason(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    event = woo_event()
    mutate(event)
    with pytest.raises(NormaliseError, match=reason):
        normalise_order(event)


def test_prestashop_unresolved_currency_is_an_error() -> None:
    event = ps_event(ps_doc(), state(2, "Payment accepted"))
    event["context"]["currency_iso"] = None
    with pytest.raises(NormaliseError, match="currency"):
        normalise_order(event)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", Decimal("12.5")),
        ("20.230000", Decimal("20.23")),
        (3, Decimal(3)),
        (Decimal("7.5"), Decimal("7.5")),
        ("", 0),
        (None, 0),
        ("1,234.00", Decimal("1234")),
    ],
)
def test_money_is_exact(value: object, expected: Decimal) -> None:
    assert money(value, "x") == expected


def test_money_refuses_floats() -> None:
    with pytest.raises(NormaliseError, match="exact"):
        money(7.5, "price")


def test_prestashop_zero_dates_are_none() -> None:
    assert timestamp("0000-00-00 00:00:00", "Europe/Lisbon", "invoice_date") is None


def test_a_prestashop_change_in_the_repeated_dst_hour_is_not_older_than_the_one_before() -> None:
    """Lisbon, 2024-10-27: 01:00-02:00 happens twice. A change at 01:40 (first pass, 00:40 UTC), then one
    at 01:10 on the second pass (01:10 UTC): read without a zone, the second looked 30 minutes older and
    was dropped as a late version. Of the two readings, the processor takes the one that is not older."""
    from ordersync.processors.values import micros

    first = ps_event(ps_doc(date_upd="2024-10-27 01:40:00"))
    first["context"]["store_timezone"] = "Europe/Lisbon"
    before = normalise_order(first).order
    assert before["modified_at"] == dt.datetime(2024, 10, 27, 0, 40, tzinfo=UTC)
    second = ps_event(ps_doc(date_upd="2024-10-27 01:10:00"))
    second["context"]["store_timezone"] = "Europe/Lisbon"
    after = normalise_order(second, previous_version=before["version"]).order
    assert after["modified_at"] == dt.datetime(2024, 10, 27, 1, 10, tzinfo=UTC)
    assert after["version"] == micros(after["modified_at"]) > before["version"]
    # Outside the repeated hour an older reading stays older (a late version, dropped downstream).
    late = ps_event(ps_doc(date_upd="2024-10-27 00:30:00"))
    late["context"]["store_timezone"] = "Europe/Lisbon"
    assert normalise_order(late, previous_version=before["version"]).order["version"] < before["version"]

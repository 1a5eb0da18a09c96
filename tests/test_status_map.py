from __future__ import annotations

import pytest

from ordersync.processors.status_map import (
    PRESTASHOP_BY_NAME,
    PRESTASHOP_DEFAULT_IDS,
    PrestaShopState,
    prestashop_status,
    woocommerce_status,
)

WOO_DEFAULTS = [
    ("checkout-draft", "CREATED"),
    ("pending", "PENDING"),
    ("on-hold", "PENDING"),
    ("processing", "PENDING"),
    ("completed", "COMPLETED"),
    ("refunded", "CANCELED"),  # deliberate: see ordersync.processors.status_map
    ("cancelled", "CANCELED"),
    ("failed", "CANCELED"),
    ("trash", "UNKNOWN"),
    ("auto-draft", "UNKNOWN"),
    ("ready-for-pickup", "UNKNOWN"),
    ("awaiting-shipment", "UNKNOWN"),  # a plugin's custom status
]


@pytest.mark.parametrize(("status", "expected"), WOO_DEFAULTS)
def test_woocommerce_default_map(status: str, expected: str) -> None:
    assert woocommerce_status(status) == expected


def test_woocommerce_prefix_and_case_are_tolerated() -> None:
    assert woocommerce_status("wc-Completed") == "COMPLETED"


def test_woocommerce_overrides_win() -> None:
    overrides = {"refunded": "COMPLETED", "awaiting-shipment": "PENDING"}
    assert woocommerce_status("refunded", overrides) == "COMPLETED"
    assert woocommerce_status("awaiting-shipment", overrides) == "PENDING"
    assert woocommerce_status("completed", overrides) == "COMPLETED"


PS_DEFAULTS = [
    (1, "Awaiting check payment", False, False, "CREATED"),
    (2, "Payment accepted", True, False, "CREATED"),
    (3, "Processing in progress", True, False, "PENDING"),
    (4, "Shipped", True, True, "COMPLETED"),
    (5, "Delivered", True, True, "COMPLETED"),
    (6, "Canceled", False, False, "CANCELED"),
    (7, "Refunded", False, False, "CANCELED"),
    (8, "Payment error", False, False, "CANCELED"),
    (9, "On backorder (paid)", True, False, "PENDING"),
    (10, "Awaiting bank wire payment", False, False, "PENDING"),
    (11, "Remote payment accepted", True, False, "PENDING"),
    (12, "On backorder (not paid)", False, False, "PENDING"),
    (13, "Awaiting Cash On Delivery validation", False, False, "PENDING"),
]


@pytest.mark.parametrize(("sid", "name", "paid", "shipped", "expected"), PS_DEFAULTS)
def test_prestashop_default_states_by_name(sid: int, name: str, paid: bool, shipped: bool, expected: str) -> None:
    state = PrestaShopState(str(sid), name, paid, shipped, shipped, paid)
    assert prestashop_status(str(sid), state) == expected
    # Without the connector's context, the fresh-install id map gives the same answer.
    assert prestashop_status(str(sid), None) == expected


def test_prestashop_other_install_ids_resolve_by_name() -> None:
    # A PS 1.6-era install: "Remote payment accepted" is id 12, COD validation is id 14.
    assert (
        prestashop_status("12", PrestaShopState("12", "Remote payment accepted", True, False, False, True)) == "PENDING"
    )
    assert (
        prestashop_status(
            "14", PrestaShopState("14", "Awaiting Cash On Delivery validation", False, False, False, False)
        )
        == "PENDING"
    )


@pytest.mark.parametrize(
    ("name", "paid", "shipped", "expected"),
    [
        ("Waiting for payment", False, False, "PENDING"),  # ps_checkout's custom state
        ("Expédié au transporteur", True, True, "COMPLETED"),
        ("Paiement vérifié", True, False, "PENDING"),
        ("Annulé par le client", False, False, "CANCELED"),
        ("Manual review", False, False, "UNKNOWN"),
    ],
)
def test_prestashop_custom_states_resolve_by_flags(name: str, paid: bool, shipped: bool, expected: str) -> None:
    assert prestashop_status("31", PrestaShopState("31", name, paid, shipped, shipped, paid)) == expected


def test_prestashop_unknown_id_without_context_is_unknown() -> None:
    assert prestashop_status("99", None) == "UNKNOWN"


def test_prestashop_overrides_by_id_or_name() -> None:
    state = PrestaShopState("14", "Waiting for payment", False, False, False, False)
    assert prestashop_status("14", state, {"14": "CREATED"}) == "CREATED"
    assert prestashop_status("14", state, {"Waiting for Payment": "CANCELED"}) == "CANCELED"


def test_default_tables_cover_all_thirteen_states() -> None:
    assert len(PRESTASHOP_BY_NAME) == len(PRESTASHOP_DEFAULT_IDS) == 13

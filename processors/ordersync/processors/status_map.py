"""Store status → one of the five ordersync statuses. The maps are data; stores override them.

Defaults follow E-goi's own plugins (docs/store-apis.md §3), with one deliberate change:
a **refunded** order is CANCELED on both platforms. The two reference plugins disagree (WooCommerce says
completed, PrestaShop canceled); a fully refunded order is not a purchase to market to, and one
platform-independent answer keeps segments comparable across stores. Revenue is net of refunds either
way (``net_total``). A store that wants the WooCommerce plugin's behaviour sets
``status_overrides = { refunded = "COMPLETED" }``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ordersync.schemas.statuses import CANCELED, COMPLETED, CREATED, PENDING, UNKNOWN

WOOCOMMERCE: Mapping[str, str] = {
    "checkout-draft": CREATED,
    "pending": PENDING,
    "on-hold": PENDING,
    "processing": PENDING,
    "completed": COMPLETED,
    "refunded": CANCELED,  # E-goi's WP plugin: completed. See the module docstring.
    "cancelled": CANCELED,
    "failed": CANCELED,
}

# PrestaShop state ids are install-specific, so the default map is keyed by the states' default
# English names (ids shown for reference: these are a fresh PS 8 install's).
PRESTASHOP_BY_NAME: Mapping[str, str] = {
    "awaiting check payment": CREATED,  # 1
    "payment accepted": CREATED,  # 2 (E-goi: created)
    "processing in progress": PENDING,  # 3
    "shipped": COMPLETED,  # 4
    "delivered": COMPLETED,  # 5
    "canceled": CANCELED,  # 6
    "refunded": CANCELED,  # 7
    "payment error": CANCELED,  # 8
    "on backorder (paid)": PENDING,  # 9
    "awaiting bank wire payment": PENDING,  # 10
    "remote payment accepted": PENDING,  # 11
    "on backorder (not paid)": PENDING,  # 12
    "awaiting cash on delivery validation": PENDING,  # 13
}

# Used only when an event carries no order_states entry (the connector could not resolve the id).
PRESTASHOP_DEFAULT_IDS: Mapping[str, str] = {
    "1": CREATED, "2": CREATED, "3": PENDING, "4": COMPLETED, "5": COMPLETED, "6": CANCELED, "7": CANCELED,
    "8": CANCELED, "9": PENDING, "10": PENDING, "11": PENDING, "12": PENDING, "13": PENDING,
}  # fmt: skip

_CANCEL_WORDS = ("cancel", "refund", "error", "fail", "declin", "annul", "rembours")
_WAIT_WORDS = ("await", "waiting", "pending", "attente", "backorder")


@dataclass(frozen=True)
class PrestaShopState:
    id: str
    name: str
    paid: bool
    shipped: bool
    delivery: bool
    logable: bool


def woocommerce_status(status: str, overrides: Mapping[str, str] | None = None) -> str:
    """Map a WooCommerce status slug (``wc-`` prefix tolerated); unknown → UNKNOWN."""
    slug = status.strip().lower().removeprefix("wc-")
    if overrides and slug in overrides:
        return overrides[slug]
    return WOOCOMMERCE.get(slug, UNKNOWN)


def prestashop_status(state_id: str, state: PrestaShopState | None, overrides: Mapping[str, str] | None = None) -> str:
    """Map a PrestaShop order state by override (id or name), then default name, then flags."""
    name = state.name.strip().lower() if state else ""
    if overrides:
        for key in (state_id, name):
            if key and key in overrides:
                return overrides[key]
        lowered = {k.lower(): v for k, v in overrides.items()}
        if name in lowered:
            return lowered[name]
    if state is None:
        return PRESTASHOP_DEFAULT_IDS.get(state_id, UNKNOWN)
    if name in PRESTASHOP_BY_NAME:
        return PRESTASHOP_BY_NAME[name]
    return _by_flags(state, name)


def _by_flags(state: PrestaShopState, name: str) -> str:
    """A custom or renamed state: judge it by what PrestaShop says it means."""
    if any(word in name for word in _CANCEL_WORDS):
        return CANCELED
    if state.shipped:
        return COMPLETED
    if state.paid or any(word in name for word in _WAIT_WORDS):
        return PENDING
    return UNKNOWN


def is_refund_state(state: PrestaShopState | None, state_id: str) -> bool:
    """PrestaShop orders carry no refund amounts; a refund state means the whole order was refunded."""
    if state is None:
        return state_id == "7"
    return "refund" in state.name.lower() or "rembours" in state.name.lower()

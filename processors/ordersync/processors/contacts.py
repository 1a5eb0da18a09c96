"""Contacts: identity (list + normalised e-mail), deterministic ids, and merging what we learn."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ordersync.processors.model import ContactHint, load_document, require_mapping
from ordersync.processors.values import NormaliseError, ident, micros, text, timestamp
from ordersync.schemas.identity import contact_id
from ordersync.schemas.records import Contact, ContactOrigin, StoreCustomerRef


def customer_alias(list_id: str, store_id: str, customer_id: str) -> str:
    """Routing key for orders without an e-mail: matched once this store customer is known."""
    return f"{list_id}:customer:{store_id}:{customer_id}"


def new_contact(
    list_id: str,
    email: str,
    hint: ContactHint,
    origin: ContactOrigin,
    store_id: str | None,
    at: dt.datetime,
    consent: bool | None = None,
) -> Contact:
    refs: list[StoreCustomerRef] = (
        [{"store_id": store_id, "customer_id": hint.store_customer_id}] if store_id and hint.store_customer_id else []
    )
    return {
        "contact_id": contact_id(list_id, email),
        "list_id": list_id,
        "email": email,
        "first_name": hint.first_name,
        "last_name": hint.last_name,
        "phone": hint.phone,
        "marketing_consent": consent,
        "origin": origin,
        "store_customers": refs,
        "created_at": at,
        "updated_at": at,
        "version": micros(at),
    }


def merge(existing: Contact, update: Contact) -> Contact | None:
    """Fold ``update`` into ``existing``; None when nothing changes (so nothing is emitted).

    Identity, origin and creation time stay; known values are never replaced by blanks; store customer
    references accumulate. The version only moves forward.
    """
    merged: Contact = {**existing}
    for field in ("first_name", "last_name", "phone", "marketing_consent"):
        if update.get(field) is not None and (update["version"] >= existing["version"] or existing.get(field) is None):
            merged[field] = update[field]
    refs = list(existing["store_customers"])
    for ref in update["store_customers"]:
        if ref not in refs:
            refs.append(ref)
    merged["store_customers"] = refs
    if merged == existing:
        return None
    merged["version"] = max(existing["version"] + 1, update["version"])
    merged["updated_at"] = max(existing["updated_at"], update["updated_at"])
    return merged


def hint_from_customer(platform: str, document: str, source_customer_id: str) -> tuple[ContactHint, bool | None]:
    """A store customer document (WooCommerce /customers or PrestaShop customers) → contact details."""
    doc = require_mapping(load_document(document), "customer")
    if "customer" in doc and isinstance(doc["customer"], dict):
        doc = doc["customer"]
    if platform == "WOOCOMMERCE":
        billing: dict[str, Any] = doc["billing"] if isinstance(doc.get("billing"), dict) else {}
        hint = ContactHint(
            email=text(doc.get("email")) or text(billing.get("email")),
            first_name=text(doc.get("first_name")) or text(billing.get("first_name")),
            last_name=text(doc.get("last_name")) or text(billing.get("last_name")),
            phone=text(billing.get("phone")),
            store_customer_id=ident(doc.get("id"), "id", required=False) or source_customer_id,
        )
        return hint, None
    if platform == "PRESTASHOP":
        consent = None
        if doc.get("newsletter") is not None or doc.get("optin") is not None:
            consent = doc.get("newsletter") in (True, 1, "1") or doc.get("optin") in (True, 1, "1")
        hint = ContactHint(
            email=text(doc.get("email")),
            first_name=text(doc.get("firstname")),
            last_name=text(doc.get("lastname")),
            phone=None,
            store_customer_id=ident(doc.get("id"), "id", required=False) or source_customer_id,
        )
        return hint, consent
    raise NormaliseError(f"platform {platform!r} is not supported")


def customer_modified_at(platform: str, document: str, tz: str) -> dt.datetime | None:
    doc = require_mapping(load_document(document), "customer")
    if platform == "WOOCOMMERCE":
        return timestamp(doc.get("date_modified_gmt"), "UTC", "date_modified_gmt") or timestamp(
            doc.get("date_modified"), tz, "date_modified"
        )
    doc = doc.get("customer", doc) if isinstance(doc.get("customer"), dict) else doc
    return timestamp(doc.get("date_upd"), tz, "date_upd")

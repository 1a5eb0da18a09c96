"""Contacts: identity (list + normalised e-mail), deterministic ids, and merging what we learn."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ordersync.processors import consent
from ordersync.processors.model import ContactHint, load_document, require_mapping
from ordersync.processors.values import NormaliseError, ident, micros, text, timestamp
from ordersync.schemas.identity import contact_id
from ordersync.schemas.records import ConsentStatement, Contact, ContactOrigin, StoreCustomerRef


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
    statements: list[ConsentStatement] | None = None,
) -> Contact:
    """A contact as one source knows it; ``statements``: what that source says of its marketing consent."""
    stated, _ = consent.heard(statements or [])
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
        "marketing_consent": stated.latest["consent"] if stated.latest else None,
        "origin": origin,
        "store_customers": refs,
        "created_at": at,
        "updated_at": at,
        "version": micros(at),
        "consent_history": stated.history,
        "consent_at": stated.latest["at"] if stated.latest else None,
    }


def merge(existing: Contact, update: Contact) -> Contact | None:
    """Fold ``update`` into ``existing``; None when nothing changes (so nothing is emitted).

    Identity, origin and creation time stay; known values are never replaced by blanks; store customer
    references accumulate; marketing consent follows the latest statement by its own time, whichever
    record brought it (ordersync.processors.consent). The version only moves forward.
    """
    after = consent.fold(existing, update)
    merged: Contact = after.on(existing) if after is not None else {**existing}
    for field in ("first_name", "last_name", "phone"):
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


def hint_from_customer(platform: str, document: str, source_customer_id: str) -> ContactHint:
    """A store customer document (WooCommerce /customers or PrestaShop customers) → contact details."""
    doc = require_mapping(load_document(document), "customer")
    if "customer" in doc and isinstance(doc["customer"], dict):
        doc = doc["customer"]
    if platform == "WOOCOMMERCE":
        billing: dict[str, Any] = doc["billing"] if isinstance(doc.get("billing"), dict) else {}
        return ContactHint(
            email=text(doc.get("email")) or text(billing.get("email")),
            first_name=text(doc.get("first_name")) or text(billing.get("first_name")),
            last_name=text(doc.get("last_name")) or text(billing.get("last_name")),
            phone=text(billing.get("phone")),
            store_customer_id=ident(doc.get("id"), "id", required=False) or source_customer_id,
        )
    if platform == "PRESTASHOP":
        return ContactHint(
            email=text(doc.get("email")),
            first_name=text(doc.get("firstname")),
            last_name=text(doc.get("lastname")),
            phone=None,
            store_customer_id=ident(doc.get("id"), "id", required=False) or source_customer_id,
        )
    raise NormaliseError(f"platform {platform!r} is not supported")


def customer_modified_at(platform: str, document: str, tz: str) -> dt.datetime | None:
    doc = require_mapping(load_document(document), "customer")
    if platform == "WOOCOMMERCE":
        return timestamp(doc.get("date_modified_gmt"), "UTC", "date_modified_gmt") or timestamp(
            doc.get("date_modified"), tz, "date_modified"
        )
    doc = doc.get("customer", doc) if isinstance(doc.get("customer"), dict) else doc
    return timestamp(doc.get("date_upd"), tz, "date_upd")

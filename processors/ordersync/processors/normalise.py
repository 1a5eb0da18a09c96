"""Raw order event → normalised order: picks the platform's normaliser and handles deletes."""

from __future__ import annotations

from collections.abc import Mapping

from ordersync.processors import prestashop, woocommerce
from ordersync.processors.model import ContactHint, Normalised, deleted_order, load_document
from ordersync.processors.values import NormaliseError, micros, second_reading
from ordersync.schemas.identity import normalise_email
from ordersync.schemas.records import RawOrderEvent

_NORMALISERS = {"WOOCOMMERCE": woocommerce.normalise, "PRESTASHOP": prestashop.normalise}
NO_CONTACT = ContactHint(None, None, None, None, None)


def normalise_order(
    event: RawOrderEvent,
    overrides: Mapping[str, str] | None = None,
    previous_version: int | None = None,
) -> Normalised:
    """Raise NormaliseError (→ dead-letter topic) for anything that is not a usable order."""
    if not event.get("source_order_id"):
        raise NormaliseError("source_order_id: missing")
    if event["operation"] == "DELETE":
        # Versioned by the store's time of the deletion when the event has it (a trashed order's
        # modification time, a confirmed webhook delete): a delete delivered late is then older than a
        # restore that followed it, and loses. Only without a store time does our clock decide, and then
        # the delete is newer than anything seen (docs/contract.md "Ordering and versions").
        modified = event.get("source_modified_at")
        if modified is not None:
            version = micros(modified)
        else:
            version = max(micros(event["fetched_at"]), previous_version + 1 if previous_version is not None else 0)
        return Normalised(deleted_order(event, event["source_order_id"], version), NO_CONTACT)
    normaliser = _NORMALISERS.get(event["platform"])
    if normaliser is None:
        raise NormaliseError(f"platform {event['platform']!r} is not supported")
    try:
        result = normaliser(event, load_document(event["document"]), overrides or {})
    except NormaliseError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, ArithmeticError) as exc:
        # A field of an unexpected shape deep in the document (a number where an object belongs, ...).
        raise NormaliseError(f"malformed document: {type(exc).__name__}: {exc}") from exc
    if result.order["source_order_id"] != event["source_order_id"]:
        raise NormaliseError(
            f"document id {result.order['source_order_id']!r} does not match the event's {event['source_order_id']!r}"
        )
    for item in result.order["items"]:
        if item["quantity"] < 0:
            raise NormaliseError(f"items: negative quantity {item['quantity']} on line {item['item_id']}")
    if (
        previous_version is not None
        and result.order["version"] < previous_version
        and event["platform"] == "PRESTASHOP"
    ):
        # PrestaShop's dates have no zone: in the hour repeated when clocks go back, a later change can read
        # as earlier than the one before it. Of the two readings, take the one that is not older.
        later = second_reading(result.order["modified_at"], event["context"]["store_timezone"])
        if later is not None and micros(later) >= previous_version:
            result = Normalised({**result.order, "modified_at": later, "version": micros(later)}, result.contact)
    email = normalise_email(result.contact.email)
    contact = ContactHint(
        email,
        result.contact.first_name,
        result.contact.last_name,
        result.contact.phone,
        result.contact.store_customer_id,
    )
    return Normalised({**result.order, "contact_email": email}, contact)

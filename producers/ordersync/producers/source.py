"""What the connector loop needs from a store platform (woocommerce.py, prestashop.py implement it),
and the raw events it publishes."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from ordersync.producers.documents import raw_bytes
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas.records import OrderContext, RawCustomerEvent, RawOrderEvent

Document = tuple[str, Any]  # (exact text as received, parsed value or documents.Rejected)

# What reading a store document's fields can raise when the document is not what the API documents;
# such a document is dead-lettered by itself and the rest of its page goes on.
BAD_DOCUMENT_ERRORS = (
    AttributeError, TypeError, KeyError, IndexError, ValueError, ArithmeticError, RecursionError, UnicodeError,
)  # fmt: skip


@dataclass(frozen=True)
class Page:
    documents: list[Document]
    position: str | None  # where a resumed backfill continues after this page


class StoreSource(Protocol):
    platform: str  # "WOOCOMMERCE" / "PRESTASHOP"
    store: StoreConfig

    async def count_orders(self) -> int | None: ...
    def order_pages(self, position: str | None, until: dt.datetime) -> AsyncIterator[Page]: ...
    def changed_orders(self, since: dt.datetime) -> AsyncIterator[Page]: ...
    def customer_pages(self, position: str | None) -> AsyncIterator[Page]: ...
    async def contexts(self, documents: list[Document]) -> list[OrderContext]: ...
    def order_id(self, doc: Any) -> str | None: ...
    def order_modified_at(self, doc: Any) -> dt.datetime | None: ...
    def customer_id(self, doc: Any) -> str | None: ...
    def customer_modified_at(self, doc: Any) -> dt.datetime | None: ...
    def operation(self, doc: Any) -> str: ...


def document_id(doc: Any) -> str | None:
    """The ``id`` of a store document (int or string, by platform and version), or None."""
    value = doc.get("id") if isinstance(doc, dict) else None
    return str(value) if isinstance(value, int | str) and str(value) else None


def fallback_id(text: str) -> str:
    """A key for a document whose id cannot be read: stable, so duplicates of it still collapse."""
    return "unreadable-" + hashlib.sha1(raw_bytes(text), usedforsecurity=False).hexdigest()[:16]


def base_context(store: StoreConfig) -> OrderContext:
    return {
        "store_timezone": store.timezone,
        "currency_iso": None,
        "order_state": None,
        "product_categories": [],
        "customer": None,
    }


def _envelope(
    store: StoreConfig, platform: str, text: str, obtained_by: str, operation: str, modified_at: dt.datetime | None
) -> dict[str, Any]:
    """What every raw event carries, whatever the document."""
    return {
        "event_id": str(uuid.uuid4()),
        "store_id": store.id,
        "platform": platform,
        "list_id": store.list_id,
        "obtained_by": obtained_by,
        "operation": operation,
        "source_modified_at": modified_at,
        "fetched_at": dt.datetime.now(dt.UTC),
        "document": text,
    }


def raw_order_event(
    store: StoreConfig,
    platform: str,
    text: str,
    source_order_id: str,
    obtained_by: str,
    modified_at: dt.datetime | None,
    context: OrderContext,
    operation: str = "UPSERT",
) -> RawOrderEvent:
    envelope = _envelope(store, platform, text, obtained_by, operation, modified_at)
    return cast(RawOrderEvent, {**envelope, "source_order_id": source_order_id, "context": context})


def raw_customer_event(
    store: StoreConfig,
    platform: str,
    text: str,
    source_customer_id: str,
    obtained_by: str,
    modified_at: dt.datetime | None,
) -> RawCustomerEvent:
    envelope = _envelope(store, platform, text, obtained_by, "UPSERT", modified_at)
    return cast(
        RawCustomerEvent, {**envelope, "source_customer_id": source_customer_id, "store_timezone": store.timezone}
    )


def parse_time(value: Any, tz: str) -> dt.datetime | None:
    """Best effort, for cursors only (the processor does the strict parsing)."""
    import zoneinfo

    if not isinstance(value, str) or not value or value.startswith("0000"):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zoneinfo.ZoneInfo(tz))).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 seen from east of UTC
        return None

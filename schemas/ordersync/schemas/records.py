"""The contract's records as Python types: one TypedDict per Avro record of the current schemas, as
``schemas.decode`` returns them and ``schemas.encode`` takes them (decimals as ``Decimal``, timestamps as
aware ``datetime`` in UTC, enums as their symbol strings). TypedDicts cost nothing at run time: the
records stay the plain dicts fastavro reads and writes. tests/test_records.py checks that every key
here is a field of the ``.avsc`` and the reverse.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal, TypedDict

Platform = Literal["WOOCOMMERCE", "PRESTASHOP", "OTHER"]
ObtainedBy = Literal["BACKFILL", "POLL", "WEBHOOK", "OTHER"]
Operation = Literal["UPSERT", "DELETE"]
OrderStatus = Literal["CREATED", "PENDING", "COMPLETED", "CANCELED", "UNKNOWN"]
ActivityType = Literal["ORDER_CREATED", "ORDER_STATUS_CHANGED", "ORDER_UPDATED", "ORDER_DELETED"]
ContactOrigin = Literal["STORE_CUSTOMER", "IMPORT", "ORDER_BILLING", "OTHER"]
CursorStream = Literal["ORDERS", "CUSTOMERS"]
ChangeSource = Literal["BACKFILL", "POLL", "WEBHOOK", "REPLAY", "IMPORT", "OTHER"]


# -- raw_order_event / raw_order_batch ---------------------------------------------------------------
class OrderState(TypedDict):
    id: str
    name: str
    paid: bool
    shipped: bool
    delivery: bool
    logable: bool
    invoice: bool
    module_name: str | None


class Category(TypedDict):
    id: str
    name: str
    slug: str | None


class ProductCategories(TypedDict):
    product_id: str
    categories: list[Category]


class CustomerRef(TypedDict):
    id: str
    email: str | None
    first_name: str | None
    last_name: str | None


class OrderContext(TypedDict):
    store_timezone: str
    currency_iso: str | None
    order_state: OrderState | None
    product_categories: list[ProductCategories]
    customer: CustomerRef | None


class RawEnvelope(TypedDict):
    """What every raw event starts with, whatever the document."""

    event_id: str
    store_id: str
    platform: Platform
    list_id: str
    obtained_by: ObtainedBy
    operation: Operation


class RawOrderEvent(RawEnvelope):
    source_order_id: str
    source_modified_at: dt.datetime | None
    fetched_at: dt.datetime
    document: str  # the store's JSON as received: genuinely untyped, parsed by the normalisers
    context: OrderContext


class RawOrderBatch(TypedDict):
    batch_id: str
    events: list[RawOrderEvent]


# -- raw_customer_event ------------------------------------------------------------------------------
class RawCustomerEvent(RawEnvelope):
    source_customer_id: str
    source_modified_at: dt.datetime | None
    fetched_at: dt.datetime
    store_timezone: str
    document: str


# -- order -------------------------------------------------------------------------------------------
class Refund(TypedDict):
    refund_id: str
    amount: Decimal
    reason: str | None


class Coupon(TypedDict):
    code: str
    discount: Decimal


class OrderItem(TypedDict):
    item_id: str
    product_id: str
    variation_id: str | None
    sku: str | None
    name: str
    quantity: int
    unit_price: Decimal
    total: Decimal
    categories: list[str]


class Order(TypedDict):
    order_key: str
    store_id: str
    platform: Platform
    source_order_id: str
    order_number: str | None
    list_id: str
    contact_id: str | None
    contact_email: str | None
    matched: bool
    store_customer_id: str | None
    status: OrderStatus
    store_status: str
    store_status_label: str | None
    currency: str
    total: Decimal
    subtotal: Decimal
    tax_total: Decimal
    shipping_total: Decimal
    discount_total: Decimal
    refunded_total: Decimal
    net_total: Decimal
    refunds: list[Refund]
    coupons: list[Coupon]
    items: list[OrderItem]
    created_at: dt.datetime
    modified_at: dt.datetime
    paid_at: dt.datetime | None
    completed_at: dt.datetime | None
    deleted: bool
    version: int
    source: ChangeSource  # v2
    historical: bool  # v2


# -- activity ----------------------------------------------------------------------------------------
class Activity(TypedDict):
    event_id: str
    type: ActivityType
    order_key: str
    store_id: str
    source_order_id: str
    list_id: str
    contact_id: str | None
    occurred_at: dt.datetime
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    from_store_status: str | None
    to_store_status: str | None
    currency: str
    total: Decimal
    changed_fields: list[str]
    version: int
    source: ChangeSource  # v2
    historical: bool  # v2


# -- contact (v3) ------------------------------------------------------------------------------------
class StoreCustomerRef(TypedDict):
    store_id: str
    customer_id: str


class ConsentStatement(TypedDict):
    consent: bool
    at: dt.datetime
    source: str  # ordersync.schemas.consent


class Contact(TypedDict):
    contact_id: str
    list_id: str
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    origin: ContactOrigin
    marketing_consent: bool | None
    store_customers: list[StoreCustomerRef]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    consent_history: list[ConsentStatement]  # v3: the changes, oldest first
    consent_at: dt.datetime | None  # v3: when the latest statement was made (marketing_consent's)


# -- connector_cursor --------------------------------------------------------------------------------
class ConnectorCursor(TypedDict):
    store_id: str
    stream: CursorStream
    backfill_complete: bool
    backfill_position: str | None
    high_water_mark: dt.datetime | None
    published: int
    updated_at: dt.datetime


# -- trigger -----------------------------------------------------------------------------------------
TriggerKind = Literal["ORDER_THANK_YOU", "FIRST_ORDER", "UPSELL", "CHECKOUT_ABANDONED", "WIN_BACK", "VIP_REACHED"]
# What a trigger is for: a thank-you may go to anyone who bought; the rest is marketing (consent needed).
TriggerPurpose = Literal["TRANSACTIONAL", "MARKETING", "OTHER"]
TRANSACTIONAL_KINDS = frozenset({"ORDER_THANK_YOU"})


class TriggerItem(TypedDict):
    product_id: str
    name: str
    quantity: int
    total: Decimal
    categories: list[str]


class Trigger(TypedDict):
    trigger_id: str
    kind: TriggerKind
    list_id: str
    contact_id: str
    contact_email: str
    order_key: str | None
    store_id: str | None
    source_order_id: str | None
    order_number: str | None
    status: OrderStatus | None
    currency: str | None
    total: Decimal | None
    net_total: Decimal | None
    items: list[TriggerItem]
    spent: Decimal | None
    threshold: Decimal | None
    rule: str | None
    suggested_categories: list[str]
    suggested_products: list[str]
    order_count: int
    last_order_at: dt.datetime | None
    fired_at: dt.datetime
    purpose: TriggerPurpose
    marketing_consent: bool | None


CampaignChannel = Literal["EMAIL", "SMS", "PUSH", "OTHER"]
CampaignEventType = Literal["SEND", "OPEN", "CLICK", "UNSUBSCRIBE", "OTHER"]


class CampaignEvent(TypedDict):
    event_id: str
    list_id: str
    contact_id: str
    email: str
    campaign_id: str
    campaign_name: str | None
    channel: CampaignChannel
    type: CampaignEventType
    occurred_at: dt.datetime
    holdout: bool
    machine: bool
    url: str | None
    source: Literal["IMPORT", "WEBHOOK", "OTHER"]
    received_at: dt.datetime


class Attribution(TypedDict):
    order_key: str
    store_id: str
    source_order_id: str
    list_id: str
    contact_id: str
    campaign_id: str
    campaign_name: str | None
    channel: CampaignChannel
    touch: Literal["CLICK", "OPEN", "OTHER"]
    touch_event_id: str
    touched_at: dt.datetime
    order_created_at: dt.datetime
    historical: bool


BY_SUBJECT: dict[str, type] = {
    "raw_order_event": RawOrderEvent,
    "raw_order_batch": RawOrderBatch,
    "raw_customer_event": RawCustomerEvent,
    "order": Order,
    "activity": Activity,
    "contact": Contact,
    "connector_cursor": ConnectorCursor,
    "trigger": Trigger,
    "campaign_event": CampaignEvent,
    "attribution": Attribution,
}

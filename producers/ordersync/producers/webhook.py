"""WooCommerce webhook receiver: ``POST /webhooks/woocommerce/{store_id}``.

- The signature (``X-WC-Webhook-Signature``: base64 HMAC-SHA256 of the RAW body with the store's
  secret) is checked over the exact bytes received, in constant time; the body is PHP-escaped JSON, so
  it is never re-serialised first. Missing or wrong → 401 and nothing is published.
- The creation ping (form body ``webhook_id=N``, no JSON) → 200.
- ``order.created`` / ``order.updated`` / ``order.restored`` → an UPSERT raw event; ``order.deleted``
  (body ``{"id": N}``) → a DELETE raw event, once the store's API confirms the order is trashed or gone,
  versioned by the store's time (the trashed order's modification time, or the store's Date header).
  A live order is not deleted: 400 and a dead letter. Ids are whole numbers (``true`` is not one).
- The signature covers the body only, not the ``X-WC-Webhook-Topic`` header, so the body must have the
  shape its topic says (``body_fits_topic``): a captured order body re-sent as ``order.deleted`` or
  ``customer.updated`` is refused (400, dead-lettered) instead of deleting the order or making a
  customer.
- A repeated ``X-WC-Webhook-Delivery-ID`` is acknowledged without publishing again. Bodies over 1 MiB
  get a 413 before anything is parsed, bodies still arriving after ``webhook_body_timeout_s`` a 408; a
  malformed signature header is a 401 like a wrong one.
- ``customer.created`` / ``customer.updated`` → a raw customer event: WooCommerce's customers API has no
  "modified after" filter, so webhooks are how customer changes arrive after the backfill.
  ``customer.deleted`` is acknowledged and ignored: a marketing contact outlives the shop account.
- Order events of concurrent webhooks leave in raw order batches, a few milliseconds' worth per
  partition (ordersync.producers.webhook_batches); each request is answered after its batch is acknowledged.
- 2xx only after Kafka acknowledged the event. Signed but unreadable bodies go to the dead-letter topic
  and get a 400. WooCommerce does not retry failed deliveries, so polling stays on as the safety net.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from ordersync.producers.http_client import StoreError
from ordersync.producers.publisher import Deliveries, Publisher, PublishError
from ordersync.producers.source import base_context, parse_time, raw_customer_event, raw_order_event
from ordersync.producers.webhook_batches import OrderBatcher
from ordersync.producers.woocommerce import WooCommerceSource
from ordersync.runtime.store_health import WebhookBoard
from ordersync.runtime.stores import StoreConfig
from ordersync.schemas import encode
from ordersync.schemas.dead_letters import dead_letter_headers

log = logging.getLogger(__name__)
UPSERT_TOPICS = {"order.created", "order.updated", "order.restored"}
CUSTOMER_TOPICS = {"customer.created", "customer.updated"}


MAX_BODY = 1024 * 1024
DELIVERY_IDS_KEPT = 10_000  # per store: far more than WooCommerce re-sends within its retry window
DELETE_KEYS = {"id", "date_modified_gmt", "date_modified"}


def signature_valid(body: bytes, secret: str, signature: str | None) -> bool:
    if not signature or not signature.isascii():
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def body_fits_topic(topic: str, doc: dict[str, Any]) -> str | None:
    """Why a signed body cannot be what its topic says, or None when it fits."""
    if topic == "order.deleted":
        extra = set(doc) - DELETE_KEYS
        return f"an order.deleted body carries only the order id, this one has {sorted(extra)[:5]}" if extra else None
    if topic.startswith("order."):
        return None if "status" in doc else f"a {topic} body is an order, this one has no status"
    if "email" not in doc or "status" in doc:
        return f"a {topic} body is a customer (an e-mail, no order status), this one is not"
    return None


@dataclass
class WebhookStats:
    accepted: int = 0
    refused: int = 0
    pings: int = 0
    dead_letters: int = 0
    ignored: int = 0
    duplicates: int = 0


class WebhookReceiver:
    def __init__(
        self,
        stores: list[StoreConfig],
        publisher: Publisher,
        raw_orders_topic: str,
        raw_customers_topic: str,
        dlq_topic: str,
        sources: dict[str, WooCommerceSource] | None = None,
        board: WebhookBoard | None = None,
        body_timeout_s: float = 10.0,
        linger_s: float = 0.02,
    ) -> None:
        self.stores = {s.id: s for s in stores if s.platform == "woocommerce"}
        self.secrets = {s.id: s.secret("webhook_secret_env") for s in self.stores.values() if s.webhook_secret_env}
        self.publisher = publisher
        self.raw_orders_topic = raw_orders_topic
        self.batcher = OrderBatcher(publisher, raw_orders_topic, linger_s)
        self.raw_customers_topic = raw_customers_topic
        self.dlq_topic = dlq_topic
        self.sources = sources or {}  # for product categories; without one, events carry none
        self.stats = WebhookStats()
        self.body_timeout_s = body_timeout_s
        self.board = board or WebhookBoard()  # the Stores page's "last webhook"
        self._deliveries_seen: dict[str, OrderedDict[str, None]] = {s: OrderedDict() for s in self.stores}

    async def handle(self, request: web.Request) -> web.Response:
        store_id = request.match_info["store_id"]
        store = self.stores.get(store_id)
        if store is None:
            return web.json_response({"error": f"unknown store {store_id!r}"}, status=404)
        try:  # more than MAX_BODY: aiohttp answers 413
            body = await asyncio.wait_for(request.read(), self.body_timeout_s)
        except TimeoutError:
            self.stats.refused += 1
            log.warning("store %s: webhook body not complete after %.0fs", store_id, self.body_timeout_s)
            return web.json_response(
                {"error": "the body did not arrive in time"}, status=408, headers={"Connection": "close"}
            )
        topic = request.headers.get("X-WC-Webhook-Topic", "")
        delivery_id = request.headers.get("X-WC-Webhook-Delivery-ID", "")
        if body.startswith(b"webhook_id=") and not topic:
            self.stats.pings += 1
            return web.Response(text="ok")
        secret = self.secrets.get(store_id)
        if secret is None or not signature_valid(body, secret, request.headers.get("X-WC-Webhook-Signature")):
            self.stats.refused += 1
            log.warning("store %s: webhook refused: missing or invalid signature", store_id)
            return web.json_response({"error": "invalid signature"}, status=401)
        if not topic.startswith("order.") and topic not in CUSTOMER_TOPICS:
            self.stats.ignored += 1
            log.info("store %s: webhook topic %r is neither an order nor a customer change; ignored", store_id, topic)
            return web.json_response({"ignored": topic})
        if delivery_id and delivery_id in self._deliveries_seen[store_id]:
            self.stats.duplicates += 1
            return web.json_response({"duplicate": delivery_id})
        try:
            text = body.decode("utf-8")
            doc: Any = json.loads(text, parse_float=Decimal)
            doc_id = doc.get("id") if isinstance(doc, dict) else None
            if isinstance(doc_id, bool) or not isinstance(doc_id, int | str) or not str(doc_id).isdigit():
                raise ValueError(f"the id is not a whole number: {doc_id!r:.40}")
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return await self._dead_letter(store_id, topic, body, f"unreadable webhook body: {exc}")
        mismatch = body_fits_topic(topic, doc)
        if mismatch is not None:
            return await self._dead_letter(store_id, topic, body, f"webhook body does not fit its topic: {mismatch}")
        response = await self._accept(store, topic, text, doc, str(doc_id))
        if response.status == 202 and delivery_id:
            seen = self._deliveries_seen[store_id]
            seen[delivery_id] = None
            if len(seen) > DELIVERY_IDS_KEPT:
                seen.popitem(last=False)
        return response

    async def _accept(
        self, store: StoreConfig, topic: str, text: str, doc: dict[str, Any], doc_id: str
    ) -> web.Response:
        store_id = store.id
        if topic in CUSTOMER_TOPICS:
            modified = parse_time(doc.get("date_modified_gmt"), "UTC")
            customer = raw_customer_event(store, "WOOCOMMERCE", text, str(doc_id), "WEBHOOK", modified)
            return await self._publish(
                store_id, self.raw_customers_topic, str(doc_id), encode("raw_customer_event", customer)
            )
        order_id = doc_id
        if topic in UPSERT_TOPICS:
            context = base_context(store)
            source = self.sources.get(store_id)
            if source is not None:
                try:
                    context = (await source.contexts([(text, doc)]))[0]
                except Exception as exc:  # categories are an enrichment; the order must not wait on them
                    log.warning("store %s: no categories for webhook order %s: %s", store_id, order_id, exc)
            event = raw_order_event(
                store, "WOOCOMMERCE", text, str(order_id), "WEBHOOK",
                parse_time(doc.get("date_modified_gmt"), "UTC"), context,
            )  # fmt: skip
        elif topic == "order.deleted":
            confirmed = await self._confirm_delete(store_id, text, order_id)
            if isinstance(confirmed, web.Response):
                return confirmed
            event = raw_order_event(
                store, "WOOCOMMERCE", text, str(order_id), "WEBHOOK", confirmed, base_context(store), "DELETE"
            )
        else:
            self.stats.ignored += 1
            return web.json_response({"ignored": topic})
        value = encode("raw_order_event", event)
        try:
            await self.batcher.publish(f"{store_id}:{order_id}", value)
        except PublishError as exc:
            log.error("store %s: webhook event not acknowledged by Kafka: %s", store_id, exc)
            return web.json_response({"error": "not stored, try again"}, status=503)
        return self._accepted(store_id, str(order_id))

    async def _confirm_delete(self, store_id: str, text: str, order_id: str) -> dt.datetime | web.Response:
        """The store's time of the deletion, after asking the store: the signature does not cover the topic
        and a deletion body is only ``{"id": N}``, so a captured one could otherwise delete a live order."""
        source = self.sources.get(store_id)
        if source is None:
            return web.json_response({"error": "deletions are confirmed with the store's API: none"}, status=503)
        try:
            deleted_at = await source.deleted_at(int(order_id))
        except StoreError as exc:
            log.warning("store %s: could not confirm the deletion of order %s: %s", store_id, order_id, exc)
            return web.json_response({"error": "could not confirm the deletion with the store"}, status=503)
        if deleted_at is None:
            reason = f"order.deleted for order {order_id}, which the store still has (not trashed): not deleted"
            return await self._dead_letter(store_id, "order.deleted", text.encode(), reason)
        return deleted_at

    async def _publish(self, store_id: str, topic: str, doc_id: str, value: bytes) -> web.Response:
        """Answer 2xx only once Kafka has this request's event: WooCommerce will not send it again."""
        deliveries = Deliveries()
        self.publisher.publish(deliveries, topic, f"{store_id}:{doc_id}", value)
        try:
            await self.publisher.wait(deliveries, 30)
        except PublishError as exc:
            log.error("store %s: webhook event not acknowledged by Kafka: %s", store_id, exc)
            return web.json_response({"error": "not stored, try again"}, status=503)
        return self._accepted(store_id, doc_id)

    def _accepted(self, store_id: str, doc_id: str) -> web.Response:
        self.stats.accepted += 1
        self.board.accepted(store_id)
        return web.json_response({"accepted": doc_id}, status=202)

    async def _dead_letter(self, store_id: str, topic: str, body: bytes, reason: str) -> web.Response:
        self.stats.dead_letters += 1
        log.warning("store %s: %s", store_id, reason)
        headers = dead_letter_headers(reason, "webhook", store=store_id, webhook_topic=topic)
        deliveries = Deliveries()
        self.publisher.publish(deliveries, self.dlq_topic, store_id, body, list(headers))
        try:
            await self.publisher.wait(deliveries, 30)
        except PublishError:
            return web.json_response({"error": "not stored, try again"}, status=503)
        return web.json_response({"error": reason}, status=400)

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **self.stats.__dict__})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/webhooks/woocommerce/{store_id}", self.handle)
        app.router.add_get("/health", self.health)
        return app

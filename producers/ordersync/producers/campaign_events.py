"""Campaign events in: ``ordersync campaigns import FILE.csv --list L`` and a sending platform's signed
event webhooks (``POST /webhooks/campaigns/{list_id}`` on the webhook receiver), both onto
``campaign.events`` (docs/contract.md "Campaign events").

One event's fields, as CSV columns (header row, case-insensitive) or JSON object keys:

- ``type``: send, open, click or unsubscribe; ``campaign_id``; ``email`` (``contact_id`` may be given
  too and must then be the one derived from the e-mail); ``occurred_at``: ISO 8601 with its offset;
- optional: ``campaign_name``, ``channel`` (email, sms, push), ``holdout`` (a send to the holdout
  group: nothing was sent), ``machine`` (a machine open), ``url``, ``event_id`` (the platform's id;
  without one, an id derived from the event's fields, so a file imported twice makes no second event).

A row or object that does not fit is never dropped: it goes to the dead-letter topic with its reason
(the CSV's line number; the webhook answers 400 with the reasons and stores the good ones).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from ordersync.producers.contacts_import import ImportReport
from ordersync.producers.publisher import Deliveries, Publisher, PublishError
from ordersync.schemas import encode
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.identity import contact_id, normalise_email
from ordersync.schemas.records import CampaignEvent
from ordersync.schemas.signatures import SIGNATURE, SeenSignatures, verify

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("0f4b8f9e-3c1a-4e47-8a5d-2b7c9d1e6f30")
TYPES = ("SEND", "OPEN", "CLICK", "UNSUBSCRIBE")
CHANNELS = ("EMAIL", "SMS", "PUSH", "OTHER")
TRUE, FALSE = ("1", "true", "yes", "y"), ("", "0", "false", "no", "n")


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_EVENTS = 1000  # per webhook request: a platform sends more in several
SHOWN_REASONS = 20  # in a webhook's answer; the count says how many more


class BadEvent(ValueError):
    """The reason one row or object is not a campaign event."""


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name)
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadEvent(f"{name} must be true or false, not {text[:40]!r}")


def _text(fields: Mapping[str, Any], name: str, limit: int = 500) -> str | None:
    """A field as text, control characters (NUL, escapes) removed: they come from outside, and one NUL
    in a campaign name stopped the sink (PostgreSQL stores none)."""
    value = fields.get(name)
    if value is None:
        return None
    text = CONTROL.sub("", str(value)).strip()
    if len(text) > limit:
        raise BadEvent(f"{name} is longer than {limit} characters")
    return text or None


def event_from(fields: Mapping[str, Any], list_id: str, source: str, received_at: dt.datetime) -> CampaignEvent:
    """One campaign event from its fields; BadEvent says what does not fit."""
    kind = (_text(fields, "type") or "").upper()
    if kind not in TYPES:
        raise BadEvent(f"type must be one of {', '.join(t.lower() for t in TYPES)}, not {kind.lower()[:40]!r}")
    campaign = _text(fields, "campaign_id", 200)
    if campaign is None:
        raise BadEvent("campaign_id is missing")
    email = normalise_email(_text(fields, "email") or "")
    if email is None:
        raise BadEvent("email is missing or not an e-mail address")
    derived = contact_id(list_id, email)
    given = _text(fields, "contact_id")
    if given is not None and given != derived:
        raise BadEvent("contact_id is not the id of this e-mail in this list")
    when = _text(fields, "occurred_at")
    try:
        occurred = dt.datetime.fromisoformat(when or "")
    except ValueError:
        raise BadEvent(f"occurred_at is not an ISO 8601 time: {(when or '')[:40]!r}") from None
    if occurred.tzinfo is None:
        raise BadEvent("occurred_at has no UTC offset (say Z or +01:00: times are stored in UTC)")
    try:
        occurred = occurred.astimezone(dt.UTC)
    except OverflowError:
        raise BadEvent(f"occurred_at is out of range: {(when or '')[:40]!r}") from None
    channel = (_text(fields, "channel") or "EMAIL").upper()
    if channel not in CHANNELS:
        raise BadEvent(f"channel must be one of {', '.join(c.lower() for c in CHANNELS)}, not {channel.lower()[:40]!r}")
    holdout, machine = _flag(fields, "holdout"), _flag(fields, "machine")
    if holdout and kind != "SEND":
        raise BadEvent("holdout is for sends: a holdout recipient was sent nothing to open or click")
    event_id = _text(fields, "event_id", 200) or str(
        uuid.uuid5(NAMESPACE, f"{list_id}|{campaign}|{email}|{kind}|{occurred.isoformat()}")
    )
    return {
        "event_id": event_id,
        "list_id": list_id,
        "contact_id": derived,
        "email": email,
        "campaign_id": campaign,
        "campaign_name": _text(fields, "campaign_name", 200),
        "channel": cast(Any, channel),
        "type": cast(Any, kind),
        "occurred_at": occurred,
        "holdout": holdout,
        "machine": machine,
        "url": _text(fields, "url", 2000),
        "source": cast(Any, source),
        "received_at": received_at,
    }


def keyed(event: CampaignEvent) -> tuple[str, bytes]:
    """The event's Kafka key (its contact's) and value."""
    return f"{event['list_id']}:{event['email']}", encode("campaign_event", event)


def publish_event(publisher: Publisher, deliveries: Deliveries, topic: str, event: CampaignEvent) -> None:
    publisher.publish(deliveries, topic, *keyed(event))


def import_csv(path: Path, list_id: str, publisher: Publisher, topic: str, dlq_topic: str) -> ImportReport:
    """Every row onto ``topic``, or with its reason onto ``dlq_topic``; returns once Kafka has them all."""
    report = ImportReport()
    received = dt.datetime.now(dt.UTC)
    deliveries = Deliveries()
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        headers = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [name for name in ("type", "campaign_id", "email", "occurred_at") if name not in headers]
        if missing:
            raise ValueError(f"{path}: the header row lacks {', '.join(missing)}")
        line = 1
        while True:
            line += 1
            try:
                raw = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a field over the csv module's limit: this row, not the file
                key, reason = f"{list_id}:line-{line}", f"line {line}: {exc}"
                report.reject(publisher, deliveries, dlq_topic, key, {}, reason, "campaigns-import", path)
                continue
            row = {k.strip().lower(): (v or "") for k, v in raw.items() if k}
            try:
                event = event_from(row, list_id, "IMPORT", received)
            except BadEvent as exc:
                key, reason = f"{list_id}:line-{line}", f"line {line}: {exc}"
                report.reject(publisher, deliveries, dlq_topic, key, row, reason, "campaigns-import", path)
                continue
            publish_event(publisher, deliveries, topic, event)
            report.imported += 1
    publisher.wait_sync(deliveries)
    return report


class CampaignWebhook:
    """``POST /webhooks/campaigns/{list_id}``: a JSON array of events (or ``{"events": [...]}``), signed
    with ``X-Ordersync-Signature`` over the list and the body (ordersync.schemas.signatures). 401 without a valid
    signature, or with one already used (a replay within the tolerance window); 202 once Kafka
    holds every event; 400 naming each event that does not fit (those go to the dead-letter topic, the
    others are stored: the platform need not send them again); 503 if Kafka did not take them."""

    def __init__(
        self, publisher: Publisher, topic: str, dlq_topic: str, secret: bytes | None, lists: set[str],
        body_timeout_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.publisher, self.topic, self.dlq_topic = publisher, topic, dlq_topic
        self.body_timeout_s = body_timeout_s
        self.secret = secret
        self.lists = lists
        self.refused = 0
        self.seen = SeenSignatures()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/campaigns/{list_id}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        list_id = request.match_info["list_id"]
        try:  # a sender that trickles its body holds no connection for long
            body = await asyncio.wait_for(request.read(), self.body_timeout_s)
        except TimeoutError:
            return web.json_response(
                {"error": "the body did not arrive in time"}, status=408, headers={"Connection": "close"}
            )
        header = request.headers.get(SIGNATURE, "")
        # The list is signed with the body: a request signed for one list is refused by another.
        if self.secret is None or not verify(self.secret, header, body, time.time(), scope=list_id):
            self.refused += 1
            log.warning("campaign events for list %s refused: missing or invalid signature", list_id[:40])
            return web.json_response({"error": "invalid signature"}, status=401)
        if not self.seen.first(header):
            self.refused += 1
            log.warning("campaign events for list %s refused: a signature already used", list_id[:40])
            return web.json_response({"error": "this signature was used already"}, status=401)
        if list_id not in self.lists:
            return web.json_response({"error": f"no store feeds list {list_id!r}"}, status=404)
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return await self._refuse_body(list_id, body, f"unreadable JSON: {exc}")
        events = doc.get("events") if isinstance(doc, dict) else doc
        if not isinstance(events, list):
            return await self._refuse_body(list_id, body, 'expected a JSON array of events or {"events": [...]}')
        if len(events) > MAX_EVENTS:
            return web.json_response(
                {"error": f"{len(events)} events in one request: at most {MAX_EVENTS}, send the rest in more"},
                status=413,
            )
        # Checking and encoding a thousand events is CPU work: off the event loop, which serves everyone.
        good, bad = await asyncio.to_thread(self._check_all, events, list_id)
        deliveries = Deliveries()
        for key, value in good:
            self.publisher.publish(deliveries, self.topic, key, value)
        for reason, raw in bad:
            self._dead_letter(deliveries, list_id, raw, reason)
        try:
            await self.publisher.wait(deliveries, 30)
        except PublishError as exc:
            log.error("campaign events for list %s not acknowledged by Kafka: %s", list_id, exc)
            return web.json_response({"error": "not stored, try again"}, status=503)
        rejected = [reason for reason, _ in bad]
        answer: dict[str, Any] = {"accepted": len(good), "rejected": rejected[:SHOWN_REASONS]}
        if len(rejected) > SHOWN_REASONS:
            answer["more_rejected"] = len(rejected) - SHOWN_REASONS
        return web.json_response(answer, status=400 if rejected else 202)

    @staticmethod
    def _check_all(events: list[Any], list_id: str) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        """(key, encoded event) of each event that fits; (reason, its JSON) of each that does not."""
        received = dt.datetime.now(dt.UTC)
        good, bad = [], []
        for index, fields in enumerate(events):
            try:
                if not isinstance(fields, dict):
                    raise BadEvent("not a JSON object")
                good.append(keyed(event_from(fields, list_id, "WEBHOOK", received)))
            except BadEvent as exc:
                bad.append((f"event {index}: {exc}", json.dumps(fields).encode()))
        return good, bad

    def _dead_letter(self, deliveries: Deliveries, list_id: str, value: bytes, reason: str) -> None:
        headers = dead_letter_headers(reason, "campaigns-webhook", list=list_id)
        self.publisher.publish(deliveries, self.dlq_topic, list_id, value, list(headers))

    async def _refuse_body(self, list_id: str, body: bytes, reason: str) -> web.Response:
        deliveries = Deliveries()
        self._dead_letter(deliveries, list_id, body, reason)
        try:
            await self.publisher.wait(deliveries, 30)
        except PublishError:
            return web.json_response({"error": "not stored, try again"}, status=503)
        return web.json_response({"error": reason}, status=400)

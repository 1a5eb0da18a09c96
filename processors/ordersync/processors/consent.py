"""Marketing consent as statements (pure): each has its time and source, and the latest statement wins
(a withdrawal wins a tie). A contact keeps the statements that changed its consent (contact v3
``consent_history``, oldest first) and the time of the latest one it heard (``consent_at``; a later
restatement of the same consent moves it, so an older statement read late cannot win). Where statements
come from: docs/privacy.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from ordersync.processors.model import load_document, require_mapping
from ordersync.processors.values import NormaliseError, timestamp
from ordersync.schemas import consent as sources
from ordersync.schemas.records import ConsentStatement, Contact

MAX_HISTORY = 50  # the newest changes; a contact record stays small

TRUE_WORDS = {"1", "yes", "true", "on", "y", "subscribed", "opt-in", "optin", "granted"}
FALSE_WORDS = {"0", "no", "false", "off", "n", "", "unsubscribed", "opt-out", "optout", "denied"}


def statement(consent: bool, at: dt.datetime, source: str) -> ConsentStatement:
    return {"consent": consent, "at": at, "source": source}


def _rank(s: ConsentStatement) -> tuple[dt.datetime, bool]:
    return s["at"], not s["consent"]  # at the same time, a withdrawal outranks a consent


@dataclass(frozen=True)
class Consent:
    """A contact's consent as the statements it heard left it."""

    history: list[ConsentStatement]  # the changes, oldest first
    latest: ConsentStatement | None  # the latest statement heard (a restatement included)

    def hear(self, new: ConsentStatement) -> Consent | None:
        """After ``new``; None when it changes nothing (no later than the latest statement heard)."""
        if self.latest is not None and _rank(new) <= _rank(self.latest):
            return None
        if self.latest is not None and new["consent"] == self.latest["consent"]:
            return Consent(self.history, new)  # the same consent, stated later: not a change
        return Consent([*self.history, new][-MAX_HISTORY:], new)

    def on(self, contact: Contact) -> Contact:
        """``contact`` with this consent."""
        latest = self.latest
        return {
            **contact,
            "consent_history": self.history,
            "marketing_consent": latest["consent"] if latest else None,
            "consent_at": latest["at"] if latest else None,
        }


NONE = Consent([], None)


def heard(statements: list[ConsentStatement], start: Consent = NONE) -> tuple[Consent, bool]:
    """``start`` after each of ``statements``, and whether any changed it."""
    now, changed = start, False
    for s in statements:
        after = now.hear(s)
        if after is not None:
            now, changed = after, True
    return now, changed


def of(contact: Contact) -> Consent:
    """A contact record's consent. A record older than v3 has only its flag: a statement as of its update,
    sourced by its origin."""
    history = list(contact.get("consent_history") or [])
    flag, at = contact.get("marketing_consent"), contact.get("consent_at")
    if flag is None:
        return Consent(history, None)
    if at is None:
        refs = contact.get("store_customers") or []
        origin = (
            sources.IMPORT if contact["origin"] == "IMPORT" else sources.store(refs[0]["store_id"] if refs else "?")
        )
        legacy = statement(bool(flag), contact["updated_at"], origin)
        return Consent(history or [legacy], legacy)
    return Consent(history, statement(bool(flag), at, history[-1]["source"] if history else ""))


def statements_of(contact: Contact) -> list[ConsentStatement]:
    """What a record says, oldest first: its changes, then its latest statement when that is a later
    restatement."""
    c = of(contact)
    said = list(c.history)
    if c.latest is not None and (not said or _rank(c.latest) > _rank(said[-1])):
        said.append(c.latest)
    return said


def fold(existing: Contact, update: Contact) -> Consent | None:
    """``existing``'s consent after what ``update`` says; None when that changed nothing."""
    after, changed = heard(statements_of(update), of(existing))
    return after if changed else None


def word(value: Any) -> bool | None:
    """A consent plugin's stored value as a statement: given, refused, or None when it says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in TRUE_WORDS:
            return True
        if folded in FALSE_WORDS:
            return False
    return None


def prestashop(doc: dict[str, Any], modified: dt.datetime | None, tz: str, store_id: str) -> ConsentStatement | None:
    """PrestaShop's ``newsletter``/``optin`` flags: given since ``newsletter_date_add`` when it is set
    (the subscription's own date), else as of the customer's last change."""
    if doc.get("newsletter") is None and doc.get("optin") is None:
        return None
    subscribed = doc.get("newsletter") in (True, 1, "1")
    given = subscribed or doc.get("optin") in (True, 1, "1")
    since = None
    if subscribed:
        with contextlib.suppress(NormaliseError):  # a broken subscription date: the change's time serves
            since = timestamp(doc.get("newsletter_date_add"), tz, "newsletter_date_add")
    at = since or modified
    return statement(given, at, sources.store(store_id)) if at is not None else None


def of_customer(
    platform: str, document: str, modified: dt.datetime, tz: str, store_id: str, meta_key: str | None
) -> ConsentStatement | None:
    """What a store customer document (raw.customers) states of its marketing consent, if anything."""
    doc = require_mapping(load_document(document), "customer")
    if platform == "PRESTASHOP":
        return prestashop(
            doc.get("customer", doc) if isinstance(doc.get("customer"), dict) else doc, modified, tz, store_id
        )
    return woocommerce(doc, meta_key, modified, store_id)


def woocommerce(
    doc: dict[str, Any], meta_key: str | None, modified: dt.datetime | None, store_id: str
) -> ConsentStatement | None:
    """A WooCommerce document's consent, from the meta key the store's consent plugin writes (its
    ``meta_data`` list of {key, value}), as of the document's last change."""
    if not meta_key or modified is None or not isinstance(doc.get("meta_data"), list):
        return None
    for meta in doc["meta_data"]:
        if isinstance(meta, dict) and meta.get("key") == meta_key:
            given = word(meta.get("value"))
            return statement(given, modified, sources.store(store_id)) if given is not None else None
    return None

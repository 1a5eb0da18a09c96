"""Identities in the contract (docs/contract.md): a contact is its list and normalised e-mail, and its
``contact_id`` a UUIDv5 of that key, so every component and every replay computes the same ids."""

from __future__ import annotations

import re
import unicodedata
import uuid

# Fixed forever: changing it would change every contact_id.
CONTACT_NAMESPACE = uuid.UUID("6f1c7a52-1d3e-4c4e-9a57-0b7f3d2e9c10")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(raw: str | None) -> str | None:
    """Trimmed, NFC, lower-cased; None if it is not an e-mail address at all."""
    if raw is None:
        return None
    email = unicodedata.normalize("NFC", raw).strip().lower()
    return email if _EMAIL.match(email) else None


def contact_key(list_id: str, email: str) -> str:
    return f"{list_id}:{email}"


def contact_id(list_id: str, email: str) -> str:
    return str(uuid.uuid5(CONTACT_NAMESPACE, contact_key(list_id, email)))

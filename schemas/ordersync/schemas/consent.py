"""Where a marketing consent statement came from (``ConsentStatement.source`` of contact v3).

``store:{store_id}`` (the shop's newsletter/opt-in flag or its consent meta key), ``import`` (a contacts
CSV), ``unsubscribe:{campaign_id}`` (the campaign platform's unsubscribe event).
"""

from __future__ import annotations

IMPORT = "import"


def store(store_id: str) -> str:
    return f"store:{store_id}"


def unsubscribe(campaign_id: str) -> str:
    return f"unsubscribe:{campaign_id}"


def describe(source: str | None) -> str:
    """For people: "store ps1", "contacts import", "unsubscribed from campaign spring"."""
    kind, _, what = (source or "").partition(":")
    if kind == "store":
        return f"store {what}"
    if kind == "unsubscribe":
        return f"unsubscribed from campaign {what}"
    if kind == IMPORT:
        return "contacts import"
    return source or "unknown"

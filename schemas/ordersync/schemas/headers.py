"""Kafka headers on the ``orders`` topic: the record's version and deletion flag, readable without
decoding the value.

A consumer that keeps only the newest version per key (the sink, within a batch) can then decode just
that one. The value stays the truth: the headers are copied from it by the processor, the only writer of
``orders``. Messages without them (written before they existed, or by other tools) must be decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VERSION = "ordersync.version"
DELETED = "ordersync.deleted"


def order_headers(order: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    headers = [(VERSION, str(order["version"]).encode())]
    if order["deleted"]:
        headers.append((DELETED, b"true"))
    return headers


Headers = Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


def read_order_headers(headers: Headers | None) -> tuple[int, bool] | None:
    """(version, deleted) from a message's headers, or None if they do not say (then decode)."""
    version: int | None = None
    deleted = False
    for name, value in headers.items() if isinstance(headers, Mapping) else headers or ():
        raw = value.encode() if isinstance(value, str) else value
        if name == VERSION and raw is not None:
            try:
                version = int(raw)
            except ValueError:
                return None
        elif name == DELETED:
            deleted = raw == b"true"
    return None if version is None else (version, deleted)

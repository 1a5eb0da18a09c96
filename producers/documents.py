"""Splitting a store's list response into one document per order, each as its exact original text.

The raw topic keeps documents as received, so they are sliced out of the page rather than re-serialised
(re-serialising would lose PHP's ``\\/`` escaping and the exact number formats).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_DECODER = json.JSONDecoder(parse_float=Decimal)


class PageError(ValueError):
    pass


def split_array(text: str, start: int = 0) -> list[tuple[str, Any]]:
    """The elements of the JSON array beginning at ``text[start]``: (exact text, parsed value) pairs."""
    i = _skip(text, start)
    if i >= len(text) or text[i] != "[":
        raise PageError("expected a JSON array")
    i = _skip(text, i + 1)
    out: list[tuple[str, Any]] = []
    if i < len(text) and text[i] == "]":
        return out
    while True:
        try:
            value, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise PageError(f"malformed JSON array: {exc}") from exc
        out.append((text[i:end], value))
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            return out
        raise PageError("malformed JSON array: expected , or ]")


def split_resource_list(text: str, resource: str) -> list[tuple[str, Any]]:
    """PrestaShop lists: ``{"orders": [...]}``, or ``[]`` when nothing matched."""
    i = _skip(text, 0)
    if text[i : i + 1] == "[":
        return split_array(text, i)
    key = f'"{resource}"'
    at = text.find(key)
    if at < 0:
        raise PageError(f"expected a {resource!r} list")
    colon = text.index(":", at + len(key))
    return split_array(text, colon + 1)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i

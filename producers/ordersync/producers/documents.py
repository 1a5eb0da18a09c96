"""Splitting a store's list response into one document per order, each as its exact original text.

The raw topic keeps documents as received, so they are sliced out of the page rather than re-serialised
(re-serialising would lose PHP's ``\\/`` escaping and the exact number formats).

One bad document must not cost the others on its page: an element that is not valid UTF-8, does not
parse (or nests too deeply for the parser) is kept as a ``Rejected`` value in its place, with its raw
bytes and the reason, and the connector dead-letters it. Only a page whose elements cannot even be
told apart (cut off, not an array) is an error as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_DECODER = json.JSONDecoder(parse_float=Decimal)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


class PageError(ValueError):
    pass


@dataclass(frozen=True)
class Rejected:
    """A document that cannot be read: its bytes as received and why."""

    raw: bytes
    reason: str


def page_text(body: bytes) -> str:
    """A response body as text. Bytes that are not UTF-8 are kept as lone surrogates
    (``surrogateescape``), so the page still splits and only the documents holding them are rejected."""
    return body.decode("utf-8", "surrogateescape")


def raw_bytes(text: str) -> bytes:
    """The bytes ``text`` was decoded from by ``page_text``."""
    return text.encode("utf-8", "surrogateescape")


def _read_element(text: str, start: int) -> tuple[str, Any, int]:
    """(exact text, parsed value or Rejected, end index) of the JSON value at ``text[start]``."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError) as exc:
        end = _value_end(text, start)
        element = text[start:end]
        reason = "nested too deeply to parse" if isinstance(exc, RecursionError) else f"malformed JSON: {exc.msg}"
        return element, Rejected(raw_bytes(element), reason), end
    element = text[start:end]
    if not element.isascii():
        try:
            element.encode("utf-8")
        except UnicodeEncodeError as exc:
            return element, Rejected(raw_bytes(element), f"not valid UTF-8 (character {exc.start})"), end
    return element, value, end


def split_array(text: str, start: int = 0) -> list[tuple[str, Any]]:
    """The elements of the JSON array beginning at ``text[start]``: (exact text, parsed value) pairs,
    with a ``Rejected`` value for an element that cannot be read."""
    i = _skip(text, start)
    if i >= len(text) or text[i] != "[":
        raise PageError("expected a JSON array")
    i = _skip(text, i + 1)
    out: list[tuple[str, Any]] = []
    if i < len(text) and text[i] == "]":
        return out
    while True:
        element, value, end = _read_element(text, i)
        out.append((element, value))
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            return out
        raise PageError("malformed JSON array: expected , or ]")


def readable(documents: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The documents that are JSON objects: what reference data (states, products, ...) can use."""
    return [(text, doc) for text, doc in documents if isinstance(doc, dict)]


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


def _value_end(text: str, start: int) -> int:
    """Where the JSON value at ``text[start]`` ends, found by bracket depth and string quotes alone
    (no parsing), so that a value the parser refuses can still be cut out of its page."""
    depth, i, n = 0, start, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            match = _STRING.match(text, i)
            if match is None:
                break
            i = match.end()
            if depth == 0:
                return i
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif char == "," and depth == 0:
            return i
        i += 1
    raise PageError("malformed JSON array: a document is cut off")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i

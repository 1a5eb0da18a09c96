"""A segment's contacts as CSV, the same from the CLI and the web app.

Cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return, also after leading white space, which spreadsheets skip, and their full-width forms such
as the full-width equals sign (U+FF1D), which some spreadsheets read as ``=``) get a leading apostrophe: names come from shops'
customers and campaign names from sending platforms, so they are not trusted. A plain number (``-12.50``)
stays as it is. Text shown on a terminal has its control characters (escape sequences) made visible.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

COLUMNS = ("email", "first_name", "last_name", "list_id", "contact_id", "marketing_consent")
# marketing_consent as exported: what the contact stated, or empty when they never did
CONSENT_CELL = {True: "given", False: "withdrawn", None: ""}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def cell(value: Any) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    if NUMBER.fullmatch(text):
        return text
    start = unicodedata.normalize("NFKC", text[:1]), unicodedata.normalize("NFKC", text.lstrip()[:1])
    return "'" + text if any(s.startswith(FORMULA_STARTS) for s in start) else text


def printable(value: Any) -> str:
    """``value`` for a terminal: control characters (ESC and the rest of C0 and C1) shown escaped, so a
    name cannot move the cursor, change colours or rewrite what is on the screen."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in text)


def csv_rows(contacts: Iterable[Mapping[str, Any]]) -> Iterator[list[str]]:
    """The header, then one row per contact (a mapping with at least :data:`COLUMNS`)."""
    yield list(COLUMNS)
    for contact in contacts:
        yield [
            CONSENT_CELL[contact.get(column)] if column == "marketing_consent" else cell(contact[column])
            for column in COLUMNS
        ]

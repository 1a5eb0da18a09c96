"""A segment's contacts as CSV, the same from the CLI and the web app.

Cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return, also after leading white space, which spreadsheets skip) get a leading apostrophe: names
come from shops' customers, so they are not trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

COLUMNS = ("email", "first_name", "last_name", "list_id", "contact_id")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) or text.lstrip().startswith(FORMULA_STARTS) else text


def csv_rows(contacts: Iterable[Mapping[str, Any]]) -> Iterator[list[str]]:
    """The header, then one row per contact (a mapping with at least :data:`COLUMNS`)."""
    yield list(COLUMNS)
    for contact in contacts:
        yield [cell(contact[column]) for column in COLUMNS]

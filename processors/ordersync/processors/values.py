"""Parsing the loosely typed values stores send: money as exact decimals, ids, ints, timestamps."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

MONEY_PLACES = Decimal("0.000001")  # the contract's decimal scale (6)
MAX_MONEY = Decimal("99999999999999")  # precision 20, scale 6


class NormaliseError(ValueError):
    """The document cannot become a normalised order; the message says which field and why."""


class DocumentError(NormaliseError):
    """A store document of an unexpected shape: its message is what reading it raised."""


# What reading a store document of an unexpected shape raises (a field missing, of another type, a number
# out of range): that document's fault, so its event is dead-lettered.
DOCUMENT_ERRORS = (AttributeError, ArithmeticError, KeyError, TypeError, ValueError)


@contextmanager
def document_errors() -> Iterator[None]:
    """Around code that reads one store document, and only that: its errors become NormaliseError (the
    event is dead-lettered). The same errors anywhere else (the processor's own state, a bug) are not the
    event's, and stop the worker uncommitted."""
    try:
        yield
    except NormaliseError:
        raise
    except DOCUMENT_ERRORS as exc:
        raise DocumentError(f"{type(exc).__name__}: {exc}") from exc


def money(value: Any, field: str) -> Decimal:
    """A store amount ("12.50", "20.230000", 7.5, 3) as an exact Decimal; never via float.

    JSON numbers are parsed as Decimal at load time (``json.loads(parse_float=Decimal)``), so a
    WooCommerce ``price`` of 7.5 arrives here as Decimal("7.5"), not as a float.
    """
    if value is None or value == "":
        return Decimal("0.000000")
    if isinstance(value, (bool, float)):
        raise NormaliseError(f"{field}: {value!r} is not an exact amount")
    try:
        amount = Decimal(str(value).strip().replace(",", "")) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise NormaliseError(f"{field}: {value!r} is not an amount") from exc
    if not amount.is_finite():
        raise NormaliseError(f"{field}: {value!r} is not a finite amount")
    quantized = amount.quantize(MONEY_PLACES)
    if quantized != amount:
        raise NormaliseError(f"{field}: {value!r} has more than 6 decimal places")
    if abs(quantized) > MAX_MONEY:
        raise NormaliseError(f"{field}: {value!r} is out of range")
    return quantized


def ident(value: Any, field: str, *, required: bool = True) -> str | None:
    """An id as a string: PrestaShop sends "12" or 12 depending on version; 0 / "" / None mean none."""
    if value is None or value == "" or value == 0 or value == "0":
        if required:
            raise NormaliseError(f"{field}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise NormaliseError(f"{field}: {value!r} is not an id")
    text = str(value).strip()
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise NormaliseError(f"{field}: {value!r} is not an id")
    return text


def integer(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise NormaliseError(f"{field}: {value!r} is not an integer")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise NormaliseError(f"{field}: {value!r} is not an integer") from exc
    if number != number.to_integral_value() or abs(number) > 2**31 - 1:
        raise NormaliseError(f"{field}: {value!r} is not an integer")
    return int(number)


def text(value: Any) -> str | None:
    if value is None:
        return None
    out = str(value).strip()
    return out or None


def timestamp(value: Any, tz: str, field: str, *, required: bool = False) -> dt.datetime | None:
    """A store timestamp as aware UTC. Zone-less values are read in the store's zone ``tz``."""
    if value in (None, "", "0000-00-00 00:00:00", "0000-00-00"):
        if required:
            raise NormaliseError(f"{field}: missing")
        return None
    if not isinstance(value, str):
        raise NormaliseError(f"{field}: {value!r} is not a timestamp")
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise NormaliseError(f"{field}: {value!r} is not a timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    return parsed.astimezone(dt.UTC)


def second_reading(moment: dt.datetime, tz: str) -> dt.datetime | None:
    """When ``moment`` was read from a zone-less local time that the zone ``tz`` shows twice (the hour
    repeated when clocks go back), the later of the two readings, as UTC; None otherwise."""
    zone = zoneinfo.ZoneInfo(tz)
    wall = moment.astimezone(zone).replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset() or first.astimezone(dt.UTC) != moment.astimezone(dt.UTC):
        return None
    return second.astimezone(dt.UTC)


def gmt_timestamp(value: Any, field: str) -> dt.datetime | None:
    """WooCommerce ``*_gmt`` fields: zone-less but UTC."""
    return timestamp(value, "UTC", field)


def micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)

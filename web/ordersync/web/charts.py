"""Charts as plain geometry for server-rendered SVG (pure; the template draws what this returns)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: Decimal


def bars(series: list[tuple[str, Decimal]], width: float = 640, height: float = 180, gap: float = 4) -> list[Bar]:
    """One bar per (label, value), scaled so the largest fills ``height``; negative values (refunds larger
    than sales) are drawn as empty bars rather than below the axis."""
    if not series:
        return []
    top = max((v for _, v in series), default=Decimal(0))
    step = width / len(series)
    out = []
    for i, (label, value) in enumerate(series):
        h = float(value / top) * height if top > 0 and value > 0 else 0.0
        out.append(
            Bar(x=i * step + gap / 2, y=height - h, width=max(step - gap, 1.0), height=h, label=label, value=value)
        )
    return out


def periods(unit: str, since: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The starts of every day, week (Monday) or month from the one holding ``since`` to the one holding
    ``until``, as PostgreSQL's ``date_trunc`` names them (naive, UTC), so empty periods get a bar too."""
    start = since.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    end = until.replace(tzinfo=None)
    if unit == "week":
        start -= dt.timedelta(days=start.weekday())
    if unit == "month":
        start = start.replace(day=1)
    out = []
    while start <= end:
        out.append(start)
        if unit == "month":
            start = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        else:
            start += dt.timedelta(days=7 if unit == "week" else 1)
    return out

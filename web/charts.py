"""Charts as plain geometry for server-rendered SVG (pure; the template draws what this returns)."""

from __future__ import annotations

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

"""Chart geometry for the web app's SVG (pure)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.web.charts import bars, periods


def test_bars_scale_to_the_largest_and_sit_on_the_axis() -> None:
    drawn = bars([("a", Decimal("50")), ("b", Decimal("100")), ("c", Decimal("0"))], width=300, height=100, gap=0)
    assert [b.height for b in drawn] == [50.0, 100.0, 0.0]
    assert [b.y + b.height for b in drawn] == [100.0, 100.0, 100.0]
    assert [b.x for b in drawn] == [0.0, 100.0, 200.0]
    assert [b.value for b in drawn] == [Decimal("50"), Decimal("100"), Decimal("0")]


def test_negative_or_empty_series_draw_nothing_below_the_axis() -> None:
    assert bars([]) == []
    drawn = bars([("refunds", Decimal("-5")), ("sales", Decimal("10"))], height=100)
    assert drawn[0].height == 0.0 and drawn[1].height == 100.0
    assert all(b.height == 0.0 for b in bars([("x", Decimal("-1"))]))


def test_periods_cover_every_day_week_and_month_including_empty_ones() -> None:
    since = dt.datetime(2026, 1, 30, 15, 30, tzinfo=dt.UTC)  # a Friday
    until = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    months = periods("month", since, until)
    assert months == [dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 1)]
    weeks = periods("week", since, until)
    assert weeks[0] == dt.datetime(2026, 1, 26) and all(w.weekday() == 0 for w in weeks)
    assert weeks[-1] == dt.datetime(2026, 3, 2) and len(weeks) == 6
    days = periods("day", since, until)
    assert days[0] == dt.datetime(2026, 1, 30) and days[-1] == dt.datetime(2026, 3, 2) and len(days) == 32

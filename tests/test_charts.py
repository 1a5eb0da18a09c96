"""Chart geometry for the web app's SVG (pure)."""

from __future__ import annotations

from decimal import Decimal

from web.charts import bars


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

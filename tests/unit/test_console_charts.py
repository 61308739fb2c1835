"""The console's bar charts: bars scale to the largest magnitude, negative values hang below the axis."""

from __future__ import annotations

from controlplane.console.charts import HEIGHT, bar_chart


def test_positive_and_negative_bars_meet_at_the_axis() -> None:
    chart = bar_chart("c", "t", ["a", "b", "c"], [300, -100, 0])
    up, down, flat = chart.bars
    assert up.y + up.height == chart.axis_y and down.y == chart.axis_y
    assert up.height == 3 * down.height and flat.height == 0
    assert not up.negative and down.negative
    assert 0 < chart.axis_y < HEIGHT and up.x < down.x < flat.x


def test_no_values_and_all_zero_values_draw_no_bar_height() -> None:
    assert bar_chart("c", "t", [], []).bars == ()
    assert [bar.height for bar in bar_chart("c", "t", ["a", "b"], [0, 0]).bars] == [0, 0]

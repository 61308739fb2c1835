"""Charts as server-side SVG: no script and no inline style (the console's CSP allows neither), so they render
offline and in any browser. Here is the geometry; `templates/_bar_chart.html` draws it (autoescaped). Each chart
is an image with a title, and its page shows the same numbers in a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 720, 240
_LEFT, _BOTTOM, _TOP = 8, 28, 12


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int | Decimal
    shown: str  # the value as people read it (an amount with its currency)
    x: float
    y: float
    width: float
    height: float
    negative: bool


@dataclass(frozen=True, slots=True)
class BarChart:
    chart_id: str  # unique in its page: names the title the image is labelled by
    title: str
    bars: tuple[Bar, ...]
    axis_y: float
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[int | Decimal],
    shown: Callable[[int | Decimal], str] = str,
) -> BarChart:
    """Vertical bars, one per label; negative values hang below the axis. `shown` writes a value for people."""
    # Geometry only, never money: floats are fine here.
    top, bottom = float(max([0, *values])), float(min([0, *values]))
    span = (top - bottom) or 1.0
    plot = HEIGHT - _BOTTOM - _TOP
    axis = _TOP + plot * top / span
    slot = (WIDTH - _LEFT) / max(len(values), 1)
    bars = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot * abs(float(value)) / span
        bars.append(
            Bar(
                label=label,
                value=value,
                shown=shown(value),
                x=round(_LEFT + index * slot + slot * 0.15, 1),
                y=round(axis - height if value >= 0 else axis, 1),
                width=round(slot * 0.7, 1),
                height=round(height, 1),
                negative=value < 0,
            )
        )
    return BarChart(chart_id, title, tuple(bars), round(axis, 1))

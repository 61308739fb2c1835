"""Bar charts drawn on the server: the geometry of an SVG chart, which a template draws (`_bar_chart.html`).

No JavaScript and no inline style (the console's CSP allows neither): the SVG uses classes of console.css and
presentation attributes. Values may be negative (a month whose clawbacks exceed its commissions): bars grow up
or down from one baseline, scaled together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PLOT_HEIGHT = 160  # the tallest bar (or the tallest up plus the deepest down)
SLOT_WIDTH = 96  # one bar and the room around it for its value and label
BAR_WIDTH = 56
TOP = 24  # room for the value above the tallest bar
BOTTOM = 44  # room below the plot for a value under a negative bar and the month's label


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    negative: bool

    @property
    def center(self) -> float:
        return self.x + self.width / 2

    @property
    def value_y(self) -> float:
        """Where the value is written: above a bar that grows up, below one that grows down."""
        return self.y + self.height + 14 if self.negative else self.y - 6


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    baseline: float  # the y of zero
    label_y: float  # where the labels' baseline is
    bars: tuple[Bar, ...]


def bar_chart(points: Sequence[tuple[str, int]]) -> BarChart:
    """One bar per (label, value), left to right in the order given."""
    highest = max([0, *(value for _, value in points)])
    lowest = min([0, *(value for _, value in points)])
    span = (highest - lowest) or 1  # all zero: flat bars on the baseline
    baseline = TOP + PLOT_HEIGHT * highest / span
    bars = []
    for index, (label, value) in enumerate(points):
        height = PLOT_HEIGHT * abs(value) / span
        bars.append(
            Bar(
                label=label,
                value=value,
                x=index * SLOT_WIDTH + (SLOT_WIDTH - BAR_WIDTH) / 2,
                y=baseline - height if value >= 0 else baseline,
                width=BAR_WIDTH,
                height=height,
                negative=value < 0,
            )
        )
    height = TOP + PLOT_HEIGHT + BOTTOM
    return BarChart(
        width=max(1, len(points)) * SLOT_WIDTH,
        height=height,
        baseline=baseline,
        label_y=height - 8,
        bars=tuple(bars),
    )

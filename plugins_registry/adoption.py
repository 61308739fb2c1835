"""Plugin adoption in a calendar month (UTC), from the history of installs and trials. Pure: the shell reads the
history and the active tenants, this counts.

A month is `[start, end)`: a step at exactly 00:00 on the 1st belongs to the month it opens. The end of the
current month is now; a month that has not begun is refused. Per plugin: tenants with it installed just before
the end, and the installs, uninstalls, trials started and trials converted in the month (steps, not tenants: a
tenant that installs twice counts twice). `adoption_rate` is `tenants_with_plugins` (the active tenants with at
least one plugin installed at the end) over `active_tenants`, a decimal string of four places rounded half up,
or None without active tenants. A plugin's `installed_tenants` counts every tenant, active or not: it is the
history alone, while who was active is what the shell can tell (see `plugin_adoption`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from plugins_registry.errors import InvalidMonth, MonthInFuture

RATE_PLACES = 4


@dataclass(frozen=True, slots=True)
class Window:
    month: date  # its first day
    start: datetime
    end: datetime  # the next month's start, or now for the current month

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"


@dataclass(frozen=True, slots=True)
class PluginFigures:
    plugin_id: uuid.UUID
    slug: str
    installed_tenants: int
    installs: int
    uninstalls: int
    trials_started: int
    trials_converted: int


@dataclass(frozen=True, slots=True)
class Adoption:
    month: str
    adoption_rate: str | None
    tenants_with_plugins: int
    active_tenants: int
    plugins: tuple[PluginFigures, ...]


def parse_month(text: str) -> date:
    """`YYYY-MM` as the month's first day."""
    year, _, number = text.partition("-")
    digits = year + number
    if len(year) != 4 or len(number) != 2 or not (digits.isascii() and digits.isdigit()):
        raise InvalidMonth(f"{text!r} is not a month (YYYY-MM)")
    try:
        return date(int(year), int(number), 1)
    except ValueError:
        raise InvalidMonth(f"{text!r} is not a month (YYYY-MM)") from None


def window(month: date, now: datetime) -> Window:
    """The month's `[start, end)`; the current month ends now. A month after the current one is refused."""
    if (month.year, month.month) > (now.year, now.month):
        raise MonthInFuture(f"{month:%Y-%m} has not begun (it is {now:%Y-%m} now)")
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return Window(month, start, min(following, now))


def rate(numerator: int, denominator: int) -> str | None:
    """`numerator / denominator` to four places, half up, exactly (integers, no division rounding first)."""
    if denominator == 0:
        return None
    scale = 10**RATE_PLACES
    # floor(n * scale / d + 1/2) for n, d >= 0: half up.
    units = (2 * numerator * scale + denominator) // (2 * denominator)
    whole, fraction = divmod(units, scale)
    return f"{whole}.{fraction:0{RATE_PLACES}d}"


def adoption(
    span: Window,
    plugins: Iterable[tuple[uuid.UUID, str]],
    installed: Iterable[tuple[uuid.UUID, uuid.UUID]],
    steps: Mapping[tuple[uuid.UUID, str], int],
    active_tenants: frozenset[uuid.UUID],
) -> Adoption:
    """`plugins`: (id, slug) in the order shown; `installed`: (tenant_id, plugin_id) live at the month's end;
    `steps`: how many steps of each (plugin_id, kind) the month has; `active_tenants`: the denominator."""
    installed = list(installed)
    tenants_per_plugin = Counter(plugin_id for _, plugin_id in installed)
    adopters = {tenant_id for tenant_id, _ in installed} & active_tenants
    figures = tuple(
        PluginFigures(
            plugin_id=plugin_id,
            slug=slug,
            installed_tenants=tenants_per_plugin[plugin_id],
            installs=steps.get((plugin_id, "installed"), 0),
            uninstalls=steps.get((plugin_id, "uninstalled"), 0),
            trials_started=steps.get((plugin_id, "trial_started"), 0),
            trials_converted=steps.get((plugin_id, "trial_converted"), 0),
        )
        for plugin_id, slug in plugins
    )
    return Adoption(
        month=span.label,
        adoption_rate=rate(len(adopters), len(active_tenants)),
        tenants_with_plugins=len(adopters),
        active_tenants=len(active_tenants),
        plugins=figures,
    )

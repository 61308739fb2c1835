"""The README's "Webhook events" table documents every event a tenant's endpoint can receive, so a new one
cannot ship undocumented: each catalogue event with `webhook=True`, and each plugin lifecycle event; and for each
catalogued one, exactly the keys its `data` carries.

The chain from producer to documentation: a producer's `data` must have exactly its event's catalogued keys
(`notify` refuses any other set, and every producer runs in the integration tests), and here the catalogued keys
must be exactly the documented ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from billing.notices.rules import CHANGES
from tenants.notifications.events import EVENTS

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> dict[str, str]:
    """Each type named in the first column of the section's table, with its row's second column."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Webhook events\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    # A column may hold `\|` (an escaped bar between alternatives): split on the bars that are not.
    cells = [re.split(r"(?<!\\)\|", row) for row in rows]
    return {name: cell[2] for cell in cells for name in re.findall(r"`([a-z_]+\.[a-z_]+)`", cell[1])}


def _documented_types() -> set[str]:
    return set(_rows())


def _documented_keys(column: str) -> set[str]:
    """The keys a row documents: its backticked names outside parentheses (which hold values and remarks)."""
    return set(re.findall(r"`([a-z_0-9]+)`", re.sub(r"\([^()]*\)", "", column)))


def _plugin_event_types() -> set[str]:
    """Plugin events are not catalogued: the registry's services name them where they record them."""
    sources = (ROOT / "plugins_registry" / "service").glob("*.py")
    return {name for path in sources for name in re.findall(r'"((?:plugin|license)\.[a-z_]+)"', path.read_text())}


def test_every_webhook_event_is_documented_and_nothing_else() -> None:
    documented = _documented_types()
    catalogued = {event.name for event in EVENTS.values() if event.webhook}
    plugin = _plugin_event_types()
    assert len(catalogued) >= 10 and len(plugin) >= 14  # not vacuous: both sources were read
    assert catalogued - documented == set(), "webhook events missing from README's Webhook events"
    assert plugin - documented == set(), "plugin events missing from README's Webhook events"
    # No email-only or partner event is documented as a webhook, and no name is made up.
    assert documented - catalogued - plugin == set()


@pytest.mark.parametrize("event", sorted(name for name, kind in EVENTS.items() if kind.webhook))
def test_each_webhook_events_documented_data_is_exactly_what_its_producer_sends(event: str) -> None:
    documented = _documented_keys(_rows()[event])
    assert EVENTS[event].data, event  # not vacuous: the catalogue names the keys
    assert documented == set(EVENTS[event].data), f"README's keys of {event} differ from the catalogue's"


def test_the_documented_subscription_changes_are_the_ones_billing_names() -> None:
    column = _rows()["subscription.updated"]
    (values,) = re.findall(r"`changes` \(([^()]*)\)", column)
    assert set(re.findall(r"`([a-z_]+)`", values)) == set(CHANGES)

"""The README's "Webhook events" table documents every event a tenant's endpoint can receive, so a new one
cannot ship undocumented: each catalogue event with `webhook=True`, and each plugin lifecycle event."""

from __future__ import annotations

import re
from pathlib import Path

from tenants.notifications.events import EVENTS

ROOT = Path(__file__).resolve().parents[2]


def _documented_types() -> set[str]:
    """The types named in the first column of the section's table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Webhook events\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+\.[a-z_]+)`", row.split("|")[1])}


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

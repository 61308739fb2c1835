"""Use cases of the plugin registry; each opens its own transaction."""

from plugins_registry.service._activations import activate, deactivate, heartbeat, list_activations, release_stale
from plugins_registry.service._catalogue import (
    create_plugin,
    create_publisher,
    get_plugin,
    get_publisher,
    list_plugins,
    list_publishers,
    list_versions,
    publish_version,
    yank_version,
)
from plugins_registry.service._delivery import deliver_due, recent_events
from plugins_registry.service._entitlements import check
from plugins_registry.service._installs import install, list_installs, require_plugin, rollback, uninstall, update
from plugins_registry.service._licenses import (
    expire_due,
    get_license,
    list_licenses,
    outbox,
    refresh,
    renew_on_payment,
    revocations,
    revoke_for_erased_tenant,
)
from plugins_registry.service._signing import Licensing, Signer, public_keys

__all__ = [
    "Licensing",
    "Signer",
    "activate",
    "check",
    "create_plugin",
    "create_publisher",
    "deactivate",
    "deliver_due",
    "expire_due",
    "get_license",
    "get_plugin",
    "get_publisher",
    "heartbeat",
    "install",
    "list_activations",
    "list_installs",
    "list_licenses",
    "list_plugins",
    "list_publishers",
    "list_versions",
    "outbox",
    "public_keys",
    "publish_version",
    "recent_events",
    "refresh",
    "release_stale",
    "renew_on_payment",
    "require_plugin",
    "revocations",
    "revoke_for_erased_tenant",
    "rollback",
    "uninstall",
    "update",
    "yank_version",
]

"""Piccolo's configuration: the shared engine and the apps whose migrations `db migrate` runs."""

from piccolo.conf.apps import AppRegistry

from controlplane.core.db import ENGINE as DB

APP_REGISTRY = AppRegistry(apps=["tenants.piccolo_app", "billing.piccolo_app", "plugins_registry.piccolo_app"])

__all__ = ["APP_REGISTRY", "DB"]

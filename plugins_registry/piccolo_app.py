import os

from piccolo.conf.apps import AppConfig

from plugins_registry.tables import (
    License,
    LicenseActivation,
    Plugin,
    PluginInstall,
    PluginInstallEvent,
    PluginVersion,
    Publisher,
)

APP_CONFIG = AppConfig(
    app_name="plugins_registry",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[Publisher, Plugin, PluginVersion, PluginInstall, PluginInstallEvent, License, LicenseActivation],
    migration_dependencies=["billing.piccolo_app"],
)

"""Plugin registry: catalogue, installs, licenses and entitlements (to come)."""

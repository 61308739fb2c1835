"""Add-ons: plugin charges attached to a subscription."""

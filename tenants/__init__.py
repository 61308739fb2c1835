"""Tenants, users, memberships, roles, API keys and audit."""

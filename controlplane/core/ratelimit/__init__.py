"""Rate limits per API key, tenant, person and client address (issue 17)."""

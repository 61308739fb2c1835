"""Prepaid credits: a wallet per tenant and currency, its top-ups, grants, applications and expiries."""

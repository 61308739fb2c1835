"""Escrow: funds held for a payee and released per milestone."""

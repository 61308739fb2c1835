"""Metrics and plans: the catalogue that every subscription prices from."""

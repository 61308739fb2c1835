"""Billing: plans, subscriptions, usage, invoices, payments, escrow and the ledger (to come)."""

"""Billing: the catalogue, subscriptions, usage, invoices, payments, escrow, the ledger and reseller commissions."""

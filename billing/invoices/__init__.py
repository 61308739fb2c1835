"""Invoices: totals (pure), drafts, finalization, credit notes, and the billing cycle that makes them."""

"""Card disputes: recorded from Stripe's events, booked in the ledger, decided once (won or lost)."""

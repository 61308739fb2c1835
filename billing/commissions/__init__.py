"""Reseller commissions: the maths (pure), month close, statements, clawback and payouts."""

"""Payments through Stripe: amounts, the gateway, collection and dunning, refunds, Stripe's webhooks."""

"""Subscriptions: their lifecycle and states (pure), trials, changes, and erasure as billing sees it."""

"""Small stateful test doubles for what the dev stack's own doubles lack (see each module)."""

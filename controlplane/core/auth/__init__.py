"""Authentication primitives: token signing, API-key format, passwords, the sign-in throttle, the principal."""

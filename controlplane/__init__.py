"""Control plane: the composition root and platform services."""

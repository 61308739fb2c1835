"""Revenue analytics: MRR history, recorded as it changes, and the figures computed from it."""

"""Revenue analytics: the MRR history, recorded as MRR changes, and the figures computed from it (MRR movements,
churn, retention, ARPA, CLV and trial conversion)."""

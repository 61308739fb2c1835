"""Revenue analytics: MRR movements, churn, retention, ARPA, CLV and trial conversion from the MRR history."""

"""Benchmarks of the billing engine (`make bench`): usage ingestion and the billing run. Reports, not tests."""

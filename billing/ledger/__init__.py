"""The double-entry ledger: journal rules (pure), postings and the books' verification."""

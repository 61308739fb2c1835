"""Fixtures of the API suite.

Password hashing uses argon2id at production cost (about 0.2 s a hash on a busy CI machine), and every
test signs several people in: the suite swaps in a cheap argon2id so that it stays fast. What is tested
(the right password works, a wrong one does not) does not depend on the cost parameters, which each hash
carries with it.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from controlplane.core.auth import passwords

_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_HASHER", _CHEAP_HASHER)

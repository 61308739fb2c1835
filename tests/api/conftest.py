"""Fixtures of the API suite.

Password hashing uses argon2id at production cost (about 0.2 s a hash on a busy CI machine), and every
test signs several people in: the suite swaps in a cheap argon2id so that it stays fast. What is tested
(the right password works, a wrong one does not) does not depend on the cost parameters, which each hash
carries with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar

from controlplane.core.auth import passwords
from controlplane.core.ratelimit.policy import Limit, LimitClass
from tests.api._rate_limits import ROOMY, limiter_of

_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_HASHER", _CHEAP_HASHER)


@pytest.fixture
def limits(app: Litestar, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`limits(limit_class, client=…, tenant=…)`: this test's budgets for a class (the others stay unreached)."""
    limiter = limiter_of(app)

    def set_limits(limit_class: LimitClass, *, client: Limit = ROOMY, tenant: Limit = ROOMY) -> None:
        current = limiter.limits.with_client(limit_class, client)
        if limit_class is not LimitClass.UNAUTHENTICATED:
            current = current.with_tenant(limit_class, tenant)
        monkeypatch.setattr(limiter, "limits", current)

    yield set_limits

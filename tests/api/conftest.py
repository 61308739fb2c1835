"""Fixtures of the API suite. (Passwords are hashed at argon2's cheapest cost in every suite: tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar

from controlplane.core.ratelimit.policy import Limit, LimitClass
from tests.api._rate_limits import ROOMY, limiter_of


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

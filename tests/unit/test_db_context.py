"""A transaction's context is set by BEGIN's own statement, with its values inlined: only a UUID's text or a
fixed word may be, never anything that would need quoting."""

from __future__ import annotations

import uuid

import pytest

from controlplane.core.db import _begin_with


def test_begin_sets_each_setting_locally_in_one_statement() -> None:
    tenant = uuid.UUID("4e5f25ad-2d82-40cb-a726-0c876807e5c0")
    assert _begin_with({"tenant_id": str(tenant), "scope": "tenant"}) == (
        "BEGIN; SELECT set_config('app.tenant_id', '4e5f25ad-2d82-40cb-a726-0c876807e5c0', true), "
        "set_config('app.scope', 'tenant', true)"
    )


@pytest.mark.parametrize("value", ["", "x'; drop table tenants; --", "Tenant", "a b", "é", "x" * 65, "a\x00"])
def test_anything_that_would_need_quoting_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a context value"):
        _begin_with({"scope": value})

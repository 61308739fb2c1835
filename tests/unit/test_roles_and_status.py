import pytest

from tenants.roles import Permission, Role, may_grant, role_allows
from tenants.status import TenantState, TenantStatus, next_state, service_denial


def test_admin_may_do_everything_in_a_tenant_but_staff_work() -> None:
    for permission in Permission:
        assert role_allows(Role.TENANT_ADMIN, permission) == (permission is not Permission.STAFF_ONLY)


@pytest.mark.parametrize("role", [Role.TENANT_MEMBER, Role.BILLING_VIEWER])
def test_non_admins_cannot_manage(role: Role) -> None:
    for permission in (Permission.MANAGE_TENANT, Permission.MANAGE_MEMBERS, Permission.MANAGE_API_KEYS):
        assert not role_allows(role, permission)
    assert role_allows(role, Permission.READ_TENANT)


def test_unknown_or_missing_roles_allow_nothing() -> None:
    assert not role_allows(None, Permission.READ_TENANT)
    assert not role_allows("owner", Permission.READ_TENANT)


def test_a_role_as_the_database_stores_it_its_text_allows_as_the_role() -> None:
    assert role_allows("billing_viewer", Permission.READ_BILLING)
    assert not role_allows("billing_viewer", Permission.READ_MEMBERS)


def test_only_admins_grant_and_only_tenant_roles() -> None:
    assert may_grant("tenant_admin", "billing_viewer")
    assert not may_grant("tenant_member", "tenant_member")
    assert not may_grant("tenant_admin", "platform_staff")


A, S, E = TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.PENDING_DELETION


def _state(status: TenantStatus, staff: bool = False, billing: bool = False) -> TenantState:
    return TenantState(status, suspended_by_staff=staff, suspended_for_non_payment=billing)


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (_state(A), "suspend", _state(S, staff=True)),
        (_state(S, staff=True), "suspend", _state(S, staff=True)),
        (_state(S, staff=True), "reactivate", _state(A)),
        (_state(A), "reactivate", _state(A)),
        (_state(E), "reactivate", None),
        (_state(E), "suspend", None),
        (_state(A), "explode", None),
    ],
)
def test_status_machine(current: TenantState, action: str, expected: TenantState | None) -> None:
    assert next_state(current, action) == expected


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (_state(A), "suspend_for_non_payment", _state(S, billing=True)),
        # Recorded whatever the status: a tenant staff suspended owes the invoice too.
        (_state(S, staff=True), "suspend_for_non_payment", _state(S, staff=True, billing=True)),
        (_state(E), "suspend_for_non_payment", _state(E, billing=True)),
        (_state(S, billing=True), "lift_non_payment_suspension", _state(A)),
        # Lifted from any status; active again only when suspended for that reason alone.
        (_state(S, staff=True, billing=True), "lift_non_payment_suspension", _state(S, staff=True)),
        (_state(A, billing=True), "lift_non_payment_suspension", _state(A)),
        (_state(E, billing=True), "lift_non_payment_suspension", _state(E)),  # a payment never revives one
        (_state(A), "erase", _state(E)),
        (_state(S, staff=True), "erase", _state(E, staff=True)),
        (_state(E), "erase", _state(E)),
    ],
)
def test_billing_moves_the_tenant_status_only_through_the_status_machine(
    current: TenantState, action: str, expected: TenantState | None
) -> None:
    assert next_state(current, action) == expected


@pytest.mark.parametrize("staff", [False, True])
def test_staff_reactivate_a_tenant_suspended_for_non_payment_only_by_lifting_it(staff: bool) -> None:
    suspended = _state(S, staff=staff, billing=True)
    assert next_state(suspended, "reactivate") is None
    assert next_state(suspended, "reactivate_lifting_non_payment") == _state(A)
    assert next_state(suspended, "suspend") == _state(S, staff=True, billing=True)


@pytest.mark.parametrize(
    ("status", "for_non_payment", "denial"),
    [
        (TenantStatus.ACTIVE, False, None),
        (TenantStatus.SUSPENDED, False, "tenant_suspended"),
        (TenantStatus.SUSPENDED, True, "tenant_suspended_for_non_payment"),
        (TenantStatus.PENDING_DELETION, True, "tenant_erased"),
    ],
)
def test_a_suspended_or_erased_tenant_gets_no_service(
    status: TenantStatus, for_non_payment: bool, denial: str | None
) -> None:
    assert service_denial(status, for_non_payment) == denial

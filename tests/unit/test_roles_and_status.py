import pytest

from tenants.roles import Permission, Role, may_grant, role_allows
from tenants.status import TenantStatus, next_status, service_denial


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


def test_only_admins_grant_and_only_tenant_roles() -> None:
    assert may_grant("tenant_admin", "billing_viewer")
    assert not may_grant("tenant_member", "tenant_member")
    assert not may_grant("tenant_admin", "platform_staff")


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (TenantStatus.ACTIVE, "suspend", TenantStatus.SUSPENDED),
        (TenantStatus.SUSPENDED, "suspend", TenantStatus.SUSPENDED),
        (TenantStatus.SUSPENDED, "reactivate", TenantStatus.ACTIVE),
        (TenantStatus.ACTIVE, "reactivate", TenantStatus.ACTIVE),
        (TenantStatus.PENDING_DELETION, "reactivate", None),
        (TenantStatus.PENDING_DELETION, "suspend", None),
        (TenantStatus.ACTIVE, "explode", None),
    ],
)
def test_status_machine(current: TenantStatus, action: str, expected: TenantStatus | None) -> None:
    assert next_status(current, action) == expected


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (TenantStatus.ACTIVE, "suspend_for_non_payment", TenantStatus.SUSPENDED),
        (TenantStatus.SUSPENDED, "suspend_for_non_payment", None),  # staff's suspension stands
        (TenantStatus.PENDING_DELETION, "suspend_for_non_payment", None),
        (TenantStatus.SUSPENDED, "lift_non_payment_suspension", TenantStatus.ACTIVE),
        (TenantStatus.PENDING_DELETION, "lift_non_payment_suspension", None),  # a payment never revives one
        (TenantStatus.ACTIVE, "erase", TenantStatus.PENDING_DELETION),
        (TenantStatus.SUSPENDED, "erase", TenantStatus.PENDING_DELETION),
        (TenantStatus.PENDING_DELETION, "erase", TenantStatus.PENDING_DELETION),
    ],
)
def test_billing_moves_the_tenant_status_only_through_the_status_machine(
    current: TenantStatus, action: str, expected: TenantStatus | None
) -> None:
    assert next_status(current, action) == expected


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

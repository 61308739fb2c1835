"""Bad input is refused with problem+json and a stable code, and nothing is written.

Each case runs against a small world (a tenant with a billing email, its admin and an API key); what staff
can see through the API before and after must be identical.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, create_api_key
from tests.factories import Actor, Factory

VALID_TENANT = {"name": "New", "slug": "new-tenant", "currency": "EUR"}
ONE_MIB = 1024 * 1024


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _tenant_body_of(size: int) -> bytes:
    """A tenant body of exactly `size` bytes: at the size limit, only the (too long) name is wrong."""
    empty = json.dumps({**VALID_TENANT, "name": ""}).encode()
    body = json.dumps({**VALID_TENANT, "name": "n" * (size - len(empty))}).encode()
    assert len(body) == size
    return body


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with tenant, admin (user id) and key (API key id)
    status: int
    code: str | None
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    as_staff: bool = False  # a tenant's path requested by staff rather than its admin


JSON = {"content-type": "application/json"}

CASES: dict[str, Case] = {
    # -- bodies that are not JSON, or not an object ----------------------------------------------
    "malformed json": Case("POST", "/v1/tenants", 400, "bad_request", content=b'{"name": "x",', headers=JSON),
    "truncated json": Case("PATCH", "/v1/tenants/{tenant}", 400, "bad_request", content=b'{"name": ', headers=JSON),
    "json array": Case("POST", "/v1/tenants", 400, "validation_error", json=[VALID_TENANT]),
    "json null": Case("POST", "/v1/tenants", 400, "validation_error", content=b"null", headers=JSON),
    "empty body": Case("POST", "/v1/tenants", 400, "validation_error", content=b"", headers=JSON),
    "form body": Case(
        "POST",
        "/v1/tenants",
        400,
        None,
        content=b"name=New&slug=new&currency=EUR",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    # -- wrong types ------------------------------------------------------------------------------
    "name is a number": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": 42}),
    "currency is a list": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": ["EUR"]}
    ),
    "reseller id not a uuid": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "reseller_id": "not-a-uuid"}
    ),
    "patch name is a bool": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"name": True}),
    "patch currency null": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"currency": None}),
    "role is a number": Case(
        "PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={"role": 1}
    ),
    # -- unknown fields: refused, never stored ----------------------------------------------------
    "create with status": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "status": "suspended"}
    ),
    "create with id": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "id": str(uuid.uuid4())}
    ),
    "patch status": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"status": "active"}),
    "patch slug": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"name": "X", "slug": "moved"}),
    "member with staff flag": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "n@example.com", "role": "tenant_member", "is_platform_staff": True},
    ),
    "api key with chosen secret": Case(
        "POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={"name": "k", "secret": "cpk_chosen"}
    ),
    # -- missing fields ---------------------------------------------------------------------------
    "create without currency": Case(
        "POST", "/v1/tenants", 400, "currency_required", json={"name": "New", "slug": "new-tenant"}
    ),
    "create empty object": Case("POST", "/v1/tenants", 400, "validation_error", json={}),
    "member without role": Case(
        "POST", "/v1/tenants/{tenant}/members", 400, "validation_error", json={"email": "n@example.com"}
    ),
    "api key without name": Case("POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={}),
    "role change without role": Case("PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={}),
    # -- values out of pattern or range ----------------------------------------------------------
    "currency lower case": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "eur"}
    ),
    "currency too long": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "EURO"}
    ),
    "currency digits": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "E1R"}),
    "patch currency": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"currency": "usd"}),
    "slug upper case": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "New"}),
    "slug leading dash": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "-new"}),
    "slug trailing dash": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "new-"}),
    "slug underscore": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "new_t"}),
    "slug too long": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "a" * 64}),
    "slug empty": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": ""}),
    "name empty": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": ""}),
    "name too long": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": "n" * 201}),
    "name with NUL": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": "a\x00b"}),
    # Characters that break a line where a name is drawn (documents, emails): C1 controls, NEL, U+2028/9.
    "name with line separator": Case(
        "POST",
        "/v1/tenants",
        400,
        "validation_error",
        json={**VALID_TENANT, "name": "Acme\u2028Tax ID: FR999\u2028PAID IN FULL"},
    ),
    "patch name with next line": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"name": "Acme\x85PAID"}
    ),
    "profile address with paragraph separator": Case(
        "PUT",
        "/v1/tenants/{tenant}/billing-profile",
        400,
        "validation_error",
        json={"address": {"line1": "1 Road\u2029PAID IN FULL", "city": "Berlin", "country": "DE"}},
    ),
    "profile contact with C1 control": Case(
        "PUT", "/v1/tenants/{tenant}/billing-profile", 400, "validation_error", json={"contact_name": "Jane\x9bRoe"}
    ),
    "billing email invalid": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": "not-an-email"}
    ),
    "member email invalid": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "nobody", "role": "tenant_member"},
    ),
    # An address is one address: a list, a display name, a quoted or commented part would mail someone else too.
    "billing email two addresses": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": "me@evil.com,postmaster"}
    ),
    "billing email display name": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": "Me <me@evil.com>"}
    ),
    "billing email quoted": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": '"a,b"@evil.com'}
    ),
    "billing email comment": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": "me@evil.com(postmaster)"}
    ),
    "new tenant billing email list": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "billing_email": "a@x.com;b@y.com"}
    ),
    "member email two addresses": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "me@evil.com,postmaster@example.com", "role": "tenant_member"},
    ),
    "member role platform staff": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "n@example.com", "role": "platform_staff"},
    ),
    "promote to platform staff": Case(
        "PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={"role": "platform_staff"}
    ),
    "api key role owner": Case(
        "POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={"name": "k", "role": "owner"}
    ),
    # -- too large ------------------------------------------------------------------------------------
    "body over 1 MiB": Case(
        "POST", "/v1/tenants", 413, "request_too_large", json={**VALID_TENANT, "name": "n" * (ONE_MIB + 1)}
    ),
    "body over 1 MiB with a key": Case(
        "POST",
        "/v1/tenants",
        413,
        "request_too_large",
        json={**VALID_TENANT, "name": "n" * (ONE_MIB + 1)},
        headers={"Idempotency-Key": "big"},
    ),
    "patch over 1 MiB": Case(
        "PATCH", "/v1/tenants/{tenant}", 413, "request_too_large", json={"name": "n" * (ONE_MIB + 1)}
    ),
    "body of exactly 1 MiB": Case(
        "POST", "/v1/tenants", 400, "validation_error", content=_tenant_body_of(ONE_MIB), headers=JSON
    ),
    "body of exactly 1 MiB with a key": Case(
        "POST",
        "/v1/tenants",
        400,
        "validation_error",
        content=_tenant_body_of(ONE_MIB),
        headers={**JSON, "Idempotency-Key": "exactly"},
    ),
    "body of 1 MiB and a byte with a key": Case(
        "POST",
        "/v1/tenants",
        413,
        "request_too_large",
        content=_tenant_body_of(ONE_MIB + 1),
        headers={**JSON, "Idempotency-Key": "one-more"},
    ),
    # -- ids in paths that are not UUIDs ---------------------------------------------------------
    "tenant id not a uuid": Case("GET", "/v1/tenants/not-a-uuid", 404, "not_found"),
    "patch tenant id number": Case("PATCH", "/v1/tenants/12345", 404, "not_found", json={"name": "x"}),
    "delete tenant id sql": Case("DELETE", "/v1/tenants/1 or 1=1", 404, "not_found"),
    "suspend tenant id not a uuid": Case("POST", "/v1/tenants/xyz/suspend", 404, "not_found"),
    "member id not a uuid": Case("DELETE", "/v1/tenants/{tenant}/members/not-a-uuid", 404, "not_found"),
    "api key id not a uuid": Case("DELETE", "/v1/tenants/{tenant}/api-keys/{tenant}x", 404, "not_found"),
    # -- pagination -----------------------------------------------------------------------------------
    "cursor garbage": Case("GET", "/v1/tenants", 422, "invalid_cursor", params={"cursor": "garbage!"}),
    "cursor without separator": Case(
        "GET",
        "/v1/tenants/{tenant}/members",
        422,
        "invalid_cursor",
        params={"cursor": _cursor("2024-01-01T00:00:00+00:00")},
    ),
    "cursor with a bad uuid": Case(
        "GET",
        "/v1/tenants/{tenant}/api-keys",
        422,
        "invalid_cursor",
        params={"cursor": _cursor("2024-01-01T00:00:00+00:00|not-a-uuid")},
    ),
    "cursor naive timestamp": Case(
        "GET",
        "/v1/tenants/{tenant}/audit-events",
        422,
        "invalid_cursor",
        params={"cursor": _cursor(f"2024-01-01T00:00:00|{uuid.uuid4()}")},
    ),
    "cursor bad timestamp": Case(
        "GET", "/v1/tenants", 422, "invalid_cursor", params={"cursor": _cursor(f"yesterday|{uuid.uuid4()}")}
    ),
    "cursor not utf-8": Case(
        "GET",
        "/v1/tenants",
        422,
        "invalid_cursor",
        params={"cursor": base64.urlsafe_b64encode(b"\xff\xfe|\xff").decode()},
    ),
    "cursor too long": Case("GET", "/v1/tenants", 400, "validation_error", params={"cursor": "a" * 201}),
    "limit over 100": Case("GET", "/v1/tenants/{tenant}/members", 400, "validation_error", params={"limit": 101}),
    "limit zero": Case("GET", "/v1/tenants", 400, "validation_error", params={"limit": 0}),
    "limit not a number": Case(
        "GET", "/v1/tenants/{tenant}/audit-events", 400, "validation_error", params={"limit": "ten"}
    ),
    # -- methods and routes that do not exist ------------------------------------------------------
    "unknown route": Case("GET", "/v1/nothing-here", 404, "not_found"),
    "method not allowed": Case("PUT", "/v1/tenants/{tenant}", 405, "method_not_allowed", json=VALID_TENANT),
}

# -- numbers and moments that reach money or a date (billing, tenants' terms, plugins) ---------------------
# Every bound comes from billing.limits; each extreme is refused with a 4xx problem before anything is written.
SOME_ID = "00000000-0000-4000-8000-000000000001"
HUGE_TEXT = "9" * 5000
EXTREMES: dict[str, Any] = {"-1": -1, "2^63": 2**63, "10^20": 10**20, "float": 1.5, "huge string": HUGE_TEXT}
ODD_MOMENTS = {"year 1 east of UTC": "0001-01-01T00:00:00+05:00", "year 9999 west of UTC": "9999-12-31T23:59:59-05:00"}


def _plan(charge: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"code": "bounded", "name": "Bounded", "currency": "EUR", "interval": "month", "charges": [charge], **extra}


def _agreement(**fields: Any) -> dict[str, Any]:
    return {"currency": "EUR", "rate_bps": 1000, **fields}


def _escrow(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": SOME_ID,
        "payee": {"type": "vendor", "id": SOME_ID},
        "currency": "EUR",
        "amount_minor": 1000,
        "milestones": [{"title": "All", "amount_minor": 1000}],
    }
    return {**body, **fields}


def _pricing(amount: Any) -> dict[str, Any]:
    return {
        "slug": "bounded-plugin",
        "name": "Bounded",
        "publisher_id": SOME_ID,
        "pricing": {"model": "per_seat", "amount_minor": amount, "currency": "EUR"},
    }


def _numeric_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    subscriptions = "/v1/tenants/{tenant}/subscriptions"
    for name, value in {**EXTREMES, "0": 0, "over a million": 1_000_001}.items():
        cases[f"subscription seats {name}"] = Case(
            "POST", subscriptions, 400, "validation_error", json={"plan_code": "pro", "seats": value}
        )
        cases[f"subscription change seats {name}"] = Case(
            "POST", f"/v1/subscriptions/{SOME_ID}/change", 400, "validation_error", json={"seats": value}
        )
        cases[f"plugin install seats {name}"] = Case(
            "POST", "/v1/tenants/{tenant}/plugins", 400, "validation_error", json={"slug": "reports", "seats": value}
        )
        cases[f"plugin install change seats {name}"] = Case(
            "PATCH", "/v1/tenants/{tenant}/plugins/reports", 400, "validation_error", json={"seats": value}
        )
        cases[f"plugin entitlement seats {name}"] = Case(
            "POST",
            "/v1/plugins",
            400,
            "validation_error",
            json={**_pricing(100), "entitlements": {"seats": value}},
        )
    for name, value in {**EXTREMES, "0": 0, "over 10^15": 10**15 + 1}.items():
        cases[f"credit note amount {name}"] = Case(
            "POST",
            f"/v1/invoices/{SOME_ID}/credit-notes",
            400,
            "validation_error",
            json={"amount_minor": value, "reason": "r"},
        )
        cases[f"refund amount {name}"] = Case(
            "POST",
            f"/v1/invoices/{SOME_ID}/refunds",
            400,
            "validation_error",
            json={"amount_minor": value, "reason": "r"},
        )
        cases[f"escrow amount {name}"] = Case(
            "POST", "/v1/escrows", 400, "validation_error", json=_escrow(amount_minor=value)
        )
        cases[f"milestone amount {name}"] = Case(
            "POST",
            "/v1/escrows",
            400,
            "validation_error",
            json=_escrow(milestones=[{"title": "All", "amount_minor": value}]),
        )
        cases[f"milestone release {name}"] = Case(
            "POST",
            f"/v1/escrows/{SOME_ID}/milestones/{SOME_ID}/resolve",
            400,
            "validation_error",
            json={"outcome": "split", "release_minor": value},
        )
    for name, value in {**EXTREMES, "over 10000": 10_001}.items():
        cases[f"tenant tax rate {name}"] = Case(
            "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "tax_rate_bps": value}
        )
    for name, value in {**EXTREMES, "over 720": 721}.items():
        cases[f"tenant grace hours {name}"] = Case(
            "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "invoice_grace_hours": value}
        )
    for name, value in {**EXTREMES, "over 730": 731}.items():
        cases[f"plan trial days {name}"] = Case(
            "POST",
            "/v1/plans",
            400,
            "validation_error",
            json=_plan({"type": "flat", "amount_minor": 1}, trial_days=value),
        )
    for name, value in {**EXTREMES, "0": 0, "over 90": 91}.items():
        cases[f"escrow inspection days {name}"] = Case(
            "POST", "/v1/escrows", 400, "validation_error", json=_escrow(inspection_days=value)
        )
    # Plugin prices: an integer or a decimal string of at most 10^9 minor units.
    for name, value in {**EXTREMES, "over 10^9": 10**9 + 1, "exponent": "1e20", "ten digits": "1000000000.5"}.items():
        cases[f"plugin price {name}"] = Case("POST", "/v1/plugins", 400, "validation_error", json=_pricing(value))
    # Charges are checked by the catalogue (one place for their shape): 422 invalid_charge.
    charge_values = {**EXTREMES, "exponent": "1e20", "2^63 as text": str(2**63)}
    for name, value in charge_values.items():
        cases[f"flat charge amount {name}"] = Case(
            "POST", "/v1/plans", 422, "invalid_charge", json=_plan({"type": "flat", "amount_minor": value})
        )
        cases[f"per seat price {name}"] = Case(
            "POST", "/v1/plans", 422, "invalid_charge", json=_plan({"type": "per_seat", "unit_amount_minor": value})
        )
        tiers = [{"up_to": value, "unit_amount_minor": "1"}, {"up_to": None, "unit_amount_minor": "1"}]
        cases[f"tier up_to {name}"] = Case(
            "POST",
            "/v1/plans",
            422,
            "invalid_charge",
            json=_plan({"type": "metered", "metric_code": "m", "model": "graduated", "tiers": tiers}),
        )
        package = {"type": "metered", "metric_code": "m", "model": "package", "amount_minor": 1, "package_size": value}
        cases[f"package size {name}"] = Case("POST", "/v1/plans", 422, "invalid_charge", json=_plan(package))
    cases["per seat price over 10^9"] = Case(
        "POST", "/v1/plans", 422, "invalid_charge", json=_plan({"type": "per_seat", "unit_amount_minor": 10**9 + 1})
    )
    cases["metered price over 10^9"] = Case(
        "POST",
        "/v1/plans",
        422,
        "invalid_charge",
        json=_plan({"type": "metered", "metric_code": "m", "model": "per_unit", "unit_amount_minor": "1000000000.1"}),
    )
    cases["flat amount over 10^12"] = Case(
        "POST", "/v1/plans", 422, "invalid_charge", json=_plan({"type": "flat", "amount_minor": 10**12 + 1})
    )
    agreement = f"/v1/resellers/{SOME_ID}/agreement"
    for name, value in EXTREMES.items():
        cases[f"agreement minimum payout {name}"] = Case(
            "PUT", agreement, 400, "validation_error", json=_agreement(minimum_payout_minor=value)
        )
        cases[f"agreement tier threshold {name}"] = Case(
            "PUT", agreement, 400, "validation_error", json=_agreement(tiers=[{"from_minor": value, "rate_bps": 1}])
        )
        cases[f"agreement pending days {name}"] = Case(
            "PUT", agreement, 400, "validation_error", json=_agreement(pending_days=value)
        )
    for name, value in {**EXTREMES, "over 10000": 10_001}.items():
        cases[f"agreement rate {name}"] = Case(
            "PUT", agreement, 400, "validation_error", json=_agreement(rate_bps=value)
        )
    for name, moment in ODD_MOMENTS.items():
        cases[f"revocations after {name}"] = Case(
            "GET", "/v1/licensing/revocations", 400, "date_out_of_range", params={"after": moment}
        )
    cases["revocations after not a date"] = Case(
        "GET", "/v1/licensing/revocations", 400, None, params={"after": "yesterday"}
    )
    for name, moment in ODD_MOMENTS.items():
        cases[f"subscription start {name}"] = Case(
            "POST", subscriptions, 400, "validation_error", json={"plan_code": "pro", "start_at": moment}, as_staff=True
        )
        cases[f"milestone due {name}"] = Case(
            "POST",
            "/v1/escrows",
            400,
            "validation_error",
            json=_escrow(milestones=[{"title": "All", "amount_minor": 1000, "due_at": moment}]),
        )
        cases[f"coupon redeem_by {name}"] = Case(
            "POST", "/v1/coupons", 400, "validation_error", json=_coupon(percent_off_bps=1000, redeem_by=moment)
        )
    # Without a UTC offset a due date would be read in the database server's zone.
    cases["milestone due without an offset"] = Case(
        "POST",
        "/v1/escrows",
        400,
        "validation_error",
        json=_escrow(milestones=[{"title": "All", "amount_minor": 1000, "due_at": "2030-01-01T00:00:00"}]),
    )
    coupon_fields = {
        "percent": {"percent_off_bps": None},
        "amount": {"amount_off_minor": None, "currency": "EUR"},
        "periods": {"percent_off_bps": 1000, "duration": "repeating", "duration_periods": None},
        "max redemptions": {"percent_off_bps": 1000, "max_redemptions": None},
    }
    for what, fields in coupon_fields.items():
        for name, value in {**EXTREMES, "0": 0}.items():
            body = _coupon(**{key: value if field is None else field for key, field in fields.items()})
            cases[f"coupon {what} {name}"] = Case("POST", "/v1/coupons", 400, "validation_error", json=body)
    cases["coupon percent and amount"] = Case(
        "POST",
        "/v1/coupons",
        422,
        "invalid_coupon",
        json=_coupon(percent_off_bps=10, amount_off_minor=1, currency="EUR"),
    )
    cases["coupon neither percent nor amount"] = Case("POST", "/v1/coupons", 422, "invalid_coupon", json=_coupon())
    cases["coupon amount without currency"] = Case(
        "POST", "/v1/coupons", 422, "invalid_coupon", json=_coupon(amount_off_minor=100)
    )
    top_ups = "/v1/tenants/{tenant}/wallet/top-ups"
    for name, value in {**EXTREMES, "zero": 0}.items():
        cases[f"top-up amount {name}"] = Case(
            "POST", top_ups, 400, "validation_error", json={"amount_minor": value, "paid": False}, as_staff=True
        )
    for name, moment in ODD_MOMENTS.items():
        cases[f"top-up expiry {name}"] = Case(
            "POST",
            top_ups,
            400,
            "validation_error",
            json={"amount_minor": 100, "paid": False, "expires_at": moment},
            as_staff=True,
        )
    cases["top-up expiry in the past"] = Case(
        "POST",
        top_ups,
        422,
        "invalid_top_up",
        json={"amount_minor": 100, "paid": False, "expires_at": "2020-01-01T00:00:00Z"},
        as_staff=True,
    )
    cases["top-up paid not a boolean"] = Case(
        "POST", top_ups, 400, "validation_error", json={"amount_minor": 100, "paid": "yes"}, as_staff=True
    )
    cases["wallet currency not a code"] = Case(
        "GET", "/v1/tenants/{tenant}/wallet", 400, "validation_error", params={"currency": "euro"}
    )
    return cases


def _coupon(**fields: Any) -> dict[str, Any]:
    return {"code": "bounded", "name": "Bounded", "duration": "forever", **fields}


CASES.update(_numeric_cases())


def _one_off_cases() -> dict[str, Case]:
    """A one-off invoice (staff only): bad lines, amounts and currencies; the world's tenant is billed in EUR."""
    line = {"description": "Setup", "quantity": "1", "unit_amount_minor": 100}
    path = "/v1/tenants/{tenant}/invoices"
    bodies: dict[str, tuple[Any, int, str]] = {
        "no lines": ({"currency": "EUR", "lines": []}, 400, "validation_error"),
        "101 lines": ({"currency": "EUR", "lines": [line] * 101}, 400, "validation_error"),
        "unit over 10^15": (
            {"currency": "EUR", "lines": [{**line, "unit_amount_minor": 10**15 + 1}]},
            400,
            "validation_error",
        ),
        "negative unit": ({"currency": "EUR", "lines": [{**line, "unit_amount_minor": -1}]}, 400, "validation_error"),
        "line over 10^15": (
            {"currency": "EUR", "lines": [{**line, "quantity": "2", "unit_amount_minor": 10**15}]},
            422,
            "invalid_one_off_invoice",
        ),
        "control character": (
            {"currency": "EUR", "lines": [{**line, "description": "a\u0000b"}]},
            400,
            "validation_error",
        ),
        "quantity not a number": (
            {"currency": "EUR", "lines": [{**line, "quantity": "many"}]},
            422,
            "invalid_one_off_invoice",
        ),
        "unsupported currency": ({"currency": "ZZZ", "lines": [line]}, 422, "unknown_currency"),
        "another currency": ({"currency": "USD", "lines": [line]}, 422, "currency_mismatch"),
    }
    return {
        f"one-off invoice {name}": Case("POST", path, status, code, json=body, as_staff=True)
        for name, (body, status, code) in bodies.items()
    }


CASES.update(_one_off_cases())


@dataclass
class World:
    staff: Actor
    admin: Actor
    tenant: dict[str, Any]
    key_id: str

    def format(self, path: str) -> str:
        return path.format(tenant=self.tenant["id"], admin=self.admin.user_id, key=self.key_id)


async def _snapshot(client: AsyncClient, world: World) -> dict[str, Any]:
    tenant_url = f"/v1/tenants/{world.tenant['id']}"
    return {
        "tenants": await all_items(client, "/v1/tenants", world.staff.headers),
        "members": await all_items(client, f"{tenant_url}/members", world.staff.headers),
        "api_keys": await all_items(client, f"{tenant_url}/api-keys", world.staff.headers),
        "audit": await all_items(client, f"{tenant_url}/audit-events", world.staff.headers),
    }


@pytest.fixture
async def world(client: AsyncClient, factory: Factory) -> World:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@world.example")
    admin = await factory.member(tenant["id"], "tenant_admin")
    key, _ = await create_api_key(client, admin.headers, tenant["id"])
    return World(staff, admin, tenant, key["id"])


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_and_nothing_is_written(client: AsyncClient, world: World, case: str) -> None:
    spec = CASES[case]
    # Requests under a tenant are made by its admin (the guard passes, so the input itself is refused);
    # the others, such as creating tenants, by staff.
    actor = world.admin if "{tenant}" in spec.path and not spec.as_staff else world.staff
    before = await _snapshot(client, world)

    response = await client.request(
        spec.method,
        world.format(spec.path),
        json=spec.json,
        content=spec.content,
        params=spec.params,
        headers={**actor.headers, **(spec.headers or {})},
    )
    body = assert_problem(response, spec.status, spec.code)
    if spec.code is None:
        assert body["code"] in {"bad_request", "validation_error", "unsupported_media_type"}, body
    for secret in ("SELECT", "asyncpg", "psycopg", "Traceback", "controlplane/", ".py"):
        assert secret not in response.text, response.text

    assert await _snapshot(client, world) == before

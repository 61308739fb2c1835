"""A tenant's prepaid credits (its wallet) in the console: the balance and its movements, for whoever may read
billing; and, for whoever may manage billing, buying credit with the tenant's default card (`billing.top_up`
with `paid=True`, as the API's top-up route for a tenant admin).

The amount is typed in the currency's major units ("25.00") and converted exactly (Decimal, no rounding): more
decimals than the currency has are refused, not rounded. A top-up charges a card, so the form is safe to send
twice: the page gives each rendering of the form a random key (`top_up_key`), and the POST claims it in the
idempotency store the API's `Idempotency-Key` uses (`controlplane.core.idempotency`), under the signed-in
person and the tenant. A second POST of the same form then buys nothing more and shows the wallet; one sent
while the first is still charging is told so (409); a failed top-up releases the key, so it can be retried.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.errors import NoPaymentMethod
from billing.limits import MAX_AMOUNT_MINOR
from billing.money import display, exponent
from controlplane.console.pages import may, signed_in, tenant_in_view
from controlplane.console.params import PAGE_SIZE, Cursor, Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core import idempotency
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import Conflict, DomainError, InvalidInput, PaymentRequired
from controlplane.core.idempotency import ClaimOutcome
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import status_for
from tenants import service as tenants
from tenants.roles import Permission

Done = Annotated[str | None, QueryParameter(max_length=32, required=False)]

_AMOUNT_LENGTH = 24  # more digits than MAX_AMOUNT_MINOR has, with a point and room for spaces
_KEY = re.compile(r"^[0-9a-f]{32}$")
# Stored beside the API's keys, under the same principal and tenant: the prefix keeps the two apart.
_KEY_PREFIX = "console:credits:top-up:"

# What the page says after a POST redirected to it (`?done=`); anything else says nothing.
DONE = {"topped_up": "The card was charged and the credit added."}
# How the page names the wallet's movements (`billing.wallets`); a kind not here is shown as it is stored.
KINDS = {
    "top_up": "Bought",
    "grant": "Granted",
    "applied": "Paid an invoice",
    "restored": "Given back (invoice voided)",
    "expired": "Expired",
    "refunded": "Refunded",
    "disputed": "Taken back (card dispute lost)",
}
# Refusals of a top-up shown beside the form (the card declined, a purchase in flight, an amount Stripe refuses).
_TOP_UP_REFUSALS = (InvalidInput, Conflict, PaymentRequired)


@dataclass
class TopUpForm:
    csrf_token: str
    top_up_key: str = ""
    amount: str = ""


def parse_amount(text: str, currency: str) -> int | None:
    """An amount typed in the currency's major units ("25", "25.5", "25.00") as minor units, exactly; None unless
    it is plain digits with at most the currency's decimals, from one minor unit to MAX_AMOUNT_MINOR."""
    text = text.strip()
    places = exponent(currency)
    decimals = rf"(\.[0-9]{{1,{places}}})?" if places else ""
    if len(text) > _AMOUNT_LENGTH or not re.fullmatch(rf"[0-9]{{1,19}}{decimals}", text, flags=re.ASCII):
        return None
    minor = int(Decimal(text).scaleb(places))  # exact: no more decimals than the exponent
    return minor if 1 <= minor <= MAX_AMOUNT_MINOR else None


def _shape(places: int) -> str:
    return f"with at most {places} decimals" if places else "in whole units"


def _here(tenant_id: uuid.UUID, done: str | None = None) -> str:
    path = f"/console/tenants/{tenant_id}/credits"
    return f"{path}?done={done}" if done else path


async def _credits_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    tenant: tenants.TenantView,
    cursor: str | None = None,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    needs_card: bool = False,
    amount: str = "",
) -> Response[str]:
    wallet = await billing.get_wallet(tenant.id, None, PageRequest.parse(PAGE_SIZE, cursor))
    manage = await may(principal, tenant.id, Permission.MANAGE_BILLING)
    places = exponent(wallet.currency)
    return page(
        request,
        "credits.html",
        status=status,
        tenant=tenant,
        wallet=wallet,
        manage=manage,
        top_up_key=uuid.uuid4().hex,  # a new one for each form shown: one top-up each
        shape=_shape(places),
        kinds=KINDS,
        notice=notice,
        error=error,
        needs_card=needs_card,
        amount=amount,
    )


class CreditPages(Controller):
    path = "/tenants/{tenant_id:uuid}"
    include_in_schema = False

    @get("/credits")
    async def credits(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, cursor: Cursor = None, done: Done = None
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_BILLING)
        return await _credits_page(request, principal, tenant, cursor, notice=DONE.get(done or ""))

    @post("/credits/top-up", status_code=303)
    async def top_up(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[TopUpForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        # As the API's top-up route: buying credit is for those who may manage the tenant's billing.
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        tenant = await tenants.get_tenant(tenant_id)
        typed = data.amount.strip()[:_AMOUNT_LENGTH]
        amount_minor = parse_amount(data.amount, tenant.currency)
        if amount_minor is None:
            places = exponent(tenant.currency)
            shape = _shape(places)
            example = display(25 * 10**places, tenant.currency).removesuffix(f" {tenant.currency}")
            error = f"Enter an amount of {tenant.currency} {shape}, such as {example}."
            return await _credits_page(request, principal, tenant, status=400, error=error, amount=typed)
        if not _KEY.fullmatch(data.top_up_key):  # a hand-made form: nothing to make a repeat safe with
            error = "This form is out of date: here is a fresh one; enter the amount again."
            return await _credits_page(request, principal, tenant, status=400, error=error, amount=typed)

        claim = await _claim(request, principal, tenant_id, data.top_up_key, amount_minor)
        if claim.outcome is ClaimOutcome.REPLAY:  # the same form sent again: it bought its credit already
            return Redirect(_here(tenant_id, "topped_up"), status_code=303)
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            error = "This top-up is still being charged: reload the page in a moment to see the credit."
            return await _credits_page(request, principal, tenant, status=409, error=error)
        if claim.outcome is ClaimOutcome.MISMATCH:
            error = "This form was sent before with another amount: here is a fresh one; enter the amount again."
            return await _credits_page(request, principal, tenant, status=422, error=error, amount=typed)
        assert claim.outcome is ClaimOutcome.CLAIMED and claim.row_id is not None  # the tenant exists
        try:
            await billing.top_up(request.app.state.payments, principal, tenant_id, amount_minor, True, None)
        except BaseException as failure:
            await idempotency.release(tenant_id, claim.row_id)  # nothing bought: the form may be sent again
            if isinstance(failure, NoPaymentMethod):
                error = "The tenant has no default card to charge: add one under Payment methods first."
                return await _credits_page(
                    request, principal, tenant, status=status_for(failure), error=error, needs_card=True, amount=typed
                )
            if isinstance(failure, _TOP_UP_REFUSALS):
                assert isinstance(failure, DomainError)
                error = f"{failure.title}: {failure.detail}" if failure.detail != failure.title else failure.title
                return await _credits_page(
                    request, principal, tenant, status=status_for(failure), error=error, amount=typed
                )
            raise
        await idempotency.complete(tenant_id, claim.row_id, 303, b"", "text/html")
        return Redirect(_here(tenant_id, "topped_up"), status_code=303)


async def _claim(
    request: Request[Any, Any, Any], principal: Principal, tenant_id: uuid.UUID, key: str, amount_minor: int
) -> idempotency.Claim:
    path = request.scope["path"]
    fingerprint = idempotency.request_fingerprint("POST", path, b"", str(amount_minor).encode())
    ttl = timedelta(seconds=request.app.state.settings.idempotency_ttl_seconds)
    return await idempotency.claim(tenant_id, principal.key, _KEY_PREFIX + key, "POST", path, fingerprint, ttl)

"""A tenant's subscription in the console: what it is, and (for whoever may manage billing) changing its plan or
seats, cancelling, resuming and redeeming a coupon.

A change is two POSTs: the form shows the proration the change would bill (`billing.preview_change`, the same
code as the change, nothing written), and only its "Confirm" changes the subscription. The confirmation names
the subscription as it was previewed (its id and last update) and the preview itself: a confirmation sent again
after the change, or after anything else changed the subscription, changes nothing and shows the subscription
as it stands; a preview that would now bill something else (the day turned, usage arrived) is shown again.
Cancelling and resuming are safe to repeat: the service answers a repeat as things stand.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.errors import PlanNotFound
from billing.limits import MAX_SEATS
from billing.money import display, round_minor
from controlplane.console.pages import live_subscription, may, signed_in
from controlplane.console.params import Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import Conflict, InvalidInput, NotFound
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import status_for
from tenants import service as tenants
from tenants.roles import Permission

Done = Annotated[str | None, QueryParameter(max_length=32, required=False)]

_PLAN_PAGE = 100
_MAX_PLAN_PAGES = 20  # 2,000 plans: more than a catalogue offers in one currency
_CODE_LENGTH = 63
_SEATS_LENGTH = 16

# What the page says after a POST redirected to it (`?done=`); anything else says nothing.
DONE = {
    "changed": "Your subscription was changed.",
    "scheduled": "The change is scheduled: it takes effect at the end of the current period.",
    "unscheduled": "The scheduled change was dropped.",
    "cancel_scheduled": "Your subscription will end at the end of the current period.",
    "canceled": "Your subscription was canceled.",
    "resumed": "Your subscription was resumed: it renews as before.",
    "redeemed": "The coupon applies to your subscription.",
    "stale": (
        "The subscription had changed since that confirmation was shown (was it sent twice?), so nothing more "
        "was changed. Here it is as it stands."
    ),
}
_CHANGE_REFUSALS = (InvalidInput, PlanNotFound, Conflict)


@dataclass
class ChangeForm:
    csrf_token: str
    plan_code: str = ""
    seats: str = ""


@dataclass
class ConfirmForm:
    csrf_token: str
    plan_code: str = ""
    seats: str = ""
    subscription_id: str = ""
    updated_at: str = ""
    preview: str = ""


@dataclass
class CancelForm:
    csrf_token: str
    when: str = ""
    confirm: str = ""


@dataclass
class CouponForm:
    csrf_token: str
    coupon_code: str = ""


@dataclass(frozen=True, slots=True)
class PlanChoice:
    code: str
    name: str
    version: int
    price: str  # "49.00 EUR a month + 8.00 EUR a seat + usage"


def price_of(plan: billing.PlanView) -> str:
    """A plan's price in words: its flat and per-seat charges for one period, and whether it meters usage."""
    flat = per_seat = Decimal(0)
    metered = False
    for charge in plan.charges:
        try:
            if charge.get("type") == "flat":
                flat += Decimal(str(charge.get("amount_minor", 0)))
            elif charge.get("type") == "per_seat":
                per_seat += Decimal(str(charge.get("unit_amount_minor", 0)))
            elif charge.get("type") == "metered":
                metered = True
        except InvalidOperation:  # the catalogue checks its amounts; a page never fails on one
            continue
    parts = [f"{display(round_minor(flat), plan.currency)} a {plan.interval}"] if flat or not per_seat else []
    if per_seat:
        parts.append(f"{display(round_minor(per_seat), plan.currency)} a seat a {plan.interval}")
    if metered:
        parts.append("usage")
    return " + ".join(parts)


async def plan_choices(subscription: billing.SubscriptionView, currency: str) -> list[PlanChoice]:
    """The plans the subscription may move to: the catalogue's (latest versions, as `billing.list_plans` pages
    them) in `currency`, its own plan at its own version. Keeping its plan changes seats only: the subscription
    stays on its version, as the API's change without a plan code does."""
    own = await billing.get_plan(subscription.plan_code, subscription.plan_version)
    choices = [PlanChoice(own.code, own.name, own.version, price_of(own))]
    cursor = None
    for _ in range(_MAX_PLAN_PAGES):
        found = await billing.list_plans(PageRequest.parse(_PLAN_PAGE, cursor))
        choices += [
            PlanChoice(plan.code, plan.name, plan.version, price_of(plan))
            for plan in found.items
            if plan.currency == currency and plan.code != own.code
        ]
        cursor = found.next_cursor
        if cursor is None:
            break
    return choices


def parse_seats(text: str) -> int | None:
    """A seat count typed in the form: whole digits from 1 to `MAX_SEATS`, else None."""
    text = text.strip()
    if not text or len(text) > _SEATS_LENGTH or not text.isascii() or not text.isdigit():
        return None
    seats = int(text)
    return seats if 1 <= seats <= MAX_SEATS else None


def preview_token(preview: billing.ChangePreview) -> str:
    """What a confirmation was shown: the change's outcome and every amount it bills or leaves for later."""
    invoice = preview.invoice
    shown = (
        preview.direction,
        preview.timing,
        preview.plan_code,
        preview.plan_version,
        preview.seats,
        preview.pending_plan_code,
        preview.pending_seats,
        None if invoice is None else (invoice.total_minor, tuple(line.amount_minor for line in invoice.lines)),
        tuple(line.amount_minor for line in preview.next_invoice_lines),
    )
    return hashlib.sha256(repr(shown).encode()).hexdigest()[:32]


def _here(tenant_id: uuid.UUID, done: str | None = None) -> str:
    path = f"/console/tenants/{tenant_id}/subscription"
    return f"{path}?done={done}" if done else path


async def _subscription_page(
    request: Request[Any, Any, Any], principal: Principal, tenant_id: uuid.UUID, *, status: int = 200, **form: Any
) -> Response[str]:
    """The subscription page, with a form's error and what was typed in it when `form` says so."""
    tenant = await tenants.get_tenant(tenant_id)
    subscription = await live_subscription(tenant_id)
    manage = await may(principal, tenant_id, Permission.MANAGE_BILLING)
    plan = pending = None
    discounts: list[billing.DiscountView] = []
    choices: list[PlanChoice] = []
    if subscription is not None:
        plan = await billing.get_plan(subscription.plan_code, subscription.plan_version)
        if subscription.pending_plan_code:
            pending = await billing.get_plan(subscription.pending_plan_code)
        discounts = await billing.list_discounts(principal, subscription.id)
        if manage:
            choices = await plan_choices(subscription, tenant.currency)
    defaults = {
        "notice": None,
        "change_error": None,
        "cancel_error": None,
        "coupon_error": None,
        "chosen_plan": subscription.plan_code if subscription else "",
        "chosen_seats": str(subscription.seats) if subscription else "1",
        "coupon_code": "",
    }
    return page(
        request,
        "subscription.html",
        status=status,
        tenant=tenant,
        subscription=subscription,
        plan=plan,
        plan_price=price_of(plan) if plan else "",
        pending=pending,
        discounts=discounts,
        manage=manage,
        choices=choices,
        max_seats=MAX_SEATS,
        **(defaults | form),
    )


async def _changes(
    data: ChangeForm | ConfirmForm, subscription: billing.SubscriptionView, currency: str
) -> billing.SubscriptionChanges | str:
    """The changes the form asks for, or what is wrong with it (said next to the form)."""
    seats = parse_seats(data.seats)
    if seats is None:
        return f"Enter a number of seats from 1 to {MAX_SEATS:,}."
    if data.plan_code == subscription.plan_code:
        return {"seats": seats}  # on its own plan version
    if data.plan_code not in {choice.code for choice in await plan_choices(subscription, currency)}:
        return "Choose one of the plans offered."
    return {"plan_code": data.plan_code, "seats": seats}


def _differs(subscription: billing.SubscriptionView, preview: billing.ChangePreview) -> bool:
    """Whether a change the rules call "none" still changes something: it drops a scheduled change, or moves
    a trial to other seats or another version of its plan."""
    before = (subscription.plan_code, subscription.plan_version, subscription.seats)
    after = (preview.plan_code, preview.plan_version, preview.seats)
    return before != after or subscription.pending_plan_code is not None or subscription.pending_seats is not None


async def _confirmation(
    request: Request[Any, Any, Any],
    tenant: tenants.TenantView,
    subscription: billing.SubscriptionView,
    preview: billing.ChangePreview,
    changes: billing.SubscriptionChanges,
    *,
    status: int = 200,
    moved: bool = False,
) -> Response[str]:
    plan = await billing.get_plan(subscription.plan_code, subscription.plan_version)
    target = await billing.get_plan(preview.pending_plan_code or preview.plan_code)
    return page(
        request,
        "subscription_confirm.html",
        status=status,
        tenant=tenant,
        subscription=subscription,
        plan=plan,
        target=target,
        preview=preview,
        metered=any(charge.get("type") == "metered" for charge in plan.charges),
        plan_code=changes.get("plan_code", subscription.plan_code),
        seats=changes.get("seats", ""),
        token=preview_token(preview),
        moved=moved,
    )


class SubscriptionPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/tenants/{tenant_id:uuid}/subscription")
    async def subscription(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, done: Done = None
    ) -> Response[str]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.READ_BILLING, method="GET")
        return await _subscription_page(request, principal, tenant_id, notice=DONE.get(done or ""))

    @post("/tenants/{tenant_id:uuid}/subscription/change", status_code=200)
    async def review_change(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[ChangeForm, Form]
    ) -> Response[Any]:
        """The first POST: the proration the change would bill, and a form to confirm it. Writes nothing."""
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        subscription = await live_subscription(tenant_id)
        if subscription is None:
            return Redirect(_here(tenant_id), status_code=303)
        tenant = await tenants.get_tenant(tenant_id)
        typed = {"chosen_plan": data.plan_code[:_CODE_LENGTH], "chosen_seats": data.seats[:_SEATS_LENGTH]}
        changes = await _changes(data, subscription, tenant.currency)
        if isinstance(changes, str):
            return await _subscription_page(request, principal, tenant_id, status=400, change_error=changes, **typed)
        try:
            preview = await billing.preview_change(principal, subscription.id, changes)
        except _CHANGE_REFUSALS as error:
            return await _subscription_page(
                request, principal, tenant_id, status=status_for(error), change_error=error.detail, **typed
            )
        if preview.direction == "none" and not _differs(subscription, preview):
            message = "That is the plan and seat count you have: choose another plan or seat count."
            return await _subscription_page(request, principal, tenant_id, status=400, change_error=message, **typed)
        return await _confirmation(request, tenant, subscription, preview, changes)

    @post("/tenants/{tenant_id:uuid}/subscription/change/confirm", status_code=303)
    async def confirm_change(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[ConfirmForm, Form]
    ) -> Response[Any]:
        """The second POST: the change, if the subscription and what it bills are still what was confirmed."""
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        subscription = await live_subscription(tenant_id)
        if (
            subscription is None
            or data.subscription_id != str(subscription.id)
            or data.updated_at != subscription.updated_at.isoformat()
        ):
            return Redirect(_here(tenant_id, "stale"), status_code=303)  # a repeat, or changed meanwhile
        tenant = await tenants.get_tenant(tenant_id)
        changes = await _changes(data, subscription, tenant.currency)
        if isinstance(changes, str):  # only a hand-made form gets here
            return await _subscription_page(request, principal, tenant_id, status=400, change_error=changes)
        try:
            preview = await billing.preview_change(principal, subscription.id, changes)
            if preview_token(preview) != data.preview:
                return await _confirmation(request, tenant, subscription, preview, changes, status=409, moved=True)
            changed = await billing.change_subscription(principal, subscription.id, changes)
        except _CHANGE_REFUSALS as error:
            return await _subscription_page(
                request, principal, tenant_id, status=status_for(error), change_error=error.detail
            )
        if changed.pending_plan_code is not None:
            done = "scheduled"
        elif preview.direction == "none" and subscription.pending_plan_code is not None:
            done = "unscheduled"
        else:
            done = "changed"
        return Redirect(_here(tenant_id, done), status_code=303)

    @post("/tenants/{tenant_id:uuid}/subscription/cancel", status_code=303)
    async def cancel(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[CancelForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        subscription = await live_subscription(tenant_id)
        if subscription is None:  # cancelled now already: a repeat
            return Redirect(_here(tenant_id), status_code=303)
        error = None
        if data.when not in ("period_end", "now"):
            error = "Choose when the subscription ends."
        elif data.confirm != "yes":
            error = "Tick the box to confirm the cancellation."
        if error is not None:
            return await _subscription_page(request, principal, tenant_id, status=400, cancel_error=error)
        at_period_end = data.when == "period_end"
        try:
            await billing.cancel_subscription(principal, subscription.id, at_period_end)
        except Conflict as refused:  # a payment of the period's invoice in flight, an invalid transition
            return await _subscription_page(
                request, principal, tenant_id, status=status_for(refused), cancel_error=refused.detail
            )
        return Redirect(_here(tenant_id, "cancel_scheduled" if at_period_end else "canceled"), status_code=303)

    @post("/tenants/{tenant_id:uuid}/subscription/resume", status_code=303)
    async def resume(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        subscription = await live_subscription(tenant_id)
        if subscription is None or not subscription.cancel_at_period_end:  # nothing to resume: a repeat
            return Redirect(_here(tenant_id), status_code=303)
        await billing.resume_subscription(principal, subscription.id)
        return Redirect(_here(tenant_id, "resumed"), status_code=303)

    @post("/tenants/{tenant_id:uuid}/subscription/coupon", status_code=303)
    async def redeem(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[CouponForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        subscription = await live_subscription(tenant_id)
        if subscription is None:
            return Redirect(_here(tenant_id), status_code=303)
        code = data.coupon_code.strip().lower()
        if not code or len(code) > _CODE_LENGTH:
            message = f"Enter a coupon code of 1 to {_CODE_LENGTH} characters."
            return await _subscription_page(
                request, principal, tenant_id, status=400, coupon_error=message, coupon_code=code[:_CODE_LENGTH]
            )
        discounts = await billing.list_discounts(principal, subscription.id)
        if any(each.coupon_code == code and each.status == "active" for each in discounts):  # a repeat
            return Redirect(_here(tenant_id, "redeemed"), status_code=303)
        try:
            await billing.redeem(principal, subscription.id, code)
        except (NotFound, Conflict, InvalidInput) as refused:
            message = f"{refused.title} ({refused.code})."
            return await _subscription_page(
                request, principal, tenant_id, status=status_for(refused), coupon_error=message, coupon_code=code
            )
        return Redirect(_here(tenant_id, "redeemed"), status_code=303)

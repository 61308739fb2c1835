"""The reseller portal: a partner's tenants and revenue, commissions by month, statements (and their CSV),
payouts, and the qualification checklist with a submission per checkpoint.

Each page calls the services the API's partner routes call (`tenants.service` partners, `billing.service`
commissions, `billing.analytics.service`) with the signed-in principal: they check the person's role in the
partner (`ensure_partner_access`) in the partner's own database context, so another partner's portal is not
found, as over the API. A reseller's viewers read what the API lets them read; the revenue figures and the
submissions are its admins' (and staff's).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.analytics import service as analytics
from billing.analytics.report import Month, MonthFigures
from billing.errors import AgreementNotFound
from billing.money import display
from controlplane.console.charts import BarChart, bar_chart
from controlplane.console.pages import signed_in
from controlplane.console.params import PAGE_SIZE, Cursor, Form
from controlplane.console.rendering import page
from controlplane.console.revenue import revenue_months
from controlplane.core.auth.principal import Principal
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import status_for
from controlplane.core.web import MONTH_PATTERN
from tenants import qualification as engine
from tenants import service as tenants
from tenants.errors import (
    CheckpointExempt,
    ForbiddenForRole,
    InvalidCheckpointTransition,
    InvalidEvidence,
    PartnerNotFound,
    PrerequisiteMissing,
    UnknownCheckpoint,
)

PartnerPath = Annotated[uuid.UUID, PathParameter(description="The partner's id")]
MonthPath = Annotated[str, PathParameter(description="YYYY-MM", pattern=MONTH_PATTERN)]
CheckpointPath = Annotated[str, PathParameter(max_length=63, pattern=r"^[a-z_]{1,63}$")]

_TENANT_NAMES = 100  # a statement's lines name the tenants of the reseller's first page of tenants
MAX_EVIDENCE = 2000  # as the API's `Evidence`
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUBMITTABLE = frozenset({"not_started", "rejected", "expired"})
_ACTION_WORDS = {"submit": "submit it", "resubmit": "submit it again", "await_review": "wait for the platform's review"}


@dataclass
class EvidenceForm:
    csrf_token: str
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class RequiredAction:
    code: str  # the API's stable action code, e.g. `resubmit_tax_id_verified`
    text: str


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One checkpoint as the checklist shows it: where it stands, what is left to do, and whether it can be
    submitted now (by this person)."""

    code: str
    title: str
    status: str
    expires_at: datetime | None
    issues: tuple[str, ...]
    actions: tuple[RequiredAction, ...]
    submittable: bool
    evidence_pattern: str | None


def checklist(standing: tenants.QualificationView, role: str) -> list[ChecklistItem]:
    """The partner's checkpoints in order, each with its own issues and required actions (the API's codes end
    with the checkpoint's code: `{step}_{code}`)."""
    kind = engine.PARTNER_TYPES[standing.kind]
    codes = [each.code for each in standing.checkpoints]

    def longest(named: list[str]) -> str | None:
        # A code that ends (or starts) a longer code is never mistaken for it.
        return max(named, key=len, default=None)

    actions: dict[str, list[RequiredAction]] = defaultdict(list)
    for action in standing.required_actions:
        code = longest([code for code in codes if action.endswith("_" + code)])
        if code is not None:
            step = action[: -len(code) - 1]
            actions[code].append(RequiredAction(action, _ACTION_WORDS.get(step, step.replace("_", " "))))
    issues: dict[str, list[str]] = defaultdict(list)
    for issue in standing.issues:  # each begins with its checkpoint's code
        code = longest([code for code in codes if issue.startswith(code + " ")])
        if code is not None:
            issues[code].append(issue)
    return [
        ChecklistItem(
            code=each.code,
            title=kind.checkpoint(each.code).title,
            status=each.status,
            expires_at=each.expires_at,
            issues=tuple(issues[each.code]),
            actions=tuple(actions[each.code]),
            submittable=not each.exempt and each.status in _SUBMITTABLE and role != "reseller_viewer",
            evidence_pattern=kind.checkpoint(each.code).evidence_pattern,
        )
        for each in standing.checkpoints
    ]


async def _reseller(principal: Principal, partner_id: uuid.UUID) -> tenants.PartnerInView:
    seen = await tenants.get_partner(principal, partner_id)
    if seen.partner.kind != "reseller":  # a publisher has a checklist, not a reseller's pages
        raise PartnerNotFound("no reseller has this id")
    return seen


async def _agreement(principal: Principal, partner_id: uuid.UUID) -> Any:
    try:
        return await billing.get_agreement(principal, partner_id)
    except AgreementNotFound:  # staff have not set one yet
        return None


async def _revenue(
    seen: tenants.PartnerInView, principal: Principal, currencies: set[str]
) -> list[tuple[str, MonthFigures]] | None:
    """This month's figures of the reseller's tenants per currency, as the API's analytics give them; None for
    a reader the API refuses them to (a reseller's viewer), whether or not there is a currency to ask about."""
    if seen.role not in tenants.REVENUE_READERS:
        return None
    this_month = Month.of(datetime.now(UTC))
    figures = []
    try:
        for currency in sorted(currencies):
            [month] = await analytics.revenue(principal, this_month, this_month, currency, seen.partner.id)
            figures.append((currency, month))
    except ForbiddenForRole:
        return None
    return figures


def _amount(minor: int | Decimal, *, currency: str) -> str:
    return display(int(minor), currency)


def commission_charts(statements: list[Any]) -> list[tuple[str, BarChart]]:
    """A bar chart of each currency's statements, the oldest month first (statements come newest first)."""
    by_currency: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for statement in reversed(statements):
        by_currency[statement.currency].append((f"{statement.month:%Y-%m}", statement.total_minor))
    return [
        (
            currency,
            bar_chart(
                f"chart-{currency}",
                f"Commission by month in {currency}, oldest first",
                [label for label, _ in points],
                [value for _, value in points],
                functools.partial(_amount, currency=currency),
            ),
        )
        for currency, points in sorted(by_currency.items())
    ]


class PartnerPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/partners/{partner_id:uuid}")
    async def overview(
        self, request: Request[Any, Any, Any], partner_id: PartnerPath, cursor: Cursor = None
    ) -> Response[str]:
        principal = signed_in(request)
        seen = await tenants.get_partner(principal, partner_id)
        owned: list[tenants.OwnedTenantView] = []
        next_cursor = revenue = None
        if seen.partner.kind == "reseller":
            found = await tenants.reseller_tenants(principal, partner_id, PageRequest.parse(PAGE_SIZE, cursor))
            owned, next_cursor = found.items, found.next_cursor
            agreement = await _agreement(principal, partner_id)
            # A reseller's tenants are billed in its agreement's currency; earlier ones may be in others.
            currencies = {tenant.currency for tenant in owned} | ({agreement.currency} if agreement else set())
            revenue = await _revenue(seen, principal, currencies)
        return page(
            request,
            "partner_overview.html",
            partner=seen.partner,
            role=seen.role,
            current="overview",
            owned=owned,
            next_cursor=next_cursor,
            revenue=revenue,
            month=str(Month.of(datetime.now(UTC))),
        )

    @get("/partners/{partner_id:uuid}/revenue")
    async def revenue(
        self,
        request: Request[Any, Any, Any],
        partner_id: PartnerPath,
        first: Annotated[str | None, QueryParameter(name="from", max_length=7, required=False)] = None,
        last: Annotated[str | None, QueryParameter(name="to", max_length=7, required=False)] = None,
        currency: Annotated[str | None, QueryParameter(max_length=3, required=False)] = None,
    ) -> Response[str]:
        """The reseller's tenants' revenue month by month; the analytics refuse it to a reseller's viewers."""
        principal = signed_in(request)
        seen = await _reseller(principal, partner_id)
        agreement = await _agreement(principal, partner_id)
        plans = (await billing.list_plans(PageRequest.parse(100, None))).items
        # By default the agreement's currency: the one its tenants are billed in.
        currencies = {plan.currency for plan in plans} | ({agreement.currency} if agreement else set())
        default = currency or (agreement.currency if agreement else None)
        months = await revenue_months(principal, first, last, default, currencies, reseller_id=partner_id)
        return page(
            request,
            "partner_revenue.html",
            partner=seen.partner,
            role=seen.role,
            current="revenue",
            revenue=months,
            action=f"/console/partners/{partner_id}/revenue",
        )

    @get("/partners/{partner_id:uuid}/commissions")
    async def commissions(self, request: Request[Any, Any, Any], partner_id: PartnerPath) -> Response[str]:
        principal = signed_in(request)
        seen = await _reseller(principal, partner_id)
        statements = await billing.list_statements(principal, partner_id)
        return page(
            request,
            "partner_commissions.html",
            partner=seen.partner,
            role=seen.role,
            current="commissions",
            agreement=await _agreement(principal, partner_id),
            statements=statements,
            charts=commission_charts(statements),
        )

    @get("/partners/{partner_id:uuid}/statements/{month:str}")
    async def statement(
        self, request: Request[Any, Any, Any], partner_id: PartnerPath, month: MonthPath
    ) -> Response[str]:
        principal = signed_in(request)
        seen = await _reseller(principal, partner_id)
        statement = await billing.get_statement(principal, partner_id, billing.parse_month(month))
        owned = await tenants.reseller_tenants(principal, partner_id, PageRequest.parse(_TENANT_NAMES, None))
        return page(
            request,
            "partner_statement.html",
            partner=seen.partner,
            role=seen.role,
            current="commissions",
            statement=statement,
            month=month,
            tenant_names={tenant.id: tenant.name for tenant in owned.items},
        )

    @get("/partners/{partner_id:uuid}/statements/{month:str}/csv")
    async def statement_csv(
        self, request: Request[Any, Any, Any], partner_id: PartnerPath, month: MonthPath
    ) -> Response[str]:
        principal = signed_in(request)
        statement = await billing.get_statement(principal, partner_id, billing.parse_month(month))
        return Response(
            billing.statement_csv(statement),  # the CSV the API serves for `Accept: text/csv`
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="statement-{month}.csv"'},
        )

    @get("/partners/{partner_id:uuid}/payouts")
    async def payouts(self, request: Request[Any, Any, Any], partner_id: PartnerPath) -> Response[str]:
        principal = signed_in(request)
        seen = await _reseller(principal, partner_id)
        return page(
            request,
            "partner_payouts.html",
            partner=seen.partner,
            role=seen.role,
            current="payouts",
            payouts=await billing.list_payouts(principal, partner_id),
        )

    @get("/partners/{partner_id:uuid}/qualification")
    async def qualification(self, request: Request[Any, Any, Any], partner_id: PartnerPath) -> Response[str]:
        principal = signed_in(request)
        return await _qualification_page(request, await tenants.get_partner(principal, partner_id))

    @post("/partners/{partner_id:uuid}/checkpoints/{code:str}/submit", status_code=303)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        partner_id: PartnerPath,
        code: CheckpointPath,
        data: Annotated[EvidenceForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        seen = await tenants.get_partner(principal, partner_id)
        done = Redirect(f"/console/partners/{partner_id}/qualification", status_code=303)
        current = next((each for each in seen.partner.qualification.checkpoints if each.code == code), None)
        if current is None:
            raise UnknownCheckpoint(f"{seen.partner.kind} has no checkpoint {code!r}", checkpoint=code)
        if current.status in ("submitted", "approved"):  # a repeat (or another admin was first): it stands
            return done
        evidence = data.evidence.strip()
        if len(evidence) > MAX_EVIDENCE or _CONTROL.search(evidence):
            error = f"Evidence is one line of at most {MAX_EVIDENCE:,} characters."
            return await _qualification_page(request, seen, status=400, error=error, code=code, evidence=evidence)
        try:
            await tenants.submit_checkpoint(principal, partner_id, code, evidence)
        except InvalidCheckpointTransition:  # submitted by a request racing this one
            return done
        except (PrerequisiteMissing, InvalidEvidence, CheckpointExempt) as error:
            return await _qualification_page(
                request, seen, status=status_for(error), error=error.detail, code=code, evidence=evidence
            )
        return done


async def _qualification_page(
    request: Request[Any, Any, Any],
    seen: tenants.PartnerInView,
    *,
    status: int = 200,
    error: str | None = None,
    code: str = "",
    evidence: str = "",
) -> Response[str]:
    """The checklist; after a refused submission, with its error and what was typed (bounded) in its field."""
    return page(
        request,
        "partner_qualification.html",
        status=status,
        partner=seen.partner,
        role=seen.role,
        current="qualification",
        standing=seen.partner.qualification,
        checklist=checklist(seen.partner.qualification, seen.role),
        error=error,
        draft_code=code,
        draft=_CONTROL.sub("", evidence)[:MAX_EVIDENCE],
    )

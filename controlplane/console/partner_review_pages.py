"""The staff back office's partner review queue: checkpoints partners submitted, oldest first, each approved or
rejected with a reason.

Platform staff only (`principal.is_staff`, as the API's `staff_only` guard on the queue); a review goes through
the service the API's approve and reject routes call, which checks the reviewer's role again. A review is safe
to repeat: a checkpoint no longer waiting for review is left as it is and the queue shown again.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect

from controlplane.console.pages import signed_in
from controlplane.console.params import PAGE_SIZE, Cursor, Form
from controlplane.console.rendering import page
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import StaffOnly
from controlplane.core.pagination import PageRequest
from tenants import qualification as engine
from tenants import service as tenants
from tenants.errors import InvalidCheckpointTransition, UnknownCheckpoint

PartnerPath = Annotated[uuid.UUID, PathParameter(description="The partner's id")]
CheckpointPath = Annotated[str, PathParameter(max_length=63, pattern=r"^[a-z_]{1,63}$")]
# What the last review did, said on the queue it returns to.
Done = Annotated[str | None, QueryParameter(pattern=r"^(approved|rejected|unchanged)$", required=False)]

QUEUE = "/console/staff/partners/review"
MAX_REASON = 1000  # as the API's `Rejection`
# A reason is read in emails and on pages: lines and tabs are fine, other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class ApprovalForm:
    csrf_token: str


@dataclass
class RejectionForm:
    csrf_token: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QueueItem:
    pending: tenants.PendingCheckpointView
    title: str

    @property
    def key(self) -> str:
        """Unique on the page: the ids of this item's controls."""
        return f"{self.pending.partner_id}-{self.pending.code}"


def _staff(request: Request[Any, Any, Any]) -> Principal:
    principal = signed_in(request)
    if not principal.is_staff:
        raise StaffOnly("Only platform staff review partners.")
    return principal


def _title(kind: str, code: str) -> str:
    try:
        return engine.PARTNER_TYPES[kind].checkpoint(code).title
    except (KeyError, UnknownCheckpoint):  # a checkpoint retired since it was submitted: its code says it
        return code


async def _still_waiting(principal: Principal, partner_id: uuid.UUID, code: str) -> bool:
    """Whether the checkpoint is still submitted (not reviewed meanwhile, by this request's twin or another)."""
    standing = await tenants.qualification(principal, partner_id)
    current = next((each for each in standing.checkpoints if each.code == code), None)
    if current is None:
        raise UnknownCheckpoint(f"{standing.kind} has no checkpoint {code!r}", checkpoint=code)
    return current.status == "submitted"


async def _queue_page(
    request: Request[Any, Any, Any],
    *,
    cursor: str | None = None,
    done: str | None = None,
    status: int = 200,
    error: str | None = None,
    draft_key: str = "",
    draft: str = "",
) -> Response[str]:
    found = await tenants.pending_checkpoints(None, PageRequest.parse(PAGE_SIZE, cursor))
    items = [QueueItem(each, _title(each.kind, each.code)) for each in found.items]
    return page(
        request,
        "partner_review.html",
        status=status,
        items=items,
        next_cursor=found.next_cursor,
        done=done,
        error=error,
        draft_key=draft_key,
        draft=draft[:MAX_REASON],
        max_reason=MAX_REASON,
    )


class PartnerReviewPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/staff/partners/review")
    async def queue(self, request: Request[Any, Any, Any], cursor: Cursor = None, done: Done = None) -> Response[str]:
        _staff(request)
        return await _queue_page(request, cursor=cursor, done=done)

    @post("/staff/partners/review/{partner_id:uuid}/{code:str}/approve", status_code=303)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        partner_id: PartnerPath,
        code: CheckpointPath,
        data: Annotated[ApprovalForm, Form],
    ) -> Response[Any]:
        principal = _staff(request)
        if not await _still_waiting(principal, partner_id, code):  # a repeat, or another reviewer was first
            return Redirect(f"{QUEUE}?done=unchanged", status_code=303)
        try:
            await tenants.approve_checkpoint(principal, partner_id, code)
        except InvalidCheckpointTransition:  # reviewed by a request racing this one: that review stands
            return Redirect(f"{QUEUE}?done=unchanged", status_code=303)
        return Redirect(f"{QUEUE}?done=approved", status_code=303)

    @post("/staff/partners/review/{partner_id:uuid}/{code:str}/reject", status_code=303)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        partner_id: PartnerPath,
        code: CheckpointPath,
        data: Annotated[RejectionForm, Form],
    ) -> Response[Any]:
        principal = _staff(request)
        reason = data.reason.strip()
        if not reason or len(reason) > MAX_REASON or _CONTROL.search(reason):
            error = f"Say why it is rejected, in at most {MAX_REASON:,} characters of text."
            draft = _CONTROL.sub("", data.reason)
            return await _queue_page(request, status=400, error=error, draft_key=f"{partner_id}-{code}", draft=draft)
        if not await _still_waiting(principal, partner_id, code):
            return Redirect(f"{QUEUE}?done=unchanged", status_code=303)
        try:
            await tenants.reject_checkpoint(principal, partner_id, code, reason)
        except InvalidCheckpointTransition:
            return Redirect(f"{QUEUE}?done=unchanged", status_code=303)
        return Redirect(f"{QUEUE}?done=rejected", status_code=303)

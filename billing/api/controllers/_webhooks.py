"""HTTP for Stripe webhooks."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from billing import service
from billing.api.controllers._shared import StripeEventOperation
from controlplane.core.problems import problem_responses


class StripeWebhookController(Controller):
    tags = ["payments"]

    @post(
        "/v1/webhooks/stripe",
        exclude_from_auth=True,
        status_code=200,
        operation_class=StripeEventOperation,
        responses=problem_responses(400, 409),
    )
    async def receive(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        """Stripe's events, verified by `Stripe-Signature` (at most 5 minutes old). A repeated event is
        acknowledged and changes nothing. A dispute of a payment whose success is not known here yet answers
        409 `dispute_payment_pending`, unrecorded, so Stripe sends it again."""
        result = await service.receive_stripe_event(
            await request.body(),
            request.headers.get("stripe-signature"),
            request.app.state.stripe_webhook_secret,
            dispute_lost_suspends=request.app.state.settings.dispute_lost_suspends,
        )
        return {"result": result}

"""What the billing controllers share: path parameters, documented errors, OpenAPI bodies read by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import PathParameter

from billing.usage.rules import MAX_BATCH
from controlplane.core.openapi import IdempotentOperation
from controlplane.core.problems import problem_responses
from controlplane.core.web import IDEMPOTENCY_ERRORS

SubscriptionId = Annotated[uuid.UUID, PathParameter(description="The subscription's id")]
InvoiceId = Annotated[uuid.UUID, PathParameter(description="The invoice's id")]
ById = problem_responses(400, 401, 403, 404, 409, *IDEMPOTENCY_ERRORS)


@dataclass
class UsageOperation(IdempotentOperation):
    """POST /v1/usage reads its body by hand (one event at a time); this documents what it reads."""

    def __post_init__(self) -> None:
        super().__post_init__()
        event = Schema(
            type=OpenAPIType.OBJECT,
            required=["idempotency_key", "metric_code", "timestamp"],
            properties={
                "idempotency_key": Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
                "metric_code": Schema(type=OpenAPIType.STRING, min_length=1, max_length=63),
                "timestamp": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                "value": Schema(one_of=[Schema(type=OpenAPIType.NUMBER, minimum=0), Schema(type=OpenAPIType.STRING)]),
                "properties": Schema(type=OpenAPIType.OBJECT),
            },
            additional_properties=False,
        )
        batch = Schema(
            type=OpenAPIType.OBJECT,
            required=["events"],
            properties={
                "events": Schema(type=OpenAPIType.ARRAY, items=event, max_items=MAX_BATCH),
                "tenant_id": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
            },
            additional_properties=False,
        )
        self.request_body = RequestBody(content={"application/json": OpenAPIMediaType(schema=batch)}, required=True)


@dataclass
class StripeEventOperation(Operation):
    """POST /v1/webhooks/stripe reads its raw body (the signature covers the exact bytes)."""

    def __post_init__(self) -> None:
        event = Schema(
            type=OpenAPIType.OBJECT,
            required=["id", "type", "data"],
            properties={
                "id": Schema(type=OpenAPIType.STRING),
                "type": Schema(type=OpenAPIType.STRING),
                "data": Schema(type=OpenAPIType.OBJECT),
            },
        )
        self.request_body = RequestBody(content={"application/json": OpenAPIMediaType(schema=event)}, required=True)


def gateway(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.payments

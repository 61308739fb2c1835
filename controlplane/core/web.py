"""The HTTP kit every domain's controllers share: the input base struct and common field types, conversion of
service values to response structs, pagination and path parameters, the bearer requirement, idempotent POST
and the answers of a create-or-return-stored POST. The problem+json answers themselves are `problems`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Response, post
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from msgspec import Meta, Struct

from controlplane.core.dates import to_utc
from controlplane.core.openapi import IdempotentOperation
from controlplane.core.pagination import MAX_PAGE_SIZE
from controlplane.core.problems import problem_responses

# No control characters (C0, DEL, C1) nor line or paragraph separators: PostgreSQL text cannot hold NUL, and
# none belongs in a name or an address, where a line break would let a name draw lines of its own on a document.
# A calendar month as a query or path parameter: anything else is a 400 `validation_error` before any service.
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=ONE_LINE)]
# One bare address (`local@domain`), nothing a header parser could read as several, a display name, a quoted part,
# a comment or a group: no whitespace, control character or any of `,;:<>"()[]\` (so `email.utils.parseaddr`
# reads it back as itself, and a message to it reaches exactly it).
Email = Annotated[
    str,
    Meta(
        min_length=3, max_length=320, pattern=r'^[^@\s\x00-\x1f\x7f,;:<>"()\[\]\\]+@[^@\s\x00-\x1f\x7f,;:<>"()\[\]\\]+$'
    ),
]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]

Limit = Annotated[int | None, QueryParameter(name="limit", ge=1, le=MAX_PAGE_SIZE, required=False)]
Cursor = Annotated[str | None, QueryParameter(name="cursor", max_length=200, required=False)]
TenantId = Annotated[uuid.UUID, PathParameter(description="The tenant's id")]

# Every route here needs a bearer (JWT or API key); the public routes (health, token) declare none.
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

# The answers the idempotency middleware adds to every authenticated POST, for the handlers' OpenAPI
# `responses`: a malformed key, a key whose first request is still running, a body over the limit, a key reused.
IDEMPOTENCY_ERRORS = (400, 409, 413, 422)


class Input(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every input body. Dates are converted to UTC as they are decoded, so one without a UTC
    equivalent is a 400 `validation_error` here rather than an overflow deeper down."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                setattr(self, name, to_utc(value))
            elif isinstance(value, list) and any(isinstance(item, datetime) for item in value):
                setattr(self, name, [to_utc(item) if isinstance(item, datetime) else item for item in value])


S = TypeVar("S", bound=Struct)


def to_struct(struct: type[S], value: Any) -> S:
    """A service's value (a mapping, a dataclass or a struct) as the API's response struct."""
    return msgspec.convert(value, struct, strict=False, from_attributes=True)


def idempotent_post(path: str, **options: Any) -> Any:
    """`@post` for routes that retry safely with an `Idempotency-Key` header (documented in OpenAPI)."""
    return post(path, operation_class=IdempotentOperation, **options)


def created_or_stored(read: type[Any]) -> dict[int, ResponseSpec]:
    """`responses=` of a catalogue POST: 201 for a new definition, 200 for a repeat of a stored one."""
    errors = problem_responses(401, 403, 404, 409, 413, 422, *IDEMPOTENCY_ERRORS)
    return {**errors, 200: ResponseSpec(read, description="The same definition was stored before; here it is")}


def answer_created(body: Any, created: bool) -> Response[Any]:
    # A repeated definition answers 200 with what is stored; a new one 201.
    return Response(body, status_code=201 if created else 200)

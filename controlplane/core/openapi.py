"""What the OpenAPI document needs beyond Litestar's defaults, so it describes the API as it behaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# Litestar's own renderer of msgspec Structs; it has no public name, and this subclass only adds to it.
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.enums import ParamType
from litestar.openapi.spec import Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from msgspec import Struct

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Documents input Structs declared `forbid_unknown_fields=True` with `additionalProperties: false`.

    Litestar leaves them open, so a client reading the schema would think a body with an extra field is
    valid, and then get a 400.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (
            super().is_plugin_supported_field(field_definition)
            and issubclass(field_definition.type_, Struct)
            and field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description="Retry safely: the same key with the same body within 24 h replays the first answer.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[\\x21-\\x7e]{1,255}$"),
)


@dataclass
class IdempotentOperation(Operation):
    """A POST that accepts the `Idempotency-Key` header (handled by `IdempotencyMiddleware`, not the handler)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]

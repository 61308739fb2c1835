"""What the console's pages take from a request, declared once: a form body, the ids in paths, a page cursor."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
TenantPath = Annotated[uuid.UUID, PathParameter(description="The tenant's id")]
Cursor = Annotated[str | None, QueryParameter(max_length=512, required=False)]
PAGE_SIZE = 50

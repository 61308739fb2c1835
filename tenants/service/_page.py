"""A page of rows and the cursor of the next one."""

from __future__ import annotations

from typing import Any

Page = tuple[list[dict[str, Any]], str | None]

"""Pages from the console's Jinja templates (autoescaped), with what every page shows: who is signed in, the
tenant in view, and the session's CSRF token for its forms."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie

from billing.money import display
from controlplane.console.middleware import console_session

TEMPLATES = Path(__file__).parent / "templates"
HTML = "text/html; charset=utf-8"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d")


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,  # a misspelt name fails the page (and its test), never renders as empty
)
_environment.filters["money"] = lambda minor, currency: display(minor, currency)
_environment.filters["when"] = _when
_environment.filters["day"] = _day


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Response[str]:
    session = console_session(request.scope)
    html = _environment.get_template(template).render(
        principal=request.scope.get("user"),
        csrf_token=session.csrf_token if session else "",
        tenant=context.pop("tenant", None),
        **context,
    )
    return Response(html, status_code=status, media_type=HTML, cookies=cookies)

"""What a notification email says: its subject, plain text and HTML, from the templates in `templates/`.

Each email event has three: `<event>.subject.txt`, `<event>.txt` and `<event>.html` (HTML autoescaped). They
see the event's `data` (its contract: `events.EventType.data`; amounts as display strings, dates as ISO 8601
UTC), the tenant's or partner's name looked up when sending, who the recipient is to them, and links into the
console under PUBLIC_URL. A variable a template names but the context lacks is an error (StrictUndefined), never
a blank.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from tenants.notifications.events import BILLING_CONTACT, Audience, event_type

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUBJECT_MAX = 200


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def template_names(event: str) -> tuple[str, str, str]:
    return f"{event}.subject.txt", f"{event}.txt", f"{event}.html"


def context(
    event: str,
    data: Mapping[str, Any],
    *,
    public_url: str,
    name: str,
    recipient: str,
    tenant_id: object = None,
    partner_id: object = None,
) -> dict[str, Any]:
    """Everything a template of `event` may name. `name` is the tenant's (or the partner's)."""
    console = f"{public_url.rstrip('/')}/console"
    values: dict[str, Any] = {**data, "public_url": public_url, "console_url": console}
    if event_type(event).audience == Audience.TENANT:
        values["tenant_name"] = name
        values["recipient_role"] = "the billing contact" if recipient == BILLING_CONTACT else "an administrator"
        values["billing_url"] = f"{console}/billing"
        values["payment_methods_url"] = f"{console}/billing/payment-methods"
        values["subscription_url"] = f"{console}/billing/subscription"
        if data.get("invoice_id"):
            values["invoice_url"] = f"{console}/billing/invoices/{_segment(data['invoice_id'])}"
    else:
        values["partner_name"] = name
        values["recipient_role"] = "an administrator"
        partner = f"{console}/partners/{_segment(partner_id)}"
        values["qualification_url"] = f"{partner}/qualification"
        if data.get("statement_id"):
            values["statement_url"] = f"{partner}/statements/{_segment(data['statement_id'])}"
    return values


def render(event: str, values: Mapping[str, Any]) -> RenderedEmail:
    """The email of `event` for `values` (see `context`); jinja2 errors for a missing template or variable."""
    subject_name, text_name, html_name = template_names(event)
    env = environment()
    subject = re.sub(r"\s+", " ", env.get_template(subject_name).render(values)).strip()[:SUBJECT_MAX]
    return RenderedEmail(
        subject=subject,
        text=env.get_template(text_name).render(values).strip() + "\n",
        html=env.get_template(html_name).render(values).strip() + "\n",
    )


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["date"] = format_date
    env.filters["datetime"] = format_datetime
    env.filters["month"] = format_month
    return env


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def format_date(value: Any) -> str:
    """`2026-12-04T02:40:00+00:00` -> `4 December 2026` (UTC); anything else as it is."""
    moment = _moment(value)
    return f"{moment.day} {moment:%B %Y}" if moment else str(value)


def format_datetime(value: Any) -> str:
    """`2026-12-04T02:40:00+00:00` -> `4 December 2026, 02:40 UTC`; anything else as it is."""
    moment = _moment(value)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC" if moment else str(value)


def format_month(value: Any) -> str:
    """`2026-11` -> `November 2026`; anything else as it is."""
    try:
        return f"{datetime.strptime(str(value), '%Y-%m'):%B %Y}"
    except ValueError:
        return str(value)


def _segment(value: Any) -> str:
    return quote(str(value), safe="")

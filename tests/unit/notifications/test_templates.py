"""Every email event has its three templates, renders from exactly the contract's data (a template naming a
variable the context lacks fails: StrictUndefined), escapes HTML and links into the console."""

from __future__ import annotations

import uuid

import jinja2
import pytest

from tenants.notifications import rendering
from tenants.notifications.events import EVENTS, Audience
from tests.unit.notifications.samples import EMAIL_EVENTS, INVOICE_ID, SAMPLES, SUBJECT_HAS

PUBLIC_URL = "https://console.example.com"
PARTNER_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")


def _values(event: str, data: dict[str, object] | None = None, recipient: str = "billing_contact") -> dict[str, object]:
    tenant_event = EVENTS[event].audience == Audience.TENANT
    return rendering.context(
        event,
        SAMPLES[event] if data is None else data,
        public_url=PUBLIC_URL,
        name="Acme & Co" if tenant_event else "Resell <Ltd>",
        recipient=recipient if tenant_event else f"user:{uuid.uuid4()}",
        tenant_id=uuid.uuid4() if tenant_event else None,
        partner_id=None if tenant_event else PARTNER_ID,
    )


def test_every_event_has_a_sample_with_exactly_the_keys_of_its_contract() -> None:
    assert set(SAMPLES) == set(EVENTS)
    for event, data in SAMPLES.items():
        assert set(data) == EVENTS[event].data, event
    assert set(SUBJECT_HAS) == set(EMAIL_EVENTS)


@pytest.mark.parametrize("event", EMAIL_EVENTS)
def test_every_email_event_renders_text_and_html_from_its_data(event: str) -> None:
    for name in rendering.template_names(event):
        assert (rendering.TEMPLATES / name).is_file(), name
    email = rendering.render(event, _values(event))
    assert SUBJECT_HAS[event] in email.subject
    assert "\n" not in email.subject
    tenant_event = EVENTS[event].audience == Audience.TENANT
    # The name as it is in text, escaped in HTML.
    if tenant_event:
        assert "Acme & Co" in email.text and "Acme &amp; Co" in email.html and "Acme & Co" not in email.html
    else:
        assert "Resell <Ltd>" in email.text and "Resell &lt;Ltd&gt;" in email.html
    assert email.html.startswith("<!doctype html>") and "</html>" in email.html
    assert f"{PUBLIC_URL}/console" in email.text and f'href="{PUBLIC_URL}/console' in email.html
    assert "None" not in email.text and "None" not in email.html


def test_an_invoice_email_links_to_its_invoice_and_a_failed_payment_to_the_card() -> None:
    invoice_url = f"{PUBLIC_URL}/console/billing/invoices/{INVOICE_ID}"
    for event in ("invoice.finalized", "invoice.paid", "invoice.payment_failed"):
        assert invoice_url in rendering.render(event, _values(event)).text
    failed = rendering.render("invoice.payment_failed", _values("invoice.payment_failed"))
    assert f"{PUBLIC_URL}/console/billing/payment-methods" in failed.text
    assert "7 December 2026" in failed.text and "insufficient_funds" in failed.text


def test_optional_values_change_the_wording_not_the_rendering() -> None:
    last = rendering.render(
        "invoice.payment_failed",
        _values("invoice.payment_failed", {**SAMPLES["invoice.payment_failed"], "next_retry_at": None}),
    )
    assert "We will not try again" in last.text
    no_due = rendering.render(
        "invoice.finalized", _values("invoice.finalized", {**SAMPLES["invoice.finalized"], "due_at": None})
    )
    assert "Due:" not in no_due.text
    nothing_required = rendering.render(
        "partner.checkpoint_rejected",
        _values("partner.checkpoint_rejected", {**SAMPLES["partner.checkpoint_rejected"], "required_actions": []}),
    )
    assert "What is needed" not in nothing_required.text
    rejected = rendering.render("partner.checkpoint_rejected", _values("partner.checkpoint_rejected"))
    assert "- Name a second director" in rejected.text and "<li>Name a second director</li>" in rejected.html


def test_an_invoice_shows_its_period_as_its_document_does_with_the_last_day_inclusive() -> None:
    # [1 Nov, 1 Dec) is November: the PDF says 2026-11-01 to 2026-11-30, and so does the email.
    finalized = rendering.render("invoice.finalized", _values("invoice.finalized"))
    assert "Period: 2026-11-01 to 2026-11-30" in finalized.text
    assert "<td>2026-11-01 to 2026-11-30</td>" in finalized.html
    assert "1 December 2026" not in finalized.text and "1 December 2026" not in finalized.html


def test_a_trial_ending_with_a_cancellation_scheduled_says_it_ends_not_that_it_is_charged() -> None:
    renews = rendering.render("subscription.trial_will_end", _values("subscription.trial_will_end"))
    assert "charged to the card on file" in renews.text and "charged to the card on file" in renews.html
    canceling = rendering.render(
        "subscription.trial_will_end",
        _values(
            "subscription.trial_will_end", {**SAMPLES["subscription.trial_will_end"], "cancel_at_period_end": True}
        ),
    )
    for body in (canceling.text, canceling.html):
        assert "charged" not in body
        assert "ends with the trial" in body
    assert f"{PUBLIC_URL}/console/billing/subscription" in canceling.text


def test_a_suspension_by_staff_points_to_the_console_not_to_a_reply() -> None:
    staff = rendering.render(
        "tenant.suspended", _values("tenant.suspended", {**SAMPLES["tenant.suspended"], "reason": "staff"})
    )
    for body in (staff.text, staff.html):
        assert "reply" not in body.lower()
        assert f"{PUBLIC_URL}/console" in body


def test_the_footer_says_why_the_recipient_gets_it() -> None:
    contact = rendering.render("tenant.reactivated", _values("tenant.reactivated"))
    admin = rendering.render("tenant.reactivated", _values("tenant.reactivated", recipient=f"user:{uuid.uuid4()}"))
    assert "as the billing contact of Acme & Co" in contact.text
    assert "as an administrator of Acme & Co" in admin.text


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    data = {key: value for key, value in SAMPLES["invoice.paid"].items() if key != "amount_paid"}
    with pytest.raises(jinja2.UndefinedError, match="amount_paid"):
        rendering.render("invoice.paid", _values("invoice.paid", data))


def test_an_event_without_templates_fails_to_render() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        rendering.render("subscription.updated", _values("invoice.paid"))


def test_dates_read_as_people_read_them() -> None:
    assert rendering.format_date("2026-12-04T02:40:00+00:00") == "4 December 2026"
    assert rendering.format_datetime("2026-12-04T03:40:00+01:00") == "4 December 2026, 02:40 UTC"
    assert rendering.format_month("2026-11") == "November 2026"
    assert rendering.format_date("not a date") == "not a date"

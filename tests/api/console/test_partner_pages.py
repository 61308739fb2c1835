"""The reseller portal and the staff partner review queue over HTTP: what a reseller's admin reads (tenants and
revenue, commissions by month, a statement and its CSV, payouts, the checklist), submitting a checkpoint, staff
approving and rejecting with a reason, and who is refused; each form repeated or abused the way a hostile person
would."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient, Response
from litestar import Litestar

from billing import service as billing
from billing.money import display
from tests.api.billing.test_payments import stripe_client
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.api.partners.test_commissions import _closed_month_with_payable
from tests.api.partners.test_resellers import _sign_up, _step
from tests.factories import Actor, Factory

__all__ = ["browser", "stripe_client"]  # the fixtures, shared

QUEUE = "/console/staff/partners/review"

# A script of the page's own text (one from a file, `src=`, is what the CSP allows).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)")


def _this_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def assert_no_inline_code(page: Response) -> None:
    """The CSP allows no inline script or style: the page must need none."""
    assert not INLINE_SCRIPT.search(page.text) and "style=" not in page.text and "<style" not in page.text


async def _history(client: AsyncClient, actor: Actor, partner_id: str) -> list[tuple[str, str]]:
    entries = (await client.get(f"/v1/partners/{partner_id}/history", headers=actor.headers)).json()["items"]
    return [(entry["code"], entry["to_status"]) for entry in entries]


async def _status(client: AsyncClient, actor: Actor, partner_id: str, code: str) -> dict[str, Any]:
    standing = (await client.get(f"/v1/partners/{partner_id}/qualification", headers=actor.headers)).json()
    [checkpoint] = [each for each in standing["checkpoints"] if each["code"] == code]
    return {**checkpoint, "issues": standing["issues"], "required_actions": standing["required_actions"]}


async def test_a_reseller_admin_reads_its_portal_a_statement_and_its_csv(
    browser: AsyncClient, client: AsyncClient, factory: Factory, stripe_client: Any, app: Litestar
) -> None:
    reseller, founder, statement = await _closed_month_with_payable(client, factory, stripe_client, "acct_1Northwind")
    assert (await billing.send_payouts(app.state.payments)).paid == 1
    month = _this_month()
    await sign_in(browser, founder.email)

    home = await browser.get("/console/")
    assert home.status_code == 200, home.text
    assert f'href="/console/partners/{reseller}"' in home.text and "Northwind Resale" in home.text

    base = f"/console/partners/{reseller}"
    overview = await browser.get(base)
    assert overview.status_code == 200, overview.text
    assert_no_inline_code(overview)
    [owned] = (await client.get(f"/v1/resellers/{reseller}/tenants", headers=founder.headers)).json()["items"]
    assert owned["name"] in overview.text and f"status-{owned['status']}" in overview.text
    [mrr] = owned["mrr"]
    assert display(mrr["mrr_minor"], "EUR") in overview.text[overview.text.index('id="tenants-heading"') :]
    revenue = await client.get(
        "/v1/analytics/revenue",
        params={"from": month, "to": month, "currency": "EUR", "reseller_id": reseller},
        headers=founder.headers,
    )
    [figures] = revenue.json()["months"]
    assert figures["mrr_end_minor"] > 0  # the paying tenant counts
    assert display(figures["mrr_end_minor"], "EUR") in overview.text
    assert display(figures["arr_minor"], "EUR") in overview.text

    months = await browser.get(f"{base}/revenue", params={"from": month, "to": month})
    assert months.status_code == 200, months.text
    assert_no_inline_code(months)
    assert months.text.count('<svg class="chart" role="img"') == 2 and "Month by month, EUR" in months.text
    row = months.text[months.text.index(f'<th scope="row">{month}</th>') :]
    assert row.split("</td>")[0].endswith(display(figures["mrr_end_minor"], "EUR"))  # as the API's analytics
    for params in ({"currency": "ZZZ"}, {"from": "2026-13"}, {"from": "1999-01", "to": month}):
        bad = await browser.get(f"{base}/revenue", params=params)
        assert 400 <= bad.status_code < 500 and bad.headers["content-type"].startswith("text/html"), params

    commissions = await browser.get(f"{base}/commissions")
    assert commissions.status_code == 200, commissions.text
    assert_no_inline_code(commissions)
    total = display(statement["total_minor"], "EUR")
    svg = commissions.text[commissions.text.index("<svg") : commissions.text.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg and svg.count("<rect") == 1
    assert f"{month}: {total}" in svg  # the chart's description says its numbers
    table = commissions.text[commissions.text.index("<table") :]
    assert f'href="{base}/statements/{month}"' in table and total in table  # and the table the same

    shown = await browser.get(f"{base}/statements/{month}")
    assert shown.status_code == 200, shown.text
    [line] = statement["lines"]
    assert line["invoice_number"] in shown.text and display(line["commission_minor"], "EUR") in shown.text
    assert owned["name"] in shown.text  # the line names its tenant
    csv = await browser.get(f"{base}/statements/{month}/csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="statement-{month}.csv"'
    api_csv = await client.get(
        f"/v1/resellers/{reseller}/statements/{month}", headers={**founder.headers, "Accept": "text/csv"}
    )
    assert csv.text == api_csv.text and f"payable_minor,,,,,{statement['payable_minor']},EUR" in csv.text

    payouts = await browser.get(f"{base}/payouts")
    assert payouts.status_code == 200
    assert display(statement["payable_minor"], "EUR") in payouts.text and "status-paid" in payouts.text

    qualification = await browser.get(f"{base}/qualification")
    assert qualification.status_code == 200 and "Every checkpoint is approved" in qualification.text
    assert "/submit" not in qualification.text  # nothing left to submit

    for path in (f"{base}/statements/2026-13", f"{base}/statements/{month}x/csv"):
        assert (await browser.get(path)).status_code in (400, 404), path
    missing = await browser.get(f"{base}/statements/1999-01")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


async def test_another_partners_portal_is_not_found_as_over_the_api(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    mine, theirs = await factory.user(), await factory.user()
    await _sign_up(client, mine)
    their_id = (await _sign_up(client, theirs))["id"]
    await _step(client, theirs.headers, their_id, "profile_approved", "submit", evidence="theirs")
    assert (await client.get(f"/v1/partners/{their_id}/qualification", headers=mine.headers)).status_code == 404
    await sign_in(browser, mine.email)
    base = f"/console/partners/{their_id}"
    for path in (
        base,
        f"{base}/commissions",
        f"{base}/payouts",
        f"{base}/revenue",
        f"{base}/qualification",
        f"{base}/statements/{_this_month()}",
        f"{base}/statements/{_this_month()}/csv",
        f"/console/partners/{uuid.uuid4()}",
    ):
        page = await browser.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert "partner_not_found" in page.text and "Northwind" not in page.text
    form = await browser.get("/console/")
    refused = await browser.post(
        f"{base}/checkpoints/tax_id_verified/submit", data={"csrf_token": csrf_of(form), "evidence": "mine"}
    )
    assert refused.status_code == 404
    assert await _history(client, theirs, their_id) == [("profile_approved", "submitted")]


async def test_the_home_page_lists_a_persons_partners_and_sends_a_person_with_nothing_to_sign_up(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    nobody = await factory.user()
    await sign_in(browser, nobody.email)
    sent = await browser.get("/console/")
    assert sent.status_code == 302 and sent.headers["location"] == "/console/signup/tenant"

    founder = await factory.user()  # a reseller's admin with no tenant of their own
    partner_id = (await _sign_up(client, founder))["id"]
    someone_else = await factory.user()
    their_id = (await _sign_up(client, someone_else))["id"]
    viewer = await factory.user()  # reads another partner's portal, administers none
    added = await client.post(
        f"/v1/partners/{their_id}/members",
        json={"email": viewer.email, "role": "reseller_viewer"},
        headers=someone_else.headers,
    )
    assert added.status_code == 201, added.text
    browser.cookies.clear()
    await sign_in(browser, founder.email)
    home = await browser.get("/console/")
    assert home.status_code == 200, home.text
    assert f'href="/console/partners/{partner_id}"' in home.text and "/console/signup/tenant" in home.text
    assert their_id not in home.text and QUEUE not in home.text  # not theirs, and not staff

    browser.cookies.clear()
    await sign_in(browser, viewer.email)
    assert (await browser.get("/console/")).status_code == 302  # a viewer administers nothing: on to sign-up

    staff = await factory.staff()
    browser.cookies.clear()
    await sign_in(browser, staff.email)
    assert f'href="{QUEUE}"' in (await browser.get("/console/")).text


async def test_a_reseller_admin_submits_a_checkpoint_once_and_bad_submissions_re_render(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    founder = await factory.user()
    pid = (await _sign_up(client, founder))["id"]
    await sign_in(browser, founder.email)
    base = f"/console/partners/{pid}"
    checklist = await browser.get(f"{base}/qualification")
    assert checklist.status_code == 200, checklist.text
    assert_no_inline_code(checklist)
    assert "Company profile approved" in checklist.text and "submit_profile_approved" in checklist.text
    assert "submit_sales_training_certified" in checklist.text  # the whole path, each under its checkpoint
    token = csrf_of(checklist)
    submit = f"{base}/checkpoints/profile_approved/submit"

    assert (await browser.post(submit, data={"evidence": "no token"})).status_code == 403
    for hostile in ("x" * 2001, "line one\x00", "tab\there"):
        refused = await browser.post(submit, data={"csrf_token": token, "evidence": hostile})
        assert refused.status_code == 400, (hostile, refused.status_code)
        assert 'role="alert"' in refused.text and "\x00" not in refused.text
    early = await browser.post(
        f"{base}/checkpoints/agreement_signed/submit", data={"csrf_token": token, "evidence": "signed"}
    )
    assert early.status_code == 409 and "payout_account_verified" in early.text
    assert 'value="signed"' in early.text  # what was typed stays in its field
    for path, status in (
        (f"{base}/checkpoints/no_such_step/submit", 404),
        (f"{base}/checkpoints/DROP%20TABLE/submit", 400),
    ):
        assert (await browser.post(path, data={"csrf_token": token, "evidence": "x"})).status_code == status, path
    assert await _history(client, founder, pid) == []

    sent = await browser.post(submit, data={"csrf_token": token, "evidence": "Northwind Resale Ltd, 1 Quay St"})
    assert sent.status_code == 303 and sent.headers["location"] == f"{base}/qualification"
    again = await browser.post(submit, data={"csrf_token": token, "evidence": "a second time"})
    assert again.status_code == 303  # harmless: the first submission stands
    assert await _history(client, founder, pid) == [("profile_approved", "submitted")]
    assert (await _status(client, founder, pid, "profile_approved"))["status"] == "submitted"
    after = await browser.get(f"{base}/qualification")
    assert "await_review_profile_approved" in after.text
    assert f'action="{submit}"' not in after.text  # waiting for review: nothing to submit

    viewer = await factory.user()
    added = await client.post(
        f"/v1/partners/{pid}/members", json={"email": viewer.email, "role": "reseller_viewer"}, headers=founder.headers
    )
    assert added.status_code == 201, added.text
    browser.cookies.clear()
    await sign_in(browser, viewer.email)
    read = await browser.get(f"{base}/qualification")
    assert read.status_code == 200 and "/submit" not in read.text
    overview = await browser.get(base)
    assert "admins read its tenants" in overview.text and f'href="{base}/revenue"' not in overview.text
    assert '<th scope="col" class="num">MRR</th>' not in overview.text
    months = await browser.get(f"{base}/revenue")  # revenue is the admins'
    assert months.status_code == 403 and "forbidden_for_role" in months.text
    refused = await browser.post(
        f"{base}/checkpoints/tax_id_verified/submit", data={"csrf_token": csrf_of(read), "evidence": "x"}
    )
    assert refused.status_code == 403 and "forbidden_for_role" in refused.text


async def test_staff_approve_and_reject_with_a_reason_and_a_repeat_changes_nothing(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    first, second = await factory.user(), await factory.user()
    approved_id = (await _sign_up(client, first))["id"]
    rejected_id = (await _sign_up(client, second))["id"]
    await _step(client, first.headers, approved_id, "profile_approved", "submit", evidence="<b>our</b> profile")
    await _step(client, second.headers, rejected_id, "profile_approved", "submit", evidence="a thin profile")
    staff = await factory.staff()
    await sign_in(browser, staff.email)

    queue = await browser.get(QUEUE)
    assert queue.status_code == 200, queue.text
    assert_no_inline_code(queue)
    assert "&lt;b&gt;our&lt;/b&gt; profile" in queue.text and "<b>our" not in queue.text  # the evidence, escaped
    assert queue.text.count('/approve"') == 2 and queue.text.count('name="reason"') == 2
    token = csrf_of(queue)

    approve = f"{QUEUE}/{approved_id}/profile_approved/approve"
    assert (await browser.post(approve, data={})).status_code == 403  # no CSRF token
    done = await browser.post(approve, data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"{QUEUE}?done=approved"
    repeat = await browser.post(approve, data={"csrf_token": token})
    assert repeat.status_code == 303 and repeat.headers["location"] == f"{QUEUE}?done=unchanged"
    assert await _history(client, first, approved_id) == [
        ("profile_approved", "submitted"),
        ("profile_approved", "approved"),
    ]

    reject = f"{QUEUE}/{rejected_id}/profile_approved/reject"
    for hostile in ("", "   ", "x" * 1001, "bad\x00byte"):
        refused = await browser.post(reject, data={"csrf_token": token, "reason": hostile})
        assert refused.status_code == 400, (hostile, refused.status_code)
        assert 'role="alert"' in refused.text and "\x00" not in refused.text
        if len(hostile) > 1000:  # what was typed stays in its row's field, bounded
            assert "x" * 1000 + "</textarea>" in refused.text
    assert (await _status(client, second, rejected_id, "profile_approved"))["status"] == "submitted"
    hostile_path = await browser.post(
        f"{QUEUE}/{rejected_id}/Profile-Approved/reject", data={"csrf_token": token, "reason": "x"}
    )
    assert hostile_path.status_code == 400
    unknown = await browser.post(f"{QUEUE}/{uuid.uuid4()}/profile_approved/approve", data={"csrf_token": token})
    assert unknown.status_code == 404
    bad_done = await browser.get(QUEUE, params={"done": "<script>"})
    assert bad_done.status_code == 400 and "<script>" not in bad_done.text

    rejected = await browser.post(reject, data={"csrf_token": token, "reason": "  no company address  "})
    assert rejected.status_code == 303 and rejected.headers["location"] == f"{QUEUE}?done=rejected"
    again = await browser.post(reject, data={"csrf_token": token, "reason": "another reason"})
    assert again.headers["location"] == f"{QUEUE}?done=unchanged"
    standing = await _status(client, second, rejected_id, "profile_approved")
    assert standing["status"] == "rejected" and standing["required_actions"][0] == "resubmit_profile_approved"
    assert any(issue.endswith("was rejected: no company address") for issue in standing["issues"])
    assert (await _status(client, first, approved_id, "profile_approved"))["status"] == "approved"

    emptied = await browser.get(f"{QUEUE}?done=rejected")
    assert "Nothing is waiting for review" in emptied.text and 'role="status"' in emptied.text
    # The partner reads why on its checklist.
    browser.cookies.clear()
    await sign_in(browser, second.email)
    checklist = await browser.get(f"/console/partners/{rejected_id}/qualification")
    assert "no company address" in checklist.text and "resubmit_profile_approved" in checklist.text


async def test_a_person_who_is_not_staff_is_refused_the_review_queue(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    founder = await factory.user()
    pid = (await _sign_up(client, founder))["id"]
    await _step(client, founder.headers, pid, "profile_approved", "submit", evidence="our profile")
    await sign_in(browser, founder.email)
    refused = await browser.get(QUEUE)
    assert refused.status_code == 403 and "staff_only" in refused.text and "our profile" not in refused.text
    token = csrf_of(await browser.get("/console/"))
    for action, data in (("approve", {}), ("reject", {"reason": "self-review"})):
        answer = await browser.post(f"{QUEUE}/{pid}/profile_approved/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 403, (action, answer.status_code)
    assert await _history(client, founder, pid) == [("profile_approved", "submitted")]
    assert re.search(r"<h1>[^<]*staff", refused.text, re.IGNORECASE)

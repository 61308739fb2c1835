"""The console's bar charts (bars scale to the largest magnitude, negative values hang below the axis) and the
reseller checklist (each issue and action under its own checkpoint), without a browser."""

from __future__ import annotations

import uuid

from controlplane.console.charts import HEIGHT, bar_chart
from controlplane.console.partner_pages import checklist
from tenants.service import CheckpointStatusView, QualificationView


def test_positive_and_negative_bars_meet_at_the_axis() -> None:
    chart = bar_chart("c", "t", ["a", "b", "c"], [300, -100, 0])
    up, down, flat = chart.bars
    assert up.y + up.height == chart.axis_y and down.y == chart.axis_y
    assert up.height == 3 * down.height and flat.height == 0
    assert not up.negative and down.negative
    assert 0 < chart.axis_y < HEIGHT and up.x < down.x < flat.x


def test_no_values_and_all_zero_values_draw_no_bar_height() -> None:
    assert bar_chart("c", "t", [], []).bars == ()
    assert [bar.height for bar in bar_chart("c", "t", ["a", "b"], [0, 0]).bars] == [0, 0]


def test_the_checklist_puts_each_issue_and_action_under_its_own_checkpoint() -> None:
    codes = ["profile_approved", "tax_id_verified", "payout_account_verified", "agreement_signed"]
    statuses = ["approved", "rejected", "not_started", "not_started"]
    standing = QualificationView(
        partner_id=uuid.uuid4(),
        kind="reseller",
        subtype="standard",
        is_qualified=False,
        checkpoints=[
            *(CheckpointStatusView(code, status, None, False) for code, status in zip(codes, statuses, strict=True)),
            CheckpointStatusView("sales_training_certified", "exempt", None, True),
        ],
        # A rejection's reason may name another checkpoint: the issue still belongs to the one it starts with.
        issues=[
            "tax_id_verified was rejected: fix profile_approved first",
            "payout_account_verified has not been submitted; it waits for tax_id_verified",
            "agreement_signed has not been submitted; it waits for payout_account_verified",
        ],
        required_actions=["resubmit_tax_id_verified", "submit_payout_account_verified", "submit_agreement_signed"],
    )
    items = {item.code: item for item in checklist(standing, "reseller_admin")}
    assert items["tax_id_verified"].issues == ("tax_id_verified was rejected: fix profile_approved first",)
    assert [a.code for a in items["tax_id_verified"].actions] == ["resubmit_tax_id_verified"]
    assert items["tax_id_verified"].actions[0].text == "submit it again"
    assert items["profile_approved"].issues == () and items["profile_approved"].actions == ()
    assert [item.submittable for item in items.values()] == [False, True, True, True, False]
    assert items["payout_account_verified"].evidence_pattern is not None
    assert not any(item.submittable for item in checklist(standing, "reseller_viewer"))

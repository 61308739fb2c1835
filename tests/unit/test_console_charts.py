"""The console's server-drawn bar charts and the reseller checklist: geometry and grouping, without a browser."""

from __future__ import annotations

import uuid

import pytest

from controlplane.console.charts import BOTTOM, PLOT_HEIGHT, SLOT_WIDTH, TOP, bar_chart
from controlplane.console.partner_pages import checklist
from tenants.service import CheckpointStatusView, QualificationView


def test_bars_grow_up_and_down_from_one_baseline_scaled_together() -> None:
    chart = bar_chart([("2026-01", 300), ("2026-02", -100), ("2026-03", 0)])
    up, down, flat = chart.bars
    assert chart.baseline == pytest.approx(TOP + PLOT_HEIGHT * 300 / 400)
    assert (up.y + up.height, up.height) == (pytest.approx(chart.baseline), pytest.approx(PLOT_HEIGHT * 3 / 4))
    assert (down.y, down.height, down.negative) == (pytest.approx(chart.baseline), pytest.approx(PLOT_HEIGHT / 4), True)
    assert flat.height == 0 and not flat.negative
    assert down.value_y > down.y + down.height and up.value_y < up.y  # each value outside its bar
    assert [bar.center for bar in chart.bars] == [SLOT_WIDTH / 2, SLOT_WIDTH * 1.5, SLOT_WIDTH * 2.5]
    assert (chart.width, chart.height) == (3 * SLOT_WIDTH, TOP + PLOT_HEIGHT + BOTTOM)
    assert max(bar.value_y for bar in chart.bars) < chart.label_y < chart.height


def test_an_empty_or_all_zero_chart_has_no_division_by_zero() -> None:
    assert bar_chart([]).bars == () and bar_chart([]).width == SLOT_WIDTH
    [zero] = bar_chart([("2026-01", 0)]).bars
    assert zero.height == 0


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

"""The programme dashboard's figures from the services' answers, and its chart geometry."""

from __future__ import annotations

from decimal import Decimal

from services.portal.domain import programme as rules

D = Decimal


def partner(pid: str, tier: str, *periods: tuple[str, str, str]) -> dict[str, object]:
    by_period = [{"period": p, "sourced": s, "influenced": i} for p, s, i in periods]
    total = sum((D(s) + D(i) for _, s, i in periods), D(0))
    return {
        "partner_id": pid,
        "company_name": pid.upper(),
        "tier": tier,
        "revenue": {"by_period": by_period, "total": str(total)},
    }


def test_revenue_adds_up_by_quarter_and_tier() -> None:
    cells = rules.revenue_by_tier_and_quarter(
        [
            partner("a", "gold", ("2026-Q3", "100.00", "0"), ("2026-Q4", "50.00", "5.00")),
            partner("b", "gold", ("2026-Q4", "10.00", "1.00")),
            partner("c", "silver", ("2026-Q4", "0", "7.50")),
            {"partner_id": "d", "tier": "gold", "revenue": None},
        ]
    )
    assert [(c.quarter, c.tier, c.sourced, c.influenced, c.total) for c in cells] == [
        ("2026-Q3", "gold", D("100.00"), D("0"), D("100.00")),
        ("2026-Q4", "gold", D("60.00"), D("6.00"), D("66.00")),
        ("2026-Q4", "silver", D("0"), D("7.50"), D("7.50")),
    ]


def entry(what: str, status: str, at: str) -> dict[str, str]:
    return {"what": what, "status": status, "at": at}


def test_registration_decisions_count_each_first_final_decision() -> None:
    submitted = {"submitted_at": "2026-12-01T10:00:00+00:00"}
    found = rules.registration_decisions(
        [
            (submitted, [entry("decided", "approved", "2026-12-01T10:00:00+00:00")]),
            (
                submitted,
                [
                    entry("decided", "pending_review", "2026-12-01T10:00:00+00:00"),
                    entry("reviewed", "rejected", "2026-12-01T16:00:00+00:00"),
                    entry("expired", "expired", "2026-12-09T16:00:00+00:00"),
                ],
            ),
            (
                submitted,
                [
                    entry("decided", "pending_review", "2026-12-01T10:00:00+00:00"),
                    entry("auto_decided", "approved", "2026-12-04T10:00:00+00:00"),
                ],
            ),
            (submitted, [entry("decided", "pending_review", "2026-12-01T10:00:00+00:00")]),
        ]
    )
    assert (found.approved, found.rejected, found.automatic, found.manual) == (2, 1, 2, 1)
    assert found.approval_rate == D("66.7")
    assert found.automatic_share == D("66.7")
    assert found.median_hours == 6.0
    assert found.median_manual_hours == 6.0
    assert rules.registration_decisions([]).approval_rate is None


def test_onboarding_decisions_are_automatic_unless_a_person_acted() -> None:
    histories = [
        [
            {"change": "applied", "acted_by": "applicant"},
            {"change": "qualified", "acted_by": "onboarding"},
            {"change": "activated", "acted_by": "cm@vendor"},
            {"change": "tier_changed", "acted_by": None},
            {"change": "updated", "acted_by": "cm@vendor"},
        ]
    ]
    assert rules.onboarding_decisions(histories) == (2, 1)


def test_top_partners_rank_by_attributed_revenue_and_leave_out_none() -> None:
    top = rules.top_partners(
        [
            partner("a", "gold", ("2026-Q4", "10.00", "0")),
            partner("b", "gold", ("2026-Q4", "30.00", "0")),
            partner("c", "gold"),
            partner("d", "gold", ("2026-Q4", "0", "30.00")),
        ],
        count=2,
    )
    assert [p["partner_id"] for p in top] == ["b", "d"]


def test_bars_are_sized_against_the_largest() -> None:
    drawn = rules.bars([("a", D(50), "50"), ("b", D(100), "100"), ("c", D(0), "0")])
    assert [(b.label, b.width) for b in drawn] == [("a", 50.0), ("b", 100.0), ("c", 0.0)]
    assert [b.y for b in drawn] == [0, 30, 60]
    assert rules.bars([("z", D(0), "0")])[0].width == 0.0
    assert rules.chart_height(0) == 30

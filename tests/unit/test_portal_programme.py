"""The programme dashboard's figures from programme's KPI report, and its chart geometry."""

from __future__ import annotations

from decimal import Decimal

from services.portal.domain import programme as rules

D = Decimal


def revenue_row(
    quarter: str, tier: str, currency: str, sourced: str, influenced: str, region: str = "DE"
) -> dict[str, str]:
    return {
        "quarter": quarter,
        "tier": tier,
        "partner_type": "reseller",
        "region": region,
        "currency": currency,
        "sourced": sourced,
        "influenced": influenced,
    }


def test_revenue_adds_up_by_quarter_tier_and_currency_never_across_currencies() -> None:
    cells = rules.revenue_by_tier_and_quarter(
        [
            revenue_row("2026-Q4", "gold", "EUR", "50.00", "5.00"),
            revenue_row("2026-Q3", "gold", "EUR", "100.00", "0"),
            revenue_row("2026-Q4", "gold", "EUR", "10.00", "1.00", region="FR"),
            revenue_row("2026-Q4", "gold", "USD", "7.00", "0"),
            revenue_row("2026-Q4", "silver", "EUR", "0", "7.50"),
        ]
    )
    assert [(c.quarter, c.tier, c.currency, c.sourced, c.influenced, c.total) for c in cells] == [
        ("2026-Q3", "gold", "EUR", D("100.00"), D("0"), D("100.00")),
        ("2026-Q4", "gold", "EUR", D("60.00"), D("6.00"), D("66.00")),
        ("2026-Q4", "gold", "USD", D("7.00"), D("0"), D("7.00")),
        ("2026-Q4", "silver", "EUR", D("0"), D("7.50"), D("7.50")),
    ]
    assert rules.revenue_by_quarter(cells) == [
        ("2026-Q3 EUR", D("100.00"), "EUR", "100.00 EUR (sourced 100.00, influenced 0)"),
        ("2026-Q4 EUR", D("73.50"), "EUR", "73.50 EUR (sourced 60.00, influenced 13.50)"),
        ("2026-Q4 USD", D("7.00"), "USD", "7.00 USD (sourced 7.00, influenced 0)"),
    ]


def test_decisions_are_the_reports_shares_in_percent() -> None:
    found = rules.Decisions.of(
        {
            "decisions": 3,
            "approved": 2,
            "rejected": 1,
            "approval_share": "0.6667",
            "automatic": 2,
            "automatic_share": "0.6667",
            "time_to_decision": {"count": 3, "p50_hours": 6.04, "p90_hours": 72.0},
        }
    )
    assert (found.approved, found.rejected, found.automatic, found.manual) == (2, 1, 2, 1)
    assert found.approval_rate == D("66.7")
    assert found.automatic_share == D("66.7")
    assert (found.p50_hours, found.p90_hours) == (6.0, 72.0)
    nothing = rules.Decisions.of(
        {
            "decisions": 0,
            "approved": 0,
            "rejected": 0,
            "approval_share": None,
            "automatic": 0,
            "automatic_share": None,
            "time_to_decision": {"count": 0, "p50_hours": None, "p90_hours": None},
        }
    )
    assert (nothing.approval_rate, nothing.automatic_share, nothing.p50_hours) == (None, None, None)
    # From the counts, not the report's four-place ratio rounded again (0.1235 -> 12.4%).
    counted = rules.Decisions.of(
        {
            "decisions": 1_000_000,
            "approved": 123_496,
            "rejected": 876_504,
            "approval_share": "0.1235",
            "automatic": 123_496,
            "automatic_share": "0.1235",
            "time_to_decision": {"count": 0, "p50_hours": None, "p90_hours": None},
        }
    )
    assert (counted.approval_rate, counted.automatic_share) == (D("12.3"), D("12.3"))


def spend_row(
    quarter: str, currency: str, revenue: str, incentives: str, mdf: str
) -> dict[str, str]:
    return {
        "quarter": quarter,
        "currency": currency,
        "attributed_revenue": revenue,
        "incentives": incentives,
        "mdf_claimed": mdf,
        "mdf_accrued": "0",
    }


def test_spend_sums_each_currency_over_its_quarters() -> None:
    spend = rules.spend_by_currency(
        [
            spend_row("2026-Q3", "EUR", "1000.00", "30.00", "0"),
            spend_row("2026-Q4", "EUR", "500.00", "15.00", "5.00"),
            spend_row("2026-Q4", "USD", "0", "0", "12.00"),
        ]
    )
    assert [(s.currency, s.revenue, s.spent, s.per_hundred) for s in spend] == [
        ("EUR", D("1500.00"), D("50.00"), D("3.33")),
        ("USD", D("0"), D("12.00"), None),
    ]


def test_top_partners_carry_their_names_or_their_ids() -> None:
    top = rules.top_partners(
        [
            {
                "partner_id": "b",
                "currency": "EUR",
                "tier": "gold",
                "sourced": "30.00",
                "influenced": "0",
                "total": "30.00",
            },
            {
                "partner_id": "gone",
                "currency": "EUR",
                "tier": "unknown",
                "sourced": "0",
                "influenced": "10.00",
                "total": "10.00",
            },
        ],
        {"b": "Beta GmbH"},
    )
    assert [(p["company_name"], p["total"]) for p in top] == [
        ("Beta GmbH", D("30.00")),
        ("gone", D("10.00")),
    ]


def test_bars_are_sized_against_the_largest_of_their_own_currency() -> None:
    drawn = rules.bars(
        [
            ("a", D(50), "EUR", "50 EUR"),
            ("b", D(100), "EUR", "100 EUR"),
            ("c", D(0), "EUR", "0 EUR"),
            ("y", D(90000), "JPY", "90000 JPY"),
        ]
    )
    assert [(b.label, b.width, b.currency) for b in drawn] == [
        ("a", 50.0, "EUR"),
        ("b", 100.0, "EUR"),
        ("c", 0.0, "EUR"),
        ("y", 100.0, "JPY"),
    ]
    assert [b.y for b in drawn] == [0, 30, 60, 90]
    assert rules.bars([("z", D(0), "EUR", "0")])[0].width == 0.0
    assert rules.chart_height(0) == 30

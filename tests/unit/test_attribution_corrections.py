"""Corrections (reversal + new credit, never an edit), the lock period, the health score and
the configuration file format."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.attribution.domain.config import AttributionConfig, HealthPolicy, ModelName
from services.attribution.domain.corrections import (
    HeldCredit,
    lock_date,
    partner_reason,
    settle,
)
from services.attribution.domain.health import HealthInputs, health_score
from services.attribution.domain.models import Attribution, Touchpoint, TouchpointKind, attribute
from services.attribution.settings import load_config
from shared.events.attribution import CreditKind

CLOSE = date(2026, 3, 31)
END = datetime(2026, 4, 1, tzinfo=UTC)
CONFIG = AttributionConfig(model=ModelName.LINEAR, lock_period_days=90)
TOUCHES = [
    Touchpoint("r", "alpha", TouchpointKind.SOURCED_REGISTRATION, END - timedelta(days=50)),
    Touchpoint("m", "beta", TouchpointKind.CO_SELL_MEETING, END - timedelta(days=10)),
]
SOON = END + timedelta(days=1)


def won(
    amount: str = "1000", touches: list[Touchpoint] = TOUCHES, close: date = CLOSE
) -> Attribution:
    return attribute(CONFIG, touches, Decimal(amount), "USD", close)


def held_from(attribution: Attribution, prefix: str = "c") -> tuple[HeldCredit, ...]:
    return tuple(
        HeldCredit(
            f"{prefix}-{line.partner_id}",
            line.partner_id,
            line.kind,
            line.amount,
            attribution.currency,
            line.original_amount,
            attribution.original_currency,
            attribution.close_date,
        )
        for line in attribution.lines
    )


def test_first_close_issues_every_line() -> None:
    result = settle(CONFIG, (), won(), SOON, "won")
    assert [(x.partner_id, x.amount) for x in result.issue] == [
        ("alpha", Decimal("500.00")),
        ("beta", Decimal("500.00")),
    ]
    assert result.reverse == ()


def test_no_touchpoints_no_credits_no_error() -> None:
    result = settle(CONFIG, (), won(touches=[]), SOON, "won")
    assert not result.changes
    assert result.explanation == "won: no credits"


def test_the_same_state_again_changes_nothing() -> None:
    held = held_from(won())
    result = settle(CONFIG, held, won(), SOON, "revision 3")
    assert not result.changes
    assert "unchanged" in result.explanation


def test_amount_change_reverses_and_reissues_each_changed_credit() -> None:
    held = held_from(won())
    result = settle(CONFIG, held, won("1200"), SOON, "amount changed")
    assert [c.credit_id for c in result.reverse] == ["c-alpha", "c-beta"]
    assert [(x.partner_id, x.amount) for x in result.issue] == [
        ("alpha", Decimal("600.00")),
        ("beta", Decimal("600.00")),
    ]
    assert result.replaces == {"alpha": "c-alpha", "beta": "c-beta"}


def test_late_touchpoint_only_touches_the_credits_that_change() -> None:
    held = held_from(
        won(
            "900",
            [
                *TOUCHES[:1],
                Touchpoint("x", "gamma", TouchpointKind.REFERRAL, END - timedelta(days=3)),
            ],
        )
    )
    # held: alpha and gamma 450 each; beta's late meeting makes it three ways, 300 each
    later = [*TOUCHES, Touchpoint("x", "gamma", TouchpointKind.REFERRAL, END - timedelta(days=3))]
    result = settle(CONFIG, held, won("900", later), SOON, "late touchpoint")
    assert sorted(c.credit_id for c in result.reverse) == ["c-alpha", "c-gamma"]
    assert sorted((x.partner_id, x.amount) for x in result.issue) == [
        ("alpha", Decimal("300.00")),
        ("beta", Decimal("300.00")),
        ("gamma", Decimal("300.00")),
    ]
    assert "beta" not in result.replaces


def test_kind_change_reissues_the_partner_as_sourced() -> None:
    influenced = [Touchpoint("m", "alpha", TouchpointKind.REFERRAL, END - timedelta(days=10))]
    held = held_from(won(touches=influenced))
    sourced = [
        *influenced,
        Touchpoint("r", "alpha", TouchpointKind.SOURCED_REGISTRATION, END - timedelta(days=50)),
    ]
    result = settle(CONFIG, held, won(touches=sourced), SOON, "registration approved")
    assert [c.kind for c in result.reverse] == [CreditKind.INFLUENCED]
    assert [(x.kind, x.amount) for x in result.issue] == [(CreditKind.SOURCED, Decimal("1000.00"))]
    assert result.replaces == {"alpha": "c-alpha"}


@pytest.mark.parametrize("trigger", ["deal lost", "deal reopened", "deal deleted"])
def test_lost_reopened_or_deleted_reverses_everything(trigger: str) -> None:
    result = settle(CONFIG, held_from(won()), None, SOON, trigger)
    assert len(result.reverse) == 2
    assert result.issue == ()
    assert result.explanation == trigger


def test_a_partner_is_told_what_became_of_its_credit_never_what_another_partner_did() -> None:
    # A new amount and gamma in beta's place: alpha's credit is corrected, beta's goes; the
    # trigger names gamma.
    held = held_from(won("900"))
    later = [
        *TOUCHES[:1],
        Touchpoint("x", "gamma", TouchpointKind.REFERRAL, END - timedelta(days=3)),
    ]
    result = settle(CONFIG, held, won("1200", later), SOON, "late touchpoint x (referral by gamma)")
    told = {credit.partner_id: partner_reason(result, credit) for credit in result.reverse}
    assert told == {
        "alpha": "the deal's credits were settled again: a corrected sourced credit of 600.00 "
        "USD replaces it",
        "beta": "the deal's credits were settled again and no longer credit this partner",
    }


def test_after_the_lock_period_credits_are_final() -> None:
    held = held_from(won())
    locked_at = lock_date(CONFIG, CLOSE)
    assert locked_at == END + timedelta(days=90)
    just_before = settle(CONFIG, held, None, locked_at - timedelta(seconds=1), "deal lost")
    assert len(just_before.reverse) == 2
    after = settle(CONFIG, held, None, locked_at, "deal lost")
    assert (after.changes, after.locked) == (False, True)
    assert "credits are final since 2026-06-30" in after.explanation


def test_a_re_won_deal_without_credits_is_credited_even_after_the_lock() -> None:
    result = settle(CONFIG, (), won(), END + timedelta(days=400), "won again")
    assert len(result.issue) == 2


@settings(max_examples=150, deadline=None)
@given(
    first=st.decimals(min_value=0, max_value=10**7, places=2),
    second=st.decimals(min_value=0, max_value=10**7, places=2),
    extra=st.booleans(),
)
def test_after_settling_the_deal_holds_exactly_the_new_split(
    first: Decimal, second: Decimal, extra: bool
) -> None:
    before = won(str(first))
    touches = TOUCHES + (
        [Touchpoint("x", "gamma", TouchpointKind.REFERRAL, END - timedelta(days=2))]
        if extra
        else []
    )
    after = won(str(second), touches)
    held = held_from(before)
    result = settle(CONFIG, held, after, SOON, "change")
    reversed_ids = {c.credit_id for c in result.reverse}
    remaining = [c.amount for c in held if c.credit_id not in reversed_ids]
    assert sum(remaining) + sum(x.amount for x in result.issue) == (second if after.lines else 0)
    # net effect issued - reversed equals the change in attributed revenue
    delta = sum(x.amount for x in result.issue) - sum(c.amount for c in result.reverse)
    assert delta == sum(x.amount for x in after.lines) - sum(x.amount for x in before.lines)


# ---- health score

POLICY = HealthPolicy()


def test_health_score_combines_revenue_win_rate_velocity_and_penalties() -> None:
    score = health_score(
        POLICY,
        HealthInputs(
            revenue=Decimal(250000),
            won=3,
            lost=1,
            days_to_close=(30, 120),
            conflicts=1,
            rejections=0,
            expiries=1,
        ),
    )
    # revenue 0.5, win rate 0.75, velocity: 75 days avg -> (180-75)/120 = 0.875, penalty 9
    assert (score.revenue, score.win_rate, score.velocity, score.penalty) == (
        Decimal("0.5000"),
        Decimal("0.7500"),
        Decimal("0.8750"),
        Decimal(9),
    )
    assert score.score == Decimal("59.8")  # 100*(0.2+0.225+0.2625) - 9 = 59.75, half-even
    assert any("1 conflicts" in r for r in score.reasons)


def test_health_score_of_a_new_partner_is_zero_and_says_why() -> None:
    score = health_score(POLICY, HealthInputs(Decimal(0), 0, 0, (), 0, 0, 0))
    assert score.score == 0
    assert "no closed deals yet" in score.reasons[1]


def test_health_penalties_are_capped_and_the_score_never_negative() -> None:
    score = health_score(POLICY, HealthInputs(Decimal(10**9), 1, 0, (1,), 50, 50, 50))
    assert score.penalty == Decimal(30)
    assert score.score == Decimal("70.0")
    bad = health_score(POLICY, HealthInputs(Decimal(0), 0, 5, (), 50, 0, 0))
    assert bad.score == 0


def test_enablement_takes_its_weight_once_measured_and_nothing_before() -> None:
    inputs = HealthInputs(Decimal(250000), 3, 1, (30, 120), 1, 0, 1)
    unmeasured = health_score(POLICY, inputs)
    assert unmeasured.enablement is None
    assert unmeasured.score == Decimal("59.8")  # as without the signal: it neither helps nor hurts
    assert any("enablement: not measured yet" in r for r in unmeasured.reasons)
    # core 0.6875 (above); enablement 80/100 at weight 0.2: 100*(0.8*0.6875 + 0.2*0.8) - 9
    engaged = health_score(POLICY, replace(inputs, enablement=Decimal(80)))
    assert (engaged.enablement, engaged.score) == (Decimal("0.8000"), Decimal("62.0"))
    idle = health_score(POLICY, replace(inputs, enablement=Decimal(0)))
    assert idle.score == Decimal("46.0")  # 100*(0.8*0.6875) - 9
    assert any("enablement 0 of 100" in r for r in idle.reasons)


@settings(max_examples=200, deadline=None)
@given(
    revenue=st.decimals(min_value=-1000, max_value=10**8, places=2),
    won_=st.integers(0, 50),
    lost=st.integers(0, 50),
    days=st.lists(st.integers(0, 1000), max_size=10),
    signals=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)),
    enablement=st.none() | st.decimals(min_value=0, max_value=100, places=1),
)
def test_health_score_stays_between_0_and_100(
    revenue: Decimal,
    won_: int,
    lost: int,
    days: list[int],
    signals: tuple[int, int, int],
    enablement: Decimal | None,
) -> None:
    score = health_score(
        POLICY, HealthInputs(revenue, won_, lost, tuple(days), *signals, enablement=enablement)
    )
    assert Decimal(0) <= score.score <= Decimal(100)


# ---- configuration


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "attribution.json"
    path.write_text(
        json.dumps(
            {
                "version": "2027-01",
                "model": "time_decay",
                "half_life_days": "14",
                "lock_period_days": 30,
                "rates": {"EUR": {"2027-01-01": "1.2"}},
            }
        )
    )
    config = load_config(str(path))
    assert (config.version, config.model, config.half_life_days, config.lock_period_days) == (
        "2027-01",
        ModelName.TIME_DECAY,
        Decimal(14),
        30,
    )
    assert config.rate_on("EUR", date(2027, 3, 1)) == (Decimal("1.2"), date(2027, 1, 1))
    assert config.rate_on("GBP", date(2027, 3, 1)) is None  # the file's table replaces the default
    assert load_config("") == AttributionConfig()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"model": "everyone_wins"}, "model"),
        ({"lookback": 3}, "Extra inputs are not permitted"),
        ({"rates": {"EUR": {"2026-01-01": "-1"}}}, "must be positive"),
        (
            {"health": {"weights": {"revenue": "0.5", "win_rate": "0.5", "velocity": "0.5"}}},
            "must sum to 1",
        ),
        (
            {"position_weights": {"first": "0", "middle": "1", "last": "0"}},
            r"first \+ last must be positive",
        ),
    ],
)
def test_config_file_errors_are_precise(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValidationError, match=message):
        load_config(str(path))


def test_rates_are_never_taken_from_after_the_close_date() -> None:
    config = AttributionConfig(
        rates={"EUR": {date(2026, 1, 1): Decimal("1.1"), date(2026, 2, 1): Decimal("1.3")}}
    )
    assert config.rate_on("EUR", date(2026, 1, 31)) == (Decimal("1.1"), date(2026, 1, 1))
    assert config.rate_on("EUR", date(2026, 2, 1)) == (Decimal("1.3"), date(2026, 2, 1))
    assert config.rate_on("USD", date(2000, 1, 1)) == (Decimal(1), date(2000, 1, 1))

"""Attribution models, pure: one test per model, and the invariants every model must keep."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.attribution.credit_events import campaign_of
from services.attribution.domain.config import AttributionConfig, ModelName, PositionWeights
from services.attribution.domain.models import (
    Attribution,
    CannotAttribute,
    Touchpoint,
    TouchpointKind,
    allocate,
    attribute,
)
from shared.events.attribution import CreditKind

CLOSE = date(2026, 3, 31)
END = datetime(2026, 4, 1, tzinfo=UTC)  # the close date's end


def tp(
    tid: str, partner: str, days_before_close: float, kind: TouchpointKind = TouchpointKind.REFERRAL
) -> Touchpoint:
    return Touchpoint(tid, partner, kind, END - timedelta(days=days_before_close))


SOURCED = TouchpointKind.SOURCED_REGISTRATION
JOURNEY = [
    tp("t1", "alpha", 60, SOURCED),
    tp("t2", "beta", 40, TouchpointKind.CO_SELL_MEETING),
    tp("t3", "gamma", 20, TouchpointKind.TECHNICAL_VALIDATION),
    tp("t4", "beta", 5, TouchpointKind.MARKETPLACE_TRANSACTION),
]


def split(
    model: ModelName,
    touchpoints: list[Touchpoint] = JOURNEY,
    amount: str = "10000",
    currency: str = "USD",
    **config: object,
) -> dict[str, Decimal]:
    result = attribute(
        AttributionConfig(model=model, **config),  # type: ignore[arg-type]
        touchpoints,
        Decimal(amount),
        currency,
        CLOSE,
    )
    return {line.partner_id: line.amount for line in result.lines}


def test_sourced_only_gives_everything_to_the_registration_holder() -> None:
    assert split(ModelName.SOURCED_ONLY) == {"alpha": Decimal("10000.00")}


def test_sourced_only_without_a_registration_credits_nobody() -> None:
    assert split(ModelName.SOURCED_ONLY, JOURNEY[1:]) == {}


def test_first_touch() -> None:
    assert split(ModelName.FIRST_TOUCH) == {"alpha": Decimal("10000.00")}


def test_last_touch() -> None:
    assert split(ModelName.LAST_TOUCH) == {"beta": Decimal("10000.00")}


def test_linear_counts_touchpoints() -> None:
    assert split(ModelName.LINEAR) == {
        "alpha": Decimal("2500.00"),
        "beta": Decimal("5000.00"),
        "gamma": Decimal("2500.00"),
    }


def test_position_based_40_20_40() -> None:
    # first alpha 40%, middles beta 10% and gamma 10%, last beta 40%
    assert split(ModelName.POSITION_BASED) == {
        "alpha": Decimal("4000.00"),
        "beta": Decimal("5000.00"),
        "gamma": Decimal("1000.00"),
    }


def test_position_based_with_two_touches_splits_first_to_last_ratio() -> None:
    two = [JOURNEY[0], JOURNEY[2]]
    assert split(ModelName.POSITION_BASED, two) == {
        "alpha": Decimal("5000.00"),
        "gamma": Decimal("5000.00"),
    }
    weighted = split(
        ModelName.POSITION_BASED,
        two,
        position_weights=PositionWeights(
            first=Decimal("0.3"), middle=Decimal("0.4"), last=Decimal("0.1")
        ),
    )
    assert weighted == {"alpha": Decimal("7500.00"), "gamma": Decimal("2500.00")}


def test_position_based_with_one_touch_gives_it_all() -> None:
    assert split(ModelName.POSITION_BASED, [JOURNEY[2]]) == {"gamma": Decimal("10000.00")}


def test_time_decay_halves_per_half_life() -> None:
    touches = [tp("a", "alpha", 31), tp("b", "beta", 1)]
    # weights 0.5 and 1 -> one third and two thirds; the odd cent goes to the larger remainder
    assert split(ModelName.TIME_DECAY, touches, half_life_days=Decimal(30)) == {
        "alpha": Decimal("3333.33"),
        "beta": Decimal("6666.67"),
    }


def test_lookback_window_excludes_old_influence_but_not_the_registration() -> None:
    old = [tp("r", "alpha", 400, SOURCED), tp("x", "beta", 400), tp("y", "gamma", 10)]
    result = attribute(AttributionConfig(model=ModelName.LINEAR), old, Decimal(100), "USD", CLOSE)
    assert {line.partner_id for line in result.lines} == {"alpha", "gamma"}
    assert [t.touchpoint_id for t, _ in result.excluded] == ["x"]
    strict = AttributionConfig(model=ModelName.LINEAR, sourced_ignores_lookback=False)
    only_recent = attribute(strict, old, Decimal(100), "USD", CLOSE)
    assert {line.partner_id for line in only_recent.lines} == {"gamma"}


def test_touchpoints_after_the_close_count_only_within_post_close_days() -> None:
    late = [tp("a", "alpha", 5), tp("b", "beta", -3, TouchpointKind.IMPLEMENTATION)]
    assert set(split(ModelName.LINEAR, late)) == {"alpha"}
    assert set(split(ModelName.LINEAR, late, post_close_days=7)) == {"alpha", "beta"}


def test_sourced_and_influenced_are_separate_figures() -> None:
    result = attribute(
        AttributionConfig(model=ModelName.LINEAR), JOURNEY, Decimal(10000), "USD", CLOSE
    )
    kinds = {line.partner_id: line.kind for line in result.lines}
    assert kinds == {
        "alpha": CreditKind.SOURCED,
        "beta": CreditKind.INFLUENCED,
        "gamma": CreditKind.INFLUENCED,
    }
    assert (result.sourced, result.influenced) == (Decimal("2500.00"), Decimal("7500.00"))


def linear_in(currency: str, amount: str, rates: dict[date, Decimal]) -> Attribution:
    """`amount` in `currency` split linearly over the journey's first three touchpoints, at
    the currency's `rates` (each in force from its date on)."""
    config = AttributionConfig(model=ModelName.LINEAR, rates={currency: rates})
    return attribute(config, JOURNEY[:3], Decimal(amount), currency, CLOSE)


def test_multi_currency_uses_the_close_dates_rate_and_both_sums_are_exact() -> None:
    rates = {date(2026, 1, 1): Decimal("1.10"), date(2026, 4, 1): Decimal("1.50")}
    result = linear_in("EUR", "1000", rates)
    assert (result.fx_rate, result.rate_date) == (Decimal("1.10"), date(2026, 1, 1))  # not April's
    assert result.amount == Decimal("1100.00")
    assert [line.original_amount for line in result.lines] == [
        Decimal("333.34"),
        Decimal("333.33"),
        Decimal("333.33"),
    ]
    assert sum(line.amount for line in result.lines) == Decimal("1100.00")
    assert any("fx: 1 EUR = 1.10 USD" in r for r in result.lines[0].reasons)


def test_zero_decimal_currency_splits_in_whole_units() -> None:
    result = linear_in("JPY", "1000000", {date(2026, 1, 1): Decimal("0.0067")})
    assert [line.original_amount for line in result.lines] == [
        Decimal("333334"),
        Decimal("333333"),
        Decimal("333333"),
    ]
    assert result.amount == Decimal("6700.00")


@pytest.mark.parametrize(
    ("amount", "currency", "close", "message"),
    [
        (None, "USD", CLOSE, "won deal lacks amount"),
        (Decimal(5), None, None, "won deal lacks currency, close_date"),
        (Decimal(-5), "USD", CLOSE, "negative amount"),
        (Decimal(5), "CHF", CLOSE, "no CHF->USD rate on or before the close date 2026-03-31"),
        (
            Decimal(5),
            "EUR",
            date(2023, 12, 31),
            "no EUR->USD rate on or before the close date 2023-12-31",
        ),
    ],
)
def test_unattributable_won_deals_say_why(
    amount: Decimal | None, currency: str | None, close: date | None, message: str
) -> None:
    with pytest.raises(CannotAttribute, match=message):
        attribute(AttributionConfig(), JOURNEY, amount, currency, close)


@pytest.mark.parametrize(
    ("amount", "currency", "places"),
    [("1000.5", "JPY", 0), ("1000.75", "JPY", 0), ("0.4", "JPY", 0), ("1000001.5", "VND", 0)],
)
def test_an_amount_finer_than_its_currency_is_refused_not_rounded(
    amount: str, currency: str, places: int
) -> None:
    """Rounded first, 1000.75 JPY was credited as 1001 and 0.4 JPY as nothing at all."""
    config = AttributionConfig(rates={currency: {date(2024, 1, 1): Decimal("0.0065")}})
    with pytest.raises(CannotAttribute, match=f"{currency} has {places}: the deal cannot be"):
        attribute(config, JOURNEY, Decimal(amount), currency, CLOSE)


def test_a_currency_without_minor_units_is_split_in_whole_units() -> None:
    """ISO 4217's minor units, not a short table with 2 for everything else: VND has none."""
    config = AttributionConfig(
        model=ModelName.LINEAR, rates={"VND": {date(2024, 1, 1): Decimal("0.00004")}}
    )
    result = attribute(config, JOURNEY, Decimal(1000001), "VND", CLOSE)
    # Four touches, two of them beta's: 250000.25, 500000.5 and 250000.25 in cents before.
    assert {line.partner_id: line.original_amount for line in result.lines} == {
        "alpha": Decimal(250000),
        "beta": Decimal(500001),
        "gamma": Decimal(250000),
    }


def test_a_reporting_currency_finer_than_the_ledgers_is_refused_at_start() -> None:
    """Found in review: KWD credits split to three decimals, which incentives' ledger (two)
    refused, every one dead-lettered, while programme counted their revenue."""
    with pytest.raises(ValidationError, match="reporting_currency KWD has 3 decimals; the"):
        AttributionConfig(reporting_currency="KWD")
    with pytest.raises(ValidationError, match="reporting_currency USD has 3 decimals"):
        AttributionConfig(minor_units={"USD": 3})
    assert AttributionConfig(reporting_currency="JPY").minor_unit("JPY") == 0


def test_reasons_explain_each_line() -> None:
    result = attribute(AttributionConfig(), JOURNEY, Decimal(10000), "USD", CLOSE)
    beta = next(line for line in result.lines if line.partner_id == "beta")
    assert beta.reasons[0] == "position_based (config 2026-11-attr-1): 50.00% of 10000.00 USD"
    assert any("co_sell_meeting t2" in r and "middle" in r for r in beta.reasons)
    assert any("marketplace_transaction t4" in r and "last touch" in r for r in beta.reasons)


def test_allocate_gives_leftover_cents_to_largest_remainders_then_by_key() -> None:
    assert allocate(
        Decimal("0.02"), 2, [("b", Decimal(1)), ("a", Decimal(1)), ("c", Decimal(1))]
    ) == [
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal("0.00"),
    ]
    assert allocate(Decimal("10"), 2, [("a", Decimal(2)), ("b", Decimal(1))]) == [
        Decimal("6.67"),
        Decimal("3.33"),
    ]


# ---- invariants, for every model

partners = st.sampled_from(["p1", "p2", "p3", "p4", "p5"])
kinds = st.sampled_from(list(TouchpointKind))
touchpoint_lists = st.lists(
    st.builds(
        Touchpoint,
        touchpoint_id=st.text("abcdef0123456789", min_size=4, max_size=8),
        partner_id=partners,
        kind=kinds,
        occurred_at=st.integers(min_value=-10, max_value=500).map(
            lambda d: END - timedelta(hours=d * 7)
        ),
    ),
    max_size=12,
    unique_by=lambda t: t.touchpoint_id,
)
amounts = st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2)
configs = st.builds(
    AttributionConfig,
    model=st.sampled_from(list(ModelName)),
    half_life_days=st.decimals(min_value=Decimal("0.5"), max_value=Decimal(365), places=1),
    lookback_days=st.integers(min_value=0, max_value=200),
)
currencies = st.sampled_from(["USD", "EUR", "JPY", "GBP"])


@settings(max_examples=300, deadline=None)
@given(config=configs, touchpoints=touchpoint_lists, amount=amounts, currency=currencies)
def test_lines_sum_exactly_to_the_amount_and_are_never_negative(
    config: AttributionConfig, touchpoints: list[Touchpoint], amount: Decimal, currency: str
) -> None:
    amount = amount.quantize(Decimal(1).scaleb(-config.minor_unit(currency)), ROUND_DOWN)
    result = attribute(config, touchpoints, amount, currency, CLOSE)
    assert result.original_amount == amount
    if result.lines:
        assert sum(line.original_amount for line in result.lines) == amount
        assert sum(line.amount for line in result.lines) == result.amount
    assert all(line.amount >= 0 and line.original_amount >= 0 for line in result.lines)
    assert all(Decimal(0) <= line.share <= 1 for line in result.lines)
    assert result.sourced + result.influenced == sum((x.amount for x in result.lines), Decimal(0))
    assert len({line.partner_id for line in result.lines}) == len(result.lines)


@settings(max_examples=200, deadline=None)
@given(config=configs, touchpoints=touchpoint_lists, amount=amounts, seed=st.integers())
def test_splits_are_permutation_stable_and_deterministic(
    config: AttributionConfig, touchpoints: list[Touchpoint], amount: Decimal, seed: int
) -> None:
    shuffled = list(touchpoints)
    random.Random(seed).shuffle(shuffled)
    first = attribute(config, touchpoints, amount, "EUR", CLOSE)
    assert attribute(config, shuffled, amount, "EUR", CLOSE) == first
    assert attribute(config, touchpoints, amount, "EUR", CLOSE) == first


@settings(max_examples=200, deadline=None)
@given(touchpoints=touchpoint_lists, amount=amounts)
def test_a_won_deal_with_an_eligible_touchpoint_is_fully_credited(
    touchpoints: list[Touchpoint], amount: Decimal
) -> None:
    result = attribute(AttributionConfig(model=ModelName.LINEAR), touchpoints, amount, "USD", CLOSE)
    if result.considered and amount > 0:
        assert sum(line.amount for line in result.lines) == amount
    else:
        assert result.lines == ()


@settings(max_examples=200, deadline=None)
@given(
    total=amounts,
    places=st.integers(min_value=0, max_value=3),
    weights=st.lists(
        st.decimals(min_value=Decimal("0.0001"), max_value=1000, places=4), min_size=1, max_size=8
    ),
)
def test_allocate_is_exact(total: Decimal, places: int, weights: list[Decimal]) -> None:
    shares = [(f"k{i}", w) for i, w in enumerate(weights)]
    parts = allocate(total, places, shares)
    assert sum(parts) == total.quantize(Decimal(1).scaleb(-places))
    assert all(p >= 0 for p in parts)


def test_the_readme_worked_example_time_decay_in_eur() -> None:
    result = attribute(
        AttributionConfig(model=ModelName.TIME_DECAY), JOURNEY, Decimal(10000), "EUR", CLOSE
    )
    assert (result.fx_rate, result.rate_date, result.amount) == (
        Decimal("1.04"),
        date(2025, 1, 1),
        Decimal("10400.00"),
    )
    assert [(x.partner_id, x.original_amount, x.amount) for x in result.lines] == [
        ("alpha", Decimal("1153.29"), Decimal("1199.42")),
        ("beta", Decimal("5940.60"), Decimal("6178.22")),
        ("gamma", Decimal("2906.11"), Decimal("3022.36")),
    ]


def test_a_partners_credit_names_the_campaign_it_touched_the_deal_through() -> None:
    journey = [
        *JOURNEY,
        Touchpoint("t5", "gamma", TouchpointKind.CAMPAIGN, END - timedelta(days=30), "", "c-2"),
        Touchpoint("t6", "gamma", TouchpointKind.CAMPAIGN, END - timedelta(days=10), "", "c-3"),
        Touchpoint("t7", "delta", TouchpointKind.CAMPAIGN, END - timedelta(days=400), "", "c-old"),
    ]
    result = attribute(
        AttributionConfig(model=ModelName.LINEAR), journey, Decimal("6000"), "USD", CLOSE
    )
    # A campaign touchpoint is an influence like any other: it weighs in the split.
    assert {line.partner_id: line.amount for line in result.lines} == {
        "alpha": Decimal("1000.00"),
        "beta": Decimal("2000.00"),
        "gamma": Decimal("3000.00"),
    }
    assert campaign_of(result, "gamma") == "c-2"  # its earliest campaign touchpoint
    assert campaign_of(result, "beta") is None
    assert campaign_of(result, "delta") is None  # outside the lookback: not considered

"""What a dead letter is made of is storable whatever the record carried; the arithmetic on
attribution's handler path is bounded."""

from __future__ import annotations

import datetime
import time
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import (
    CannotAttribute,
    Touchpoint,
    TouchpointKind,
    attribute,
)
from services.attribution.records import numeric
from shared.dead_lettering import storable


def test_nul_and_lone_surrogates_are_escaped_and_other_text_is_kept() -> None:
    """A lone surrogate cannot arrive through JSON (the parser refuses half a pair), but a
    reason may quote any text: escaped, it can be stored (the rest: test_consumer.py)."""
    assert storable("ptn_probek_k\x00") == "ptn_probek_k\\x00"
    assert storable("x\ud800y") == "x\\ud800y"
    assert storable("Zürich, 東京 \U0001f41d") == "Zürich, 東京 \U0001f41d"
    for text in ("a\x00b", "\udfff", "\x00\ud800"):
        storable(text).encode()  # UTF-8, as asyncpg sends text
        assert "\x00" not in storable(text)


def test_a_huge_whole_amount_is_written_out_without_converting_it_to_binary() -> None:
    """`int()` of 1E+999999 took 85 s of attribution's event loop; 1E+200000 took seconds."""
    started = time.perf_counter()
    assert numeric(Decimal("1E+200000")) == Decimal("1E+200000")
    assert time.perf_counter() - started < 0.5
    assert str(numeric(Decimal("1.5E+3"))) == "1500"


def test_attribution_refuses_a_credit_its_contract_would_refuse() -> None:
    """A deal amount within the contract times a rate within it can exceed what a credit
    carries: the deal is not attributable (dead-lettered with the reason), not a failure of
    the event that announces the credit."""
    config = AttributionConfig(rates={"EUR": {datetime.date(2024, 1, 1): Decimal("1000")}})
    sourced = Touchpoint(
        "t1",
        "alpha",
        TouchpointKind.SOURCED_REGISTRATION,
        datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC),
    )
    with pytest.raises(CannotAttribute, match="a credit must be below 10\\^16"):
        attribute(
            config, [sourced], Decimal("9999999999999999.99"), "EUR", datetime.date(2026, 3, 31)
        )


def test_attribution_config_takes_only_rates_and_minor_units_a_credit_can_carry() -> None:
    with pytest.raises(ValidationError, match="minor_units: XYZ must have 0 to 4, not 6"):
        AttributionConfig(minor_units={"XYZ": 6})
    with pytest.raises(ValidationError, match="rates: EUR on 2024-01-01: Input should be less"):
        AttributionConfig(rates={"EUR": {datetime.date(2024, 1, 1): Decimal("1E+13")}})

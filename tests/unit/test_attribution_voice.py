"""Partner voice as a health signal (services/attribution/domain/voice.py): a falling NPS
between the last quarter and the one before, or a detractor majority, is a penalty with its
reason; too few answers is no signal."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.attribution.domain.config import AttributionConfig, HealthPolicy
from services.attribution.domain.health import HealthInputs, health_score
from services.attribution.domain.voice import (
    QuarterVoice,
    VoiceInputs,
    VoicePolicy,
    voice_inputs,
    voice_signal,
)

POLICY = VoicePolicy()  # 91-day quarters, 3 answers, a 20-point fall: -10; detractors >= 50%: -10
DAY = date(2026, 6, 30)


def quarter(*scores: int) -> QuarterVoice:
    return voice_inputs(POLICY, DAY, [(DAY, s) for s in scores]).last_quarter


def test_nps_is_promoters_minus_detractors_in_percent() -> None:
    assert quarter(10, 9, 8, 3).nps == Decimal("25.0")  # (2 - 1) / 4
    assert quarter(0, 6, 9).nps == Decimal("-33.3")
    assert quarter().nps is None


def test_answers_fall_into_the_last_quarter_or_the_one_before_by_day() -> None:
    answers = [
        (DAY, 10),  # the day scored: last quarter
        (DAY - timedelta(days=90), 9),  # last quarter's first day
        (DAY - timedelta(days=91), 2),  # the quarter before's last day
        (DAY - timedelta(days=181), 7),  # the quarter before's first day
        (DAY - timedelta(days=182), 0),  # older: not counted
        (DAY + timedelta(days=1), 0),  # after the day scored: not counted
    ]
    inputs = voice_inputs(POLICY, DAY, answers)
    assert inputs.last_quarter == QuarterVoice(promoters=2)
    assert inputs.quarter_before == QuarterVoice(passives=1, detractors=1)


def test_a_fall_of_the_threshold_or_more_is_a_negative_trend() -> None:
    before = QuarterVoice(promoters=3, passives=1)  # NPS 75
    fell = voice_signal(POLICY, VoiceInputs(QuarterVoice(promoters=2, passives=2), before))
    assert fell.penalty == Decimal(10)  # NPS 50: a fall of 25 points
    assert any("NPS fell 25.0 points from 75.0" in r for r in fell.reasons)
    # A fall of 19.x points is not enough (threshold 20).
    small = QuarterVoice(promoters=5, passives=4)  # NPS 55.6: a fall of 19.4
    assert voice_signal(POLICY, VoiceInputs(small, before)).penalty == 0
    exact = VoicePolicy(nps_drop_points=Decimal(25))
    assert voice_signal(exact, VoiceInputs(QuarterVoice(2, 2), before)).penalty == Decimal(10)


def test_too_few_answers_is_no_signal_either_way() -> None:
    few_now = voice_signal(POLICY, VoiceInputs(QuarterVoice(detractors=2), QuarterVoice(5)))
    assert few_now.penalty == 0
    assert "fewer than 3): no signal" in few_now.reasons[0]
    # Enough now but too few before: no trend, yet a detractor majority still counts.
    no_trend = voice_signal(POLICY, VoiceInputs(QuarterVoice(1, 1, 1), QuarterVoice(2)))
    assert no_trend.penalty == 0
    assert any("no trend" in r for r in no_trend.reasons)


def test_a_detractor_majority_is_a_penalty_and_both_signals_never_double() -> None:
    gloomy = QuarterVoice(promoters=1, detractors=2)
    alone = voice_signal(POLICY, VoiceInputs(gloomy, QuarterVoice()))
    assert alone.penalty == Decimal(10)
    assert any("detractors 2/3" in r for r in alone.reasons)
    policy = VoicePolicy(trend_penalty=Decimal(8), detractor_penalty=Decimal(6))
    both = voice_signal(policy, VoiceInputs(gloomy, QuarterVoice(promoters=3)))
    assert both.penalty == Decimal(8)  # the larger one
    assert any("the larger of the two counts" in r for r in both.reasons)


def test_voice_penalty_adds_to_the_capped_registration_penalties_with_its_reasons() -> None:
    policy = HealthPolicy()
    inputs = HealthInputs(Decimal(250000), 3, 1, (30, 120), 1, 0, 1)  # 59.8 without voice
    falling = VoiceInputs(QuarterVoice(1, 0, 2), QuarterVoice(promoters=3))
    scored = health_score(policy, replace(inputs, voice=falling))
    assert (scored.voice_penalty, scored.penalty, scored.score) == (
        Decimal(10),
        Decimal(19),
        Decimal("49.8"),
    )
    assert any(r.startswith("voice trend negative") for r in scored.reasons)
    content = VoiceInputs(QuarterVoice(promoters=3), QuarterVoice(promoters=3))
    fine = health_score(policy, replace(inputs, voice=content))
    assert (fine.voice_penalty, fine.score) == (Decimal(0), Decimal("59.8"))
    # Not read at all (None): nothing about voice in the score.
    assert not any("voice" in r for r in health_score(policy, inputs).reasons)


def test_the_voice_policy_is_configurable_and_validated() -> None:
    config = AttributionConfig.model_validate(
        {"health": {"voice": {"min_answers": 5, "nps_drop_points": "15"}}}
    )
    assert (config.health.voice.min_answers, config.health.voice.nps_drop_points) == (
        5,
        Decimal(15),
    )
    with pytest.raises(ValidationError, match="detractor_share"):
        AttributionConfig.model_validate({"health": {"voice": {"detractor_share": "1.5"}}})
    with pytest.raises(ValidationError, match="nps_fall"):
        AttributionConfig.model_validate({"health": {"voice": {"nps_fall": 3}}})

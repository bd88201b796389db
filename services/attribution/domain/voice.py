"""Partner voice as a health signal: what the partner's people answered to the programme's
satisfaction surveys (programme.survey_answered.v1), read as a trend.

Two quarters are compared, each `quarter_days` long, ending with the day scored: the last
quarter (day - quarter_days, day] and the one before it. NPS of a quarter = % promoters (9-10)
- % detractors (0-6) of its answers. The voice is **negative** when

- its trend fell: both quarters hold at least `min_answers` answers and the last quarter's NPS is
  at least `nps_drop_points` below the one before (`trend_penalty`), or
- detractors dominate: the last quarter holds at least `min_answers` answers and at least
  `detractor_share` of them are detractors (`detractor_penalty`).

Either makes a penalty on the health score; when both hold, the larger one counts (one signal,
never doubled). Too few answers is no signal: silence neither helps nor hurts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from pydantic import BaseModel, ConfigDict, Field

ZERO = Decimal(0)


class VoicePolicy(BaseModel):
    """When partner voice is a negative health signal, and what it costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quarter_days: int = Field(default=91, ge=1)
    min_answers: int = Field(default=3, ge=1)  # per quarter compared
    nps_drop_points: Decimal = Field(default=Decimal("20"), gt=0)
    trend_penalty: Decimal = Field(default=Decimal("10"), ge=0)
    detractor_share: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    detractor_penalty: Decimal = Field(default=Decimal("10"), ge=0)


@dataclass(frozen=True)
class QuarterVoice:
    """A quarter's answers counted by NPS category."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def answers(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> Decimal | None:
        if not self.answers:
            return None
        raw = Decimal(100 * (self.promoters - self.detractors)) / self.answers
        return raw.quantize(Decimal("0.1"), ROUND_HALF_EVEN)

    @property
    def detractor_share(self) -> Decimal | None:
        if not self.answers:
            return None
        return Decimal(self.detractors) / self.answers


@dataclass(frozen=True)
class VoiceInputs:
    last_quarter: QuarterVoice
    quarter_before: QuarterVoice


@dataclass(frozen=True)
class VoiceSignal:
    penalty: Decimal
    reasons: tuple[str, ...]


def category(score: int) -> str:
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def _counted(scores: Iterable[int]) -> QuarterVoice:
    kinds = [category(s) for s in scores]
    return QuarterVoice(kinds.count("promoter"), kinds.count("passive"), kinds.count("detractor"))


def voice_inputs(
    policy: VoicePolicy, day: date, answers: Iterable[tuple[date, int]]
) -> VoiceInputs:
    """Split the partner's answers (the day each was given, its score) into the last quarter
    ending with `day` and the quarter before; older and later answers do not count."""
    last_start = day - timedelta(days=policy.quarter_days)
    before_start = last_start - timedelta(days=policy.quarter_days)
    last, before = [], []
    for answered_on, score in answers:
        if last_start < answered_on <= day:
            last.append(score)
        elif before_start < answered_on <= last_start:
            before.append(score)
    return VoiceInputs(_counted(last), _counted(before))


def voice_signal(policy: VoicePolicy, inputs: VoiceInputs) -> VoiceSignal:
    last, before = inputs.last_quarter, inputs.quarter_before
    if last.answers < policy.min_answers:
        return VoiceSignal(
            ZERO,
            (
                f"voice: {last.answers} survey answers in the last {policy.quarter_days} days "
                f"(fewer than {policy.min_answers}): no signal",
            ),
        )
    reasons = [
        f"voice: NPS {last.nps} from {last.answers} answers in the last "
        f"{policy.quarter_days} days ({last.detractors} detractors)"
    ]
    penalties = [ZERO]
    if before.answers >= policy.min_answers:
        assert last.nps is not None
        assert before.nps is not None
        drop = before.nps - last.nps
        if drop >= policy.nps_drop_points:
            penalties.append(policy.trend_penalty)
            reasons.append(
                f"voice trend negative: NPS fell {drop} points from {before.nps} "
                f"({before.answers} answers the quarter before; threshold "
                f"{policy.nps_drop_points}) -> -{policy.trend_penalty}"
            )
        else:
            reasons.append(f"voice trend: NPS {before.nps} the quarter before, not a fall")
    else:
        reasons.append(
            f"voice trend: {before.answers} answers the quarter before "
            f"(fewer than {policy.min_answers}): no trend"
        )
    share = last.detractor_share
    assert share is not None
    if share >= policy.detractor_share:
        penalties.append(policy.detractor_penalty)
        reasons.append(
            f"voice: detractors {last.detractors}/{last.answers} "
            f"(at least {policy.detractor_share}) -> -{policy.detractor_penalty}"
        )
    penalty = max(penalties)
    if penalty and len(penalties) > 2:
        reasons.append(f"voice penalty: the larger of the two counts -> -{penalty}")
    return VoiceSignal(penalty, tuple(reasons))

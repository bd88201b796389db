"""Partner health score: one number (0-100) with the components and reasons behind it.

core = w_revenue * revenue + w_win * win_rate + w_velocity * velocity
score = 100 * ((1 - w_enablement) * core + w_enablement * enablement) - penalties

- revenue: attributed revenue (sourced + influenced, reporting currency) in the window over the
  target, capped at 1;
- win_rate: won / (won + lost) among closed deals the partner touched; 0 with no closed deal;
- velocity: 1 when the average registration-to-close time is at or under the target days,
  falling linearly to 0 at `zero_velocity_days`; 0 with no sourced won deal;
- enablement: onboarding's enablement health (training completion, certified people, engagement
  with the resource library) over 100, from its `partner.enablement_measured.v1` events. Until
  onboarding has measured the partner, the score is the core alone (a signal not yet measured
  neither helps nor hurts);
- penalties: per conflict, rejection and expiry of the partner's registrations, capped; plus
  the partner's voice (domain/voice.py) when its NPS fell or detractors dominate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from services.attribution.domain.config import HealthPolicy
from services.attribution.domain.voice import VoiceInputs, voice_signal

ONE = Decimal(1)
ZERO = Decimal(0)


@dataclass(frozen=True)
class HealthInputs:
    revenue: Decimal
    won: int
    lost: int
    days_to_close: tuple[int, ...]  # registration -> close, per sourced won deal
    conflicts: int
    rejections: int
    expiries: int
    enablement: Decimal | None = None  # onboarding's 0-100 enablement health; None: not measured
    voice: VoiceInputs | None = None  # survey answers of the last two quarters; None: not read


@dataclass(frozen=True)
class HealthScore:
    score: Decimal
    revenue: Decimal
    win_rate: Decimal
    velocity: Decimal
    penalty: Decimal
    reasons: tuple[str, ...]
    enablement: Decimal | None = None  # 0-1; None: not measured
    voice_penalty: Decimal = ZERO  # part of `penalty`


def _q(value: Decimal, places: str = "0.0001") -> Decimal:
    return value.quantize(Decimal(places), ROUND_HALF_EVEN)


def health_score(policy: HealthPolicy, inputs: HealthInputs) -> HealthScore:
    reasons = []
    revenue = min(ONE, max(ZERO, inputs.revenue) / policy.revenue_target)
    reasons.append(
        f"revenue {inputs.revenue} of target {policy.revenue_target} "
        f"in {policy.window_days} days -> {_q(revenue)}"
    )
    closed = inputs.won + inputs.lost
    win_rate = Decimal(inputs.won) / closed if closed else ZERO
    reasons.append(
        f"win rate {inputs.won}/{closed} closed deals -> {_q(win_rate)}"
        if closed
        else "win rate: no closed deals yet -> 0"
    )
    if inputs.days_to_close:
        average = Decimal(sum(inputs.days_to_close)) / len(inputs.days_to_close)
        span = Decimal(policy.zero_velocity_days - policy.target_days_to_close)
        velocity = min(ONE, max(ZERO, (Decimal(policy.zero_velocity_days) - average) / span))
        reasons.append(
            f"registration-to-close {_q(average, '0.1')} days on average over "
            f"{len(inputs.days_to_close)} sourced wins (target {policy.target_days_to_close}) "
            f"-> {_q(velocity)}"
        )
    else:
        velocity = ZERO
        reasons.append("registration-to-close: no sourced wins yet -> 0")
    raw_penalty = (
        policy.penalty_per_conflict * inputs.conflicts
        + policy.penalty_per_rejection * inputs.rejections
        + policy.penalty_per_expiry * inputs.expiries
    )
    penalty = min(policy.max_penalty, raw_penalty)
    if raw_penalty:
        reasons.append(
            f"negative signals: {inputs.conflicts} conflicts, {inputs.rejections} rejections, "
            f"{inputs.expiries} expiries -> -{penalty} (cap {policy.max_penalty})"
        )
    voice_penalty = ZERO
    if inputs.voice is not None:
        voice = voice_signal(policy.voice, inputs.voice)
        voice_penalty = voice.penalty
        penalty += voice_penalty
        reasons.extend(voice.reasons)
    w = policy.weights
    core = w.revenue * revenue + w.win_rate * win_rate + w.velocity * velocity
    enablement: Decimal | None = None
    if inputs.enablement is None:
        reasons.append("enablement: not measured yet (the other signals carry its weight)")
        positive = 100 * core
    else:
        enablement = min(ONE, max(ZERO, inputs.enablement / 100))
        reasons.append(
            f"enablement {inputs.enablement} of 100 (training, certification, engagement) "
            f"-> {_q(enablement)}, weight {policy.enablement_weight}"
        )
        positive = 100 * (
            (ONE - policy.enablement_weight) * core + policy.enablement_weight * enablement
        )
    score = min(Decimal(100), max(ZERO, positive - penalty))
    return HealthScore(
        score=_q(score, "0.1"),
        revenue=_q(revenue),
        win_rate=_q(win_rate),
        velocity=_q(velocity),
        penalty=penalty,
        reasons=tuple(reasons),
        enablement=None if enablement is None else _q(enablement),
        voice_penalty=voice_penalty,
    )

"""The attribution policy: one typed, versioned configuration object with defaults in code.

A channel manager overrides it with a JSON file (path in ATTRIBUTION_CONFIG_FILE); every credit
records the `version` it was computed under, so a figure can always be traced to its policy.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from services.attribution.domain.voice import VoicePolicy
from shared.events.bounds import Rate
from shared.inputs import MONEY_DECIMALS
from shared.inputs import minor_units as iso_minor_units

_CREDIT_RATE: TypeAdapter[Decimal] = TypeAdapter(Rate)


class ModelName(StrEnum):
    SOURCED_ONLY = "sourced_only"
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    POSITION_BASED = "position_based"
    TIME_DECAY = "time_decay"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PositionWeights(_Frozen):
    """Position-based (U-shaped) weights: first touch, all middle touches together, last touch."""

    first: Decimal = Field(default=Decimal("0.4"), ge=0)
    middle: Decimal = Field(default=Decimal("0.2"), ge=0)
    last: Decimal = Field(default=Decimal("0.4"), ge=0)

    @model_validator(mode="after")
    def _positive_ends(self) -> PositionWeights:
        if self.first + self.last <= 0:
            raise ValueError("position weights: first + last must be positive")
        return self


# Reporting units per one unit of the currency, effective from the date (inclusive) until the
# next entry. Illustrative defaults: a deployment supplies its treasury's table in the file.
DEFAULT_RATES: dict[str, dict[date, Decimal]] = {
    "EUR": {date(2024, 1, 1): Decimal("1.09"), date(2025, 1, 1): Decimal("1.04")},
    "GBP": {date(2024, 1, 1): Decimal("1.27"), date(2025, 1, 1): Decimal("1.25")},
    "JPY": {date(2024, 1, 1): Decimal("0.0071"), date(2025, 1, 1): Decimal("0.0064")},
    "CAD": {date(2024, 1, 1): Decimal("0.75"), date(2025, 1, 1): Decimal("0.70")},
}


class HealthWeights(_Frozen):
    revenue: Decimal = Field(default=Decimal("0.4"), ge=0)
    win_rate: Decimal = Field(default=Decimal("0.3"), ge=0)
    velocity: Decimal = Field(default=Decimal("0.3"), ge=0)


class HealthPolicy(_Frozen):
    """How the partner health score (0-100) combines its signals."""

    window_days: int = Field(default=365, ge=1)
    revenue_target: Decimal = Field(default=Decimal("500000"), gt=0)  # reporting currency
    target_days_to_close: int = Field(default=60, ge=1)  # velocity 1.0 at or under this
    zero_velocity_days: int = Field(default=180, ge=2)  # velocity 0.0 at or over this
    weights: HealthWeights = HealthWeights()
    # The share of the score onboarding's enablement signal takes once measured (the weights
    # above then share the rest).
    enablement_weight: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)
    penalty_per_conflict: Decimal = Field(default=Decimal("5"), ge=0)
    penalty_per_rejection: Decimal = Field(default=Decimal("3"), ge=0)
    penalty_per_expiry: Decimal = Field(default=Decimal("4"), ge=0)
    max_penalty: Decimal = Field(default=Decimal("30"), ge=0)
    # Partner voice (programme.survey_answered.v1): a falling NPS or a detractor majority is a
    # penalty of its own, on top of the capped registration penalties (domain/voice.py).
    voice: VoicePolicy = VoicePolicy()

    @model_validator(mode="after")
    def _consistent(self) -> HealthPolicy:
        if self.zero_velocity_days <= self.target_days_to_close:
            raise ValueError("health: zero_velocity_days must exceed target_days_to_close")
        total = self.weights.revenue + self.weights.win_rate + self.weights.velocity
        if total != 1:
            raise ValueError(f"health: weights must sum to 1, not {total}")
        return self


class AttributionConfig(_Frozen):
    version: str = "2026-11-attr-1"
    model: ModelName = ModelName.POSITION_BASED
    # Influence touchpoints count when they occurred in [close - lookback, close + post_close].
    lookback_days: int = Field(default=365, ge=0)
    post_close_days: int = Field(default=0, ge=0)
    # The sourcing registration counts whatever its age (its protection window already judged
    # it); set False to hold it to the lookback window too.
    sourced_ignores_lookback: bool = True
    # Corrections (amount change, reopen, lost, late touchpoint) until close date + lock period;
    # after that, credits are final.
    lock_period_days: int = Field(default=90, ge=0)
    half_life_days: Decimal = Field(default=Decimal("30"), gt=0)
    position_weights: PositionWeights = PositionWeights()
    reporting_currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    rates: dict[str, dict[date, Decimal]] = Field(default_factory=lambda: dict(DEFAULT_RATES))
    # Overrides of ISO 4217's minor units (splits are exact in these units); a currency not
    # named here has ISO 4217's (VND and XOF none, BHD three), 2 for a code ISO does not list.
    minor_units: dict[str, int] = Field(default_factory=dict)
    health: HealthPolicy = HealthPolicy()

    @model_validator(mode="after")
    def _valid_rates(self) -> AttributionConfig:
        for currency, table in self.rates.items():
            if len(currency) != 3 or not currency.isupper():
                raise ValueError(f"rates: {currency!r} is not an ISO 4217 code")
            for day, rate in table.items():
                if rate <= 0:
                    raise ValueError(f"rates: {currency} on {day} must be positive, not {rate}")
                # A credit carries its rate: one its contract refuses would fail every credit.
                try:
                    _CREDIT_RATE.validate_python(rate)
                except ValidationError as error:
                    why = error.errors(include_url=False)[0]["msg"]
                    raise ValueError(f"rates: {currency} on {day}: {why}, not {rate}") from None
        for currency, places in self.minor_units.items():
            if not 0 <= places <= 4:  # ISO 4217's; a credit carries at most four decimals
                raise ValueError(f"minor_units: {currency} must have 0 to 4, not {places}")
        # Credits are split in the reporting currency's units and booked in the ledgers' (two
        # decimals): a finer reporting currency (KWD, BHD: three) made credits incentives
        # refuses, every one dead-lettered.
        reporting = self.minor_unit(self.reporting_currency)
        if reporting > MONEY_DECIMALS:
            raise ValueError(
                f"reporting_currency {self.reporting_currency} has {reporting} decimals; the "
                f"ledgers hold {MONEY_DECIMALS}: choose another reporting currency"
            )
        return self

    def minor_unit(self, currency: str) -> int:
        if currency in self.minor_units:
            return self.minor_units[currency]
        try:
            return iso_minor_units(currency)
        except KeyError:
            return 2

    def rate_on(self, currency: str, day: date) -> tuple[Decimal, date] | None:
        """The rate in force on `day` (the latest entry on or before it), never a later one."""
        if currency == self.reporting_currency:
            return Decimal(1), day
        table = self.rates.get(currency, {})
        effective = [d for d in table if d <= day]
        if not effective:
            return None
        start = max(effective)
        return table[start], start

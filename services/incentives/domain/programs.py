"""Incentive programs as configuration: a typed, versioned, validated object.

Defaults live in code (`IncentivePrograms()`); a JSON file (path in INCENTIVES_PROGRAMS_FILE)
overrides any part of it. Validation is strict (unknown keys are refused) so a typo in a program
file fails at start, not silently at payout time.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import Unprocessable
from shared.events.partners import PartnerStatus, PartnerType
from shared.inputs import (
    MONEY_DECIMALS,
    InputError,
    country_code,
    currency_code,
    decimal_places,
    minor_units,
)

# At most 12 decimals: a rate times another (influenced credits' factor) stays within the 28
# an event's fraction carries (a 28-decimal rate made every influenced booking fail).
Rate = Annotated[
    Decimal, Field(ge=0, le=1, decimal_places=12, description="a fraction: 0.05 = 5 %")
]
Money = Annotated[Decimal, Field(ge=0, decimal_places=2)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KickerKind(StrEnum):
    NEW_LOGO = "new_logo"  # the customer was never credited before (on another deal)
    LEGACY_MIGRATION = "legacy_migration"  # the deal includes a legacy-workload migration product
    CO_SELL = "co_sell"  # co-sold with the direct team
    STRATEGIC_PRODUCT = "strategic_product"  # the deal includes a strategic product
    NEW_REGION = "new_region"  # the partner's first credited deal in the customer's region


class Kicker(_Config):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    kind: KickerKind
    rate: Rate
    credit_kinds: tuple[Literal["sourced", "influenced"], ...] = ("sourced", "influenced")
    partner_types: tuple[PartnerType, ...] = ()  # empty: any type


class Spiff(_Config):
    """A time-boxed promotion: a fixed amount per qualifying credit or a % of it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    name: str
    starts: date  # inclusive, compared with the credit's close date
    ends: date  # inclusive
    rate: Rate | None = None
    fixed_amount: Money | None = None
    products: tuple[str, ...] = ()  # empty: any product; else at least one must be on the deal
    tiers: tuple[str, ...] = ()  # empty: any tier
    partner_types: tuple[PartnerType, ...] = ()  # empty: any partner type
    credit_kinds: tuple[Literal["sourced", "influenced"], ...] = ("sourced",)
    new_logo_only: bool = False

    @model_validator(mode="after")
    def _one_payout(self) -> Spiff:
        if (self.rate is None) == (self.fixed_amount is None):
            raise ValueError(f"SPIFF {self.id}: set exactly one of rate and fixed_amount")
        if self.ends < self.starts:
            raise ValueError(f"SPIFF {self.id}: ends before it starts")
        return self


class Stacking(_Config):
    """Which kickers combine and how far.

    `exclusive`: groups of kicker ids of which only one applies (the highest rate; on a tie the
    one listed first in `kickers`). `max_combined_rate`: base rate plus kicker rates never exceed
    it; kickers are trimmed, last-listed first, and the trim is recorded. SPIFFs are promotions
    on top and are not counted (they have their own dates and the period cap still applies).
    """

    exclusive: tuple[tuple[str, ...], ...] = (("strategic_product", "legacy_migration"),)
    max_combined_rate: Rate = Decimal("0.20")


class Caps(_Config):
    """Earnings (base + kickers + SPIFFs, net of reversals) per partner per period."""

    per_partner_period: Money | None = Decimal("250000.00")
    by_tier: dict[str, Money] = Field(default_factory=dict)  # overrides per tier

    def for_tier(self, tier: str) -> Decimal | None:
        return self.by_tier.get(tier, self.per_partner_period)


class Mdf(_Config):
    """Market development funds: accrual into a partner fund, claims against it."""

    rate: Rate = Decimal("0.02")
    rates_by_tier: dict[str, Rate] = Field(default_factory=dict)
    credit_kinds: tuple[Literal["sourced", "influenced"], ...] = ("sourced", "influenced")
    cap_per_partner_period: Money | None = Decimal("50000.00")
    expiry_days: int = Field(default=365, ge=0)

    def rate_for(self, tier: str) -> Decimal:
        return self.rates_by_tier.get(tier, self.rate)


class IncentivePrograms(_Config):
    version: str = "2026-11-incentives-1"
    currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    period: Literal["month", "quarter"] = "quarter"
    default_tier: str = "registered"  # the what-if's tier for a partner not heard of yet
    # Only a partner the partner projection knows, in one of these statuses, earns. A credit to
    # a partner not yet active (or not yet heard of: lifecycle events and credits travel on
    # different topics) is held and booked when the partner's state settles; a credit to one in
    # any other status earns nothing, with the reason.
    eligible_statuses: tuple[PartnerStatus, ...] = (PartnerStatus.ACTIVE, PartnerStatus.GRACE)
    ineligible_statuses: tuple[PartnerStatus, ...] = (
        PartnerStatus.SUSPENDED,
        PartnerStatus.EXPELLED,
        PartnerStatus.REJECTED,
    )
    waiting_statuses: tuple[PartnerStatus, ...] = (
        PartnerStatus.APPLIED,
        PartnerStatus.QUALIFIED,
        PartnerStatus.ONBOARDING,
    )
    base_rates: dict[str, Rate] = Field(
        default_factory=lambda: {
            "registered": Decimal("0.01"),
            "bronze": Decimal("0.02"),
            "silver": Decimal("0.03"),
            "gold": Decimal("0.05"),
            "platinum": Decimal("0.07"),
        }
    )
    # A partner type's own base rates per tier (a referral partner paid differently from a
    # reseller); a tier its table does not list, or a type not listed, uses `base_rates`.
    base_rates_by_type: dict[PartnerType, dict[str, Rate]] = Field(default_factory=dict)
    # Influenced revenue earns the base rate times this factor (sourced: 1).
    influenced_factor: Rate = Decimal("0.5")
    kickers: tuple[Kicker, ...] = (
        Kicker(id="new_logo", kind=KickerKind.NEW_LOGO, rate=Decimal("0.03")),
        Kicker(id="legacy_migration", kind=KickerKind.LEGACY_MIGRATION, rate=Decimal("0.02")),
        Kicker(id="co_sell", kind=KickerKind.CO_SELL, rate=Decimal("0.01")),
        Kicker(id="strategic_product", kind=KickerKind.STRATEGIC_PRODUCT, rate=Decimal("0.02")),
        Kicker(id="new_region", kind=KickerKind.NEW_REGION, rate=Decimal("0.01")),
    )
    legacy_migration_products: tuple[str, ...] = ("mainframe-migration", "legacy-dw-migration")
    strategic_products: tuple[str, ...] = ("ai", "security")
    # ISO country -> region; a country not listed is its own region.
    regions: dict[str, str] = Field(
        default_factory=lambda: {
            **dict.fromkeys(("US", "CA", "MX"), "NA"),
            **dict.fromkeys(("BR", "AR", "CL", "CO"), "LATAM"),
            **dict.fromkeys(
                (
                    "GB",
                    "IE",
                    "DE",
                    "FR",
                    "NL",
                    "BE",
                    "ES",
                    "IT",
                    "SE",
                    "DK",
                    "NO",
                    "FI",
                    "CH",
                    "AT",
                    "PL",
                    "PT",
                ),
                "EMEA",
            ),
            **dict.fromkeys(("AE", "SA", "ZA", "IL"), "EMEA"),
            **dict.fromkeys(("JP", "KR", "CN", "IN", "SG", "AU", "NZ"), "APAC"),
        }
    )
    spiffs: tuple[Spiff, ...] = ()
    stacking: Stacking = Stacking()
    caps: Caps = Caps()
    mdf: Mdf = Mdf()

    @model_validator(mode="after")
    def _consistent(self) -> IncentivePrograms:
        ids = [k.id for k in self.kickers]
        if len(set(ids)) != len(ids):
            raise ValueError("kicker ids must be unique")
        spiff_ids = [s.id for s in self.spiffs]
        if len(set(spiff_ids)) != len(spiff_ids):
            raise ValueError("SPIFF ids must be unique")
        for group in self.stacking.exclusive:
            unknown = set(group) - set(ids)
            if unknown:
                raise ValueError(f"stacking.exclusive names unknown kickers: {sorted(unknown)}")
        statuses = (self.eligible_statuses, self.ineligible_statuses, self.waiting_statuses)
        named = [status for group in statuses for status in group]
        if len(set(named)) != len(named):
            raise ValueError("a partner status is eligible, ineligible or waiting, not two of them")
        # Found in review: a status in none of the three (a typo, or one left out) was refused
        # its earnings for good, and a tier misspelt in a cap, an MDF rate or a SPIFF applied to
        # nobody: the docstring's promise, a typo fails at start, not at payout time.
        unplaced = sorted(status.value for status in set(PartnerStatus) - set(named))
        if unplaced:
            raise ValueError(
                f"partner statuses {unplaced} are in none of eligible_statuses,"
                " ineligible_statuses and waiting_statuses: each status is in one"
            )
        self._tiers_known()
        try:
            currency_code(self.currency)
            # Found in review: `{"de": "EMEA"}` loaded, and a deal's country (always upper
            # case) was its own region, so the new-region kicker paid again in one region.
            for country in self.regions:
                country_code(country, "regions names country")
        except InputError as error:
            raise ValueError(str(error)) from error
        for what, amount in self._amounts():
            refused = self.finer_than_currency(amount, what)
            if refused is not None:
                raise ValueError(refused)
        return self

    @property
    def decimals(self) -> int:
        """How many decimals the programme's money has: its currency's minor units (ISO 4217:
        JPY 0, EUR 2), at most the ledger's two."""
        return min(MONEY_DECIMALS, minor_units(self.currency))

    def finer_than_currency(self, amount: Decimal, what: str = "amount") -> str | None:
        """Why `amount` cannot be the programme's money (a fraction of a yen, a tenth of a
        cent); None when it can."""
        if decimal_places(amount) <= self.decimals:
            return None
        return f"{what} {amount} has more decimals than {self.currency} has ({self.decimals})"

    def check_amount(self, amount: Decimal | None) -> None:
        """422 for an amount the programme's currency cannot hold (a cent of a yen): the
        ledger books in the currency's smallest unit. None (no amount named) passes."""
        refused = None if amount is None else self.finer_than_currency(amount)
        if refused is not None:
            raise Unprocessable(refused)

    def _amounts(self) -> list[tuple[str, Decimal]]:
        """Every amount of money the configuration names, with where."""
        caps = self.caps
        named = [("caps.per_partner_period", caps.per_partner_period)]
        named += [(f"caps.by_tier.{tier}", cap) for tier, cap in caps.by_tier.items()]
        named += [(f"spiffs.{s.id}.fixed_amount", s.fixed_amount) for s in self.spiffs]
        named += [("mdf.cap_per_partner_period", self.mdf.cap_per_partner_period)]
        return [(what, amount) for what, amount in named if amount is not None]

    def ineligibility(self, status: str | None) -> str | None:
        """Why a partner in `status` (None: unknown to the partner projection) earns nothing;
        None when it is eligible."""
        if status is None:
            return "partner unknown to incentives: not eligible"
        if status in self.ineligible_statuses or status not in self.eligible_statuses:
            return f"partner is {status}: not eligible"
        return None

    def _tiers_known(self) -> None:
        """Every tier the programme names is one `base_rates` lists: the programme's tiers (one
        that earns no base is listed at 0). `default_tier` only when the file sets it: its
        default serves the what-if alone, and a programme whose tiers have other names need not
        set it."""
        tiers = set(self.base_rates)
        named = [
            (
                "default_tier",
                [self.default_tier] if "default_tier" in self.model_fields_set else [],
            ),
            ("caps.by_tier", list(self.caps.by_tier)),
            ("mdf.rates_by_tier", list(self.mdf.rates_by_tier)),
            *((f"base_rates_by_type.{t}", list(r)) for t, r in self.base_rates_by_type.items()),
            *((f"SPIFF {spiff.id}'s tiers", list(spiff.tiers)) for spiff in self.spiffs),
        ]
        for what, names in named:
            unknown = sorted(set(names) - tiers)
            if unknown:
                raise ValueError(
                    f"{what} names tiers that base_rates does not: {unknown} (tiers:"
                    f" {sorted(tiers)})"
                )

    def hold_reason(self, status: str | None) -> str | None:
        """Why a credit to a partner in `status` (None: unknown to the partner projection)
        waits instead of being booked now; None when it can be booked (earning or not)."""
        if status is None:
            return "partner not yet known to incentives: held until it is active"
        if status in self.waiting_statuses:
            return f"partner is {status}: held until it is active"
        return None

    def what_if_status(self, status: str | None) -> tuple[str, str | None]:
        """The status a what-if evaluates a partner in, and what it notes: a partner whose
        credits would be held (onboarding, or not heard of yet) is shown what they earn once it
        is active, which is when they are booked (found in review: an onboarding partner was
        told 0, "not eligible", for what it would in fact earn in full)."""
        held = self.hold_reason(status)
        if held is None:
            return status or PartnerStatus.ACTIVE.value, None
        return PartnerStatus.ACTIVE.value, f"{held}; then booked as shown (as an active partner)"

    def region_of(self, country: str | None) -> str | None:
        if not country:
            return None
        country = country.strip().upper()
        return self.regions.get(country, country)

    def active_spiffs(self, day: date) -> list[str]:
        """The ids of the SPIFFs running on `day` (their dates are inclusive)."""
        return [spiff.id for spiff in self.spiffs if spiff.starts <= day <= spiff.ends]

    def period_of(self, day: date) -> str:
        if self.period == "month":
            return f"{day.year:04d}-{day.month:02d}"
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def load_programs(text: str | None) -> IncentivePrograms:
    """The defaults, or the defaults overridden by a JSON document (raises ValueError)."""
    if text is None:
        return IncentivePrograms()
    return IncentivePrograms.model_validate_json(text)

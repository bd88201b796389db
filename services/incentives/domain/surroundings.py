"""A credit's surroundings as the rules see them, and how they move along a run of credits.

Pure: the service layer loads what the database holds for a run's credits (`Surroundings`),
then books the credits in order; each credit's `Context` counts the ones before it in the run
(the customer's and the partner-region's first deal, the partner's period totals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.incentives.domain.earnings import Earnings, customer_keys
from services.incentives.domain.mdf import MdfAccrual
from services.incentives.domain.programs import IncentivePrograms


@dataclass(frozen=True)
class Context:
    """What the service knows about a (real or hypothetical) credit's surroundings."""

    tier: str
    status: str | None
    customer_key: str | None
    region: str | None
    new_logo: bool
    new_region: bool
    earned_in_period: Decimal
    mdf_accrued_in_period: Decimal
    partner_type: str | None = None
    # When the partner was judged: the credit's issue, or the issue of the credit it corrects
    # (None: a hypothetical credit, judged now)
    judged_at: datetime | None = None
    customer_keys: tuple[str, ...] = ()  # every key the customer is known by


@dataclass(frozen=True)
class Subject:
    """What names a (real or hypothetical) credit's surroundings."""

    credit_id: str
    partner_id: str
    deal_key: str
    customer_keys: tuple[str, ...]  # every key the customer is known by, its filing key first
    region: str | None
    period: str
    issued_at: datetime | None = None  # a hypothetical credit's: None (the partner now)
    replaces: str | None = None  # a re-issue is judged when the credit it corrects was

    @property
    def customer_key(self) -> str | None:
        """The key its credit is filed under (and locked by)."""
        return self.customer_keys[0] if self.customer_keys else None

    @classmethod
    def of(
        cls,
        programs: IncentivePrograms,
        *,
        credit_id: str,
        partner_id: str,
        deal_key: str,
        domain: str | None,
        name: str | None,
        country: str | None,
        close_date: date,
        issued_at: datetime | None = None,
        replaces: str | None = None,
        folded_name: str | None = None,
    ) -> Subject:
        return cls(
            credit_id,
            partner_id,
            deal_key,
            customer_keys(domain, name, folded_name),
            programs.region_of(country),
            programs.period_of(close_date),
            issued_at,
            replaces,
        )


@dataclass
class Surroundings:
    """What the database held for a run's credits, then what the run booked so far: each
    credit of a run sees the ones before it (first deals, running period totals)."""

    default_tier: str
    booked: set[str]  # credit ids
    # partner id -> (tier, status, partner type), if known
    partners: dict[str, tuple[str, str, str | None]]
    first_deals: dict[str, str]  # customer key -> the customer's first credited deal
    first_region_deals: dict[tuple[str, str], str]  # (partner, region) -> first deal there
    earned: dict[tuple[str, str], Decimal]  # (partner, period) -> net earnings booked
    accrued: dict[tuple[str, str], Decimal]  # (partner, period) -> net MDF accrued
    parked: dict[str, str]  # credit id -> the reversal (JSON) that arrived before it
    # credit id -> the partner as it was when the credit was issued (tier, status, type), if
    # a version then is known and was not waiting (applied, onboarding: judged as it is now)
    at_issue: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    # credit id -> when its partner is judged (its issue, or that of the credit it corrects)
    judged_at: dict[str, datetime] = field(default_factory=dict)
    # partner id -> the lifecycle version the partner projection holds
    versions: dict[str, int] = field(default_factory=dict)

    def behind(self, partner_id: str, heard: int | None) -> str | None:
        """Why a credit waits for the partner projection: attribution issued it knowing a
        version of the partner this service has not recorded yet (None: it may be judged).
        Found in review: the credit was judged on the older state, a suspended partner paid at
        active rates, a reinstated one refused for good."""
        known = self.versions.get(partner_id)
        if heard is None or (known is not None and known >= heard):
            return None
        return (
            f"partner {partner_id}'s state version {heard} (which attribution knew when it"
            " issued the credit) not heard yet"
        )

    def _judged_as(self, subject: Subject) -> str:
        """Whose moment a credit is judged at: a re-issue of a credit of this same run, that
        credit's (the database knew only the credits booked before the run)."""
        if subject.replaces is not None and subject.replaces in self.judged_at:
            return subject.replaces
        return subject.credit_id

    def context(self, subject: Subject) -> Context:
        judged_as = self._judged_as(subject)
        partner = self.at_issue.get(judged_as) or self.partners.get(subject.partner_id)
        new_logo = False
        if subject.customer_keys:
            firsts = {self.first_deals.get(key) for key in subject.customer_keys}
            # The customer's first deal stays "new logo" for every credit on it (all partners
            # on the deal, and re-issued credits after a correction).
            new_logo = firsts <= {None, subject.deal_key}
        new_region = False
        if subject.region is not None:
            first = self.first_region_deals.get((subject.partner_id, subject.region))
            new_region = first is None or first == subject.deal_key
        return Context(
            tier=partner[0] if partner else self.default_tier,
            status=partner[1] if partner else None,
            customer_key=subject.customer_key,
            customer_keys=subject.customer_keys,
            region=subject.region,
            new_logo=new_logo,
            new_region=new_region,
            earned_in_period=self.earned[subject.partner_id, subject.period],
            mdf_accrued_in_period=self.accrued[subject.partner_id, subject.period],
            partner_type=partner[2] if partner else None,
            judged_at=self.judged_at.get(judged_as),
        )

    def book(
        self, subject: Subject, earnings: Earnings, accrual: MdfAccrual | None
    ) -> tuple[tuple[tuple[str, str], ...], bool]:
        """Count a booked credit in. Returns the customer keys it files (each with the
        customer's first deal: all of them on its first deal, the keys not known yet on a later
        one) and whether it is its partner's first in its region (rows to insert)."""
        self.booked.add(subject.credit_id)
        judged_as = self._judged_as(subject)
        if judged_as != subject.credit_id:  # a later re-issue of it in the run: the same moment
            self.judged_at[subject.credit_id] = self.judged_at[judged_as]
            if judged_as in self.at_issue:
                self.at_issue[subject.credit_id] = self.at_issue[judged_as]
        new_region = False
        # A key not known yet is filed under the customer's first deal (this one when no key
        # is known): found in review, a later deal's domain was never filed, so a third deal
        # by that domain alone earned the new-logo kicker again.
        known = [self.first_deals[k] for k in subject.customer_keys if k in self.first_deals]
        first = known[0] if known else subject.deal_key
        filed = tuple((k, first) for k in subject.customer_keys if k not in self.first_deals)
        self.first_deals.update(filed)
        region = (subject.partner_id, subject.region)
        if subject.region is not None and region not in self.first_region_deals:
            self.first_region_deals[(subject.partner_id, subject.region)] = subject.deal_key
            new_region = True
        period = (subject.partner_id, subject.period)
        for line in earnings.lines:
            self.earned[period] += line.amount
        if accrual is not None:
            self.accrued[period] += accrual.amount
        return filed, new_region


# What a partner's what-if says of a customer whose first credited deal is not its own.
NEW_LOGO_ASSUMED = (
    "new logo assumed: whether another partner already won this customer is not shown"
)


def new_logo_for_partner(new_logo: bool, first_deal_is_own: bool) -> tuple[bool, str | None]:
    """Whether a customer is new, as a partner's what-if may say it: only the partner's own
    deals may make it not new (another partner's first deal would reveal that partner's
    business), so otherwise it is assumed new, with a note saying so, whether or not the
    customer has a credited deal at all (a note only then, or one that went with the deal
    named, told which: found in review)."""
    if first_deal_is_own:
        return new_logo, None
    return True, NEW_LOGO_ASSUMED

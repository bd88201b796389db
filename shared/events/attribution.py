"""Revenue credits produced by attribution (topic attribution.credits.v1, key: deal key).

Credits are never edited: a change after close (amount change, reopen, lost after won, a late
touchpoint inside the lock period) reverses the affected credits (`credit.reversed.v1`, exactly
the reversed credit's amount) and issues new ones. Summing issued minus reversed amounts per
partner always gives the partner's current attributed revenue.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from shared.events.bounds import Amount4, Component, Day, Fraction, Points, Rate, Score, Version
from shared.events.crm import Customer
from shared.events.envelope import EventPayload, UtcDatetime, event_type


class CreditKind(StrEnum):
    SOURCED = "sourced"  # the partner brought the deal (its registration sourced it)
    INFLUENCED = "influenced"  # the partner touched the deal but did not source it


@event_type("credit.issued.v1")
class CreditIssued(EventPayload):
    credit_id: str = Field(description="stable id; a re-issue after a correction gets a new id")
    deal_key: str
    partner_id: str
    kind: CreditKind
    amount: Amount4 = Field(description="credited revenue in `currency`, exact to the cent")
    currency: str = Field(pattern="^[A-Z]{3}$", description="the reporting currency")
    original_amount: Amount4 = Field(description="the same credit in the deal's own currency")
    original_currency: str = Field(pattern="^[A-Z]{3}$")
    fx_rate: Rate = Field(description="reporting units per original unit at the close date")
    share: Fraction = Field(description="fraction of the deal credited to this partner")
    model: str = Field(description="attribution model that produced the split")
    reasons: tuple[str, ...] = ()
    customer: Customer
    products: tuple[str, ...] = ()
    co_sell: bool = False
    close_date: Day = Field(
        description="1900-01-01 to 9999-12-30 (the last day is Postgres' infinity: no quarter)"
    )
    deal_revision: Version = Field(description="the deal revision this credit was computed from")
    replaces: str | None = Field(default=None, description="credit id this one corrects")
    issued_at: UtcDatetime
    ingested_at: UtcDatetime | None = None
    config_version: str | None = Field(
        default=None, description="version of the attribution policy that produced the split"
    )
    rate_date: date | None = Field(
        default=None, description="effective date of the fx rate used (on or before close_date)"
    )
    campaign_id: str | None = Field(
        default=None,
        description="the co-marketing campaign this partner touched the deal through (its "
        "campaign touchpoint), if any: the credit counts in that campaign's attributed revenue",
    )
    partner_version: int | None = Field(
        default=None,
        description="the partner's lifecycle version (partners.lifecycle.v1) attribution knew "
        "when it issued the credit: a consumer judging the partner waits until it knows it too",
    )


@event_type("credit.reversed.v1")
class CreditReversed(EventPayload):
    reversal_id: str
    credit_id: str = Field(description="the credit being reversed, in full")
    deal_key: str
    partner_id: str
    kind: CreditKind
    amount: Amount4 = Field(description="the reversed credit's amount (positive)")
    currency: str = Field(pattern="^[A-Z]{3}$")
    reason: str = Field(
        description="why, as the credit's partner may read it: what became of its credit, never "
        "what another partner did (attribution keeps the settlement's whole explanation)"
    )
    deal_revision: Version
    reversed_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("partner.health_scored.v1")
class PartnerHealthScored(EventPayload):
    """A partner's health score for a day (topic attribution.health.v1, key: partner id),
    published when it differs from the last one published (and the first time): a consumer
    keeps the newest `day` it has seen, so a late or repeated event changes nothing."""

    partner_id: str
    day: Day = Field(description="the day scored (figures over the health window ending then)")
    score: Score = Field(description="0-100, one decimal")
    previous_score: Score | None = Field(
        default=None, description="the score published before this one (None: the first)"
    )
    revenue: Component = Field(description="component 0-1: attributed revenue against the target")
    win_rate: Component = Field(description="component 0-1")
    velocity: Component = Field(description="component 0-1: registration-to-close time")
    enablement: Component | None = Field(
        default=None, description="component 0-1 from onboarding's enablement; None: not measured"
    )
    penalty: Points = Field(
        description="points taken off for conflicts, rejections, expiries and a negative "
        "partner voice (a falling NPS, a detractor majority)"
    )
    reasons: tuple[str, ...] = ()
    scored_at: UtcDatetime
    config_version: str

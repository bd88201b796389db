"""Touchpoints from outside the deal snapshot: the ones partner apps and CRMs report, and the
partner a CRM names on the opportunity. Which kinds may be reported, who may report for whom,
how far back a report may reach, when a report is a repeat of an earlier one, when a reported
touchpoint counts (the partner is linked to the deal, or a channel manager approved it), and how
a CRM-named partner counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.attribution.domain.models import TouchpointKind, closed_at
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.events.crm import CrmSource
from shared.name_ids import NameIds

TOUCHPOINT_IDS = NameIds(uuid.UUID("3c2e9a55-0b7d-4f16-a1c4-8e6d5f2b9a07"))
# Clocks differ: a touchpoint may be stamped slightly ahead of ours, not more.
CLOCK_SKEW = timedelta(minutes=5)
# Who reported a touchpoint when a channel manager did.
ADMIN_REPORTER = "admin"
# How far back a reported touchpoint may reach (and never before the deal was created).
MAX_BACKDATE = timedelta(days=365)


class ReportedKind(StrEnum):
    """What partner apps and CRMs may report (sourcing comes only from approved registrations)."""

    REFERRAL = "referral"
    CO_SELL_MEETING = "co_sell_meeting"
    TECHNICAL_VALIDATION = "technical_validation"
    MARKETPLACE_TRANSACTION = "marketplace_transaction"
    IMPLEMENTATION = "implementation"
    CAMPAIGN = "campaign"  # the partner touched the deal through a co-marketing campaign


class CampaignNotNamed(Unprocessable):
    def __init__(self, kind: ReportedKind) -> None:
        if kind is ReportedKind.CAMPAIGN:
            super().__init__("a campaign touchpoint must name campaign_id")
        else:
            super().__init__(f"only a campaign touchpoint names campaign_id, not {kind.value}")


class ReportedForAnotherPartner(Forbidden):
    def __init__(self) -> None:
        super().__init__("a partner may report touchpoints only for itself")


class ReporterMustNamePartner(Unprocessable):
    def __init__(self) -> None:
        super().__init__("admin touchpoints must name partner_id")


class TouchpointInFuture(Unprocessable):
    def __init__(self, occurred_at: datetime) -> None:
        super().__init__(f"occurred_at {occurred_at.isoformat()} is in the future")


class TouchpointTooOld(Unprocessable):
    def __init__(self, occurred_at: datetime, earliest: datetime | None, what: str) -> None:
        when = "" if earliest is None else f" ({earliest.isoformat()})"
        super().__init__(f"occurred_at {occurred_at.isoformat()} is before {what}{when}")


class TouchpointAlreadyReported(Conflict):
    """A partner holds at most one reported touchpoint of each kind on a deal."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} touchpoint of this partner on this deal was already reported")


def check_not_before_deal(
    occurred_at: datetime, deal_created_at: datetime | None, *, name_it: bool = True
) -> None:
    """A touchpoint cannot precede the deal it is about (when the CRM says when it was made);
    the refusal names that moment only when `name_it` (a partner may not be the deal's)."""
    if deal_created_at is not None and occurred_at < deal_created_at:
        shown = deal_created_at if name_it else None
        raise TouchpointTooOld(occurred_at, shown, "the deal was created")


def reported_counts(
    partner_id: str,
    *,
    approved: bool,
    linked_partners: frozenset[str] | set[str],
    reported_at: datetime | None = None,
    won_at: datetime | None = None,
) -> bool:
    """A reported touchpoint counts when its partner is linked to the deal (an approved
    registration, or the partner the CRM names through a confirmed link) or a channel manager
    reported or approved it; otherwise it waits for a manager and takes no credit. One a
    linked partner reports once the deal is won waits too: it can only move the won deal's
    credit between its partners, and the partner knows the outcome (found in review: a linked
    partner reported touchpoints backdated to just before the win and took its co-partners'
    share, one kind at a time)."""
    if approved:
        return True
    reported_after_win = won_at is not None and reported_at is not None and reported_at > won_at
    return partner_id in linked_partners and not reported_after_win


class ExternalIdReused(Conflict):
    """The source's id was reported before for a different touchpoint."""

    def __init__(self, touchpoint: ReportedTouchpoint) -> None:
        super().__init__(
            f"external_id {touchpoint.external_id!r} from {touchpoint.source!r} was already "
            f"reported for a different touchpoint ({touchpoint.touchpoint_id})"
        )


def reported_touchpoint_id(partner_id: str, source: str, external_id: str | None) -> str:
    """The same (source, external_id) of the same partner is the same touchpoint; without an
    external id every report is a new one. The partner is part of it: an id of the source's
    alone let any partner take another's (source, external_id) first, and the owner's report
    was then refused as reusing it (found in review)."""
    if external_id:
        return f"tp_{TOUCHPOINT_IDS.hex(f'{partner_id}/{source}/{external_id}')[:24]}"
    return f"tp_{uuid.uuid4().hex[:24]}"


def reporting_for(caller_partner_id: str | None, named_partner_id: str | None) -> str:
    """The partner a report is about: a partner reports only for itself (naming itself or no
    one); a channel manager (no partner id) must name the partner."""
    if caller_partner_id is not None and named_partner_id not in (None, caller_partner_id):
        raise ReportedForAnotherPartner()
    partner_id = caller_partner_id or named_partner_id
    if partner_id is None:
        raise ReporterMustNamePartner()
    return partner_id


@dataclass(frozen=True)
class StoredTouchpoint:
    """What identifies a recorded touchpoint, to compare a repeated report with."""

    deal_key: str
    partner_id: str
    kind: str
    occurred_at: datetime


@dataclass(frozen=True)
class ReportedTouchpoint:
    """A touchpoint as a partner app or CRM reported it, checked and with its id."""

    touchpoint_id: str
    deal_key: str
    partner_id: str
    kind: ReportedKind
    occurred_at: datetime
    source: str
    external_id: str | None
    reported_by: str  # the reporting partner, or ADMIN_REPORTER
    received_at: datetime
    campaign_id: str | None = None  # a campaign touchpoint's (and only its)

    @classmethod
    def report(
        cls,
        *,
        caller_partner_id: str | None,
        named_partner_id: str | None,
        deal_key: str,
        kind: ReportedKind,
        occurred_at: datetime,
        source: str,
        external_id: str | None,
        received_at: datetime,
        campaign_id: str | None = None,
    ) -> ReportedTouchpoint:
        partner_id = reporting_for(caller_partner_id, named_partner_id)
        if (kind is ReportedKind.CAMPAIGN) != (campaign_id is not None):
            raise CampaignNotNamed(kind)
        if occurred_at > received_at + CLOCK_SKEW:
            raise TouchpointInFuture(occurred_at)
        if occurred_at < received_at - MAX_BACKDATE:
            raise TouchpointTooOld(
                occurred_at, received_at - MAX_BACKDATE, f"the {MAX_BACKDATE.days}-day limit"
            )
        return cls(
            touchpoint_id=reported_touchpoint_id(partner_id, source, external_id),
            deal_key=deal_key,
            partner_id=partner_id,
            kind=kind,
            occurred_at=occurred_at,
            source=source,
            external_id=external_id,
            reported_by=caller_partner_id or ADMIN_REPORTER,
            received_at=received_at,
            campaign_id=campaign_id,
        )

    @property
    def approved(self) -> bool:
        """A channel manager's report counts as approved; a partner's waits unless linked."""
        return self.reported_by == ADMIN_REPORTER

    def repeats(self, stored: StoredTouchpoint) -> bool:
        """True when `stored` (recorded under the same id) is this very touchpoint: the report
        is a repeat. Raises ExternalIdReused when the id was used for a different one."""
        same = (stored.deal_key, stored.partner_id, stored.kind, stored.occurred_at) == (
            self.deal_key,
            self.partner_id,
            self.kind.value,
            self.occurred_at,
        )
        if not same:
            raise ExternalIdReused(self)
        return True

    def describe(self) -> str:
        return f"late touchpoint {self.touchpoint_id} ({self.kind.value} by {self.partner_id})"


# The partner a CRM names on the opportunity: a marketplace seller for AWS ACE, a referral
# otherwise (Microsoft co-sell referrals, a partner field in Salesforce/HubSpot).
_CRM_PARTNER_KIND = {
    CrmSource.AWS_ACE: TouchpointKind.MARKETPLACE_TRANSACTION,
    CrmSource.MICROSOFT: TouchpointKind.REFERRAL,
    CrmSource.SALESFORCE: TouchpointKind.REFERRAL,
    CrmSource.HUBSPOT: TouchpointKind.REFERRAL,
}


def crm_partner_kind(source: CrmSource) -> TouchpointKind:
    """The kind of touchpoint the partner a CRM names on the opportunity is."""
    return _CRM_PARTNER_KIND[source]


def crm_touchpoint_id(deal_key: str, partner_ref: str) -> str:
    return f"crm:{deal_key}:{partner_ref}"


def registration_touchpoint_id(registration_id: str) -> str:
    return f"registration:{registration_id}"


def crm_counted_at(
    occurred_at: datetime, close_date: date | None, won_at: datetime | None = None
) -> datetime:
    """The CRM names its partner without a time: count it no later than the close (the win,
    when known: a deal first seen won was named by the CRM before it was won)."""
    if close_date is None:
        return occurred_at
    return min(occurred_at, closed_at(close_date, won_at) - timedelta(seconds=1))

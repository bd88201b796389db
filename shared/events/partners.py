"""Partner lifecycle contract produced by onboarding (topic partners.lifecycle.v1).

Complete enough that other services keep their own projection of a partner and never read
onboarding's database.
"""

from __future__ import annotations

from enum import StrEnum

from shared.events.bounds import Version
from shared.events.envelope import EventPayload, UtcDatetime, event_type


class PartnerType(StrEnum):
    """The kinds of partner a program admits (`PartnerStateChanged.partner_type` carries the value)."""

    GSI = "gsi"
    ISV = "isv"
    MSP = "msp"
    VAR_RESELLER = "var_reseller"
    REFERRAL_AFFILIATE = "referral_affiliate"
    CONSULTANT_INFLUENCER = "consultant_influencer"
    TECHNOLOGY_ALLIANCE = "technology_alliance"


class PartnerStatus(StrEnum):
    APPLIED = "applied"
    QUALIFIED = "qualified"
    REJECTED = "rejected"
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    GRACE = "grace"
    SUSPENDED = "suspended"
    EXPELLED = "expelled"


# The statuses in which a partner has no access (its tokens refused, its money held): every
# service reads them from here (shared/access.py, incentives' payouts).
REVOKING = frozenset({PartnerStatus.SUSPENDED, PartnerStatus.EXPELLED, PartnerStatus.REJECTED})


class PartnerChange(StrEnum):
    """What happened to a partner, so consumers can react without diffing snapshots."""

    APPLIED = "applied"
    QUALIFIED = "qualified"
    REJECTED = "rejected"
    ONBOARDING = "onboarding"
    ACTIVATED = "activated"
    TIER_CHANGED = "tier_changed"
    AUTHORISATIONS_CHANGED = "authorisations_changed"
    GRACE_STARTED = "grace_started"
    DEMOTED = "demoted"
    SUSPENDED = "suspended"
    EXPELLED = "expelled"
    REINSTATED = "reinstated"
    UPDATED = "updated"


@event_type("partner.state_changed.v1")
class PartnerStateChanged(EventPayload):
    """The partner's full current state after any lifecycle change (a snapshot, not a diff)."""

    partner_id: str
    name: str
    partner_type: str
    status: PartnerStatus
    tier: str
    regions: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    changed_at: UtcDatetime
    reason: str = ""
    version: Version
    change: PartnerChange = PartnerChange.UPDATED
    previous_status: PartnerStatus | None = None
    previous_tier: str | None = None
    domain: str | None = None
    competencies: tuple[str, ...] = ()
    grace_until: UtcDatetime | None = None
    # When the upstream change behind this snapshot entered the platform (an HTTP request to
    # onboarding, or the attribution credit that moved the tier): end-to-end latency is
    # measured from it.
    ingested_at: UtcDatetime | None = None
    # The tier rules' config version that computed `tier`.
    policy_version: str | None = None

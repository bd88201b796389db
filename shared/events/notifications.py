"""Partner notifications (topic notifications.partner.v1, key: partner id).

Every service that has something to tell a partner (decisions, conflicts, credits, earnings,
tier changes) emits this one contract; partner apps subscribe to the topic and filter by key.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


class NotificationKind(StrEnum):
    """What a notification is about, by the service that tells it."""

    # deals
    REGISTRATION_APPROVED = "registration_approved"
    REGISTRATION_REJECTED = "registration_rejected"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    DIRECT_SALES_CONFLICT = "direct_sales_conflict"
    CO_SELL = "co_sell"
    OVERLAP_HINT = "overlap_hint"
    # attribution
    CREDIT_ISSUED = "credit_issued"
    CREDIT_REVERSED = "credit_reversed"
    # incentives
    EARNING = "earning"
    CLAWBACK = "clawback"
    MDF_CLAIM = "mdf_claim"
    # onboarding
    PARTNER_STATUS = "partner_status"
    TIER_CHANGED = "tier_changed"
    REQUALIFICATION = "requalification"


@event_type("notification.partner.v1")
class PartnerNotification(EventPayload):
    """A message for a partner app (key: partner id). `recipient` may be the partner or, for
    approvals and direct-sales conflicts, the direct account owner (addressed via the partner)."""

    notification_id: str
    partner_id: str
    recipient: str
    kind: NotificationKind
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )


class NotificationKindV2(StrEnum):
    """Every v1 kind, and the registration changes v1 cannot name (its consumers would refuse
    a new value of `kind`, so these travel as `notification.partner.v2` on the same topic)."""

    REGISTRATION_APPROVED = "registration_approved"
    REGISTRATION_REJECTED = "registration_rejected"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    DIRECT_SALES_CONFLICT = "direct_sales_conflict"
    CO_SELL = "co_sell"
    OVERLAP_HINT = "overlap_hint"
    CREDIT_ISSUED = "credit_issued"
    CREDIT_REVERSED = "credit_reversed"
    EARNING = "earning"
    CLAWBACK = "clawback"
    MDF_CLAIM = "mdf_claim"
    PARTNER_STATUS = "partner_status"
    TIER_CHANGED = "tier_changed"
    REQUALIFICATION = "requalification"
    # deals, v2 only
    REGISTRATION_EXTENDED = "registration_extended"
    REGISTRATION_WON = "registration_won"
    REGISTRATION_LOST = "registration_lost"
    REVIEW_REMINDER = "review_reminder"  # to channel managers: a review's deadline nears
    REVIEW_ESCALATED = "review_escalated"  # a review's deadline passed


@event_type("notification.partner.v2")
class PartnerNotificationV2(EventPayload):
    """`notification.partner.v1` with the kinds v1 cannot carry (NotificationKindV2). Emitted
    only for those kinds: a v1 consumer ignores the type, a v2 consumer reads both."""

    notification_id: str
    partner_id: str
    recipient: str
    kind: NotificationKindV2
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )


class NotificationKindV3(StrEnum):
    """Every v2 kind, and what v2 cannot name (a v2 consumer would refuse a new value of
    `kind`, so these travel as `notification.partner.v3` on the same topic)."""

    REGISTRATION_APPROVED = "registration_approved"
    REGISTRATION_REJECTED = "registration_rejected"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    DIRECT_SALES_CONFLICT = "direct_sales_conflict"
    CO_SELL = "co_sell"
    OVERLAP_HINT = "overlap_hint"
    CREDIT_ISSUED = "credit_issued"
    CREDIT_REVERSED = "credit_reversed"
    EARNING = "earning"
    CLAWBACK = "clawback"
    MDF_CLAIM = "mdf_claim"
    PARTNER_STATUS = "partner_status"
    TIER_CHANGED = "tier_changed"
    REQUALIFICATION = "requalification"
    REGISTRATION_EXTENDED = "registration_extended"
    REGISTRATION_WON = "registration_won"
    REGISTRATION_LOST = "registration_lost"
    REVIEW_REMINDER = "review_reminder"
    REVIEW_ESCALATED = "review_escalated"
    # onboarding, v3 only
    CERTIFICATION_EXPIRING = "certification_expiring"  # to a person: renew before it lapses
    PARTNER_MANAGER = "partner_manager"  # the partner's account manager assigned or changed


@event_type("notification.partner.v3")
class PartnerNotificationV3(EventPayload):
    """`notification.partner.v2` with the kinds v2 cannot carry (NotificationKindV3). Emitted
    only for those kinds: a v2 consumer ignores the type, a v3 consumer reads all three."""

    notification_id: str
    partner_id: str
    recipient: str
    kind: NotificationKindV3
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )


class NotificationKindV4(StrEnum):
    """Every v2 kind, and what v2 cannot name (a v2 consumer would refuse a new value of
    `kind`, so these travel as `notification.partner.v4` on the same topic)."""

    REGISTRATION_APPROVED = "registration_approved"
    REGISTRATION_REJECTED = "registration_rejected"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    DIRECT_SALES_CONFLICT = "direct_sales_conflict"
    CO_SELL = "co_sell"
    OVERLAP_HINT = "overlap_hint"
    CREDIT_ISSUED = "credit_issued"
    CREDIT_REVERSED = "credit_reversed"
    EARNING = "earning"
    CLAWBACK = "clawback"
    MDF_CLAIM = "mdf_claim"
    PARTNER_STATUS = "partner_status"
    TIER_CHANGED = "tier_changed"
    REQUALIFICATION = "requalification"
    REGISTRATION_EXTENDED = "registration_extended"
    REGISTRATION_WON = "registration_won"
    REGISTRATION_LOST = "registration_lost"
    REVIEW_REMINDER = "review_reminder"
    REVIEW_ESCALATED = "review_escalated"
    CERTIFICATION_EXPIRING = "certification_expiring"
    PARTNER_MANAGER = "partner_manager"
    # programme, v4 only
    SURVEY = "survey"  # a satisfaction survey the partner's people are asked to answer


@event_type("notification.partner.v4")
class PartnerNotificationV4(EventPayload):
    """`notification.partner.v3` with the kinds v3 cannot carry (NotificationKindV4). Emitted
    only for those kinds: older consumers ignore the type, a v4 consumer reads all four."""

    notification_id: str
    partner_id: str
    recipient: str
    kind: NotificationKindV4
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )


# What the notifications service files: any version (the same fields; each version's kinds
# are a superset of the one before).
AnyPartnerNotification = (
    PartnerNotification | PartnerNotificationV2 | PartnerNotificationV3 | PartnerNotificationV4
)
AnyNotificationKind = (
    NotificationKind | NotificationKindV2 | NotificationKindV3 | NotificationKindV4
)

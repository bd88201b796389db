"""Partner notifications (topic notifications.partner.v1, key: partner id).

Every service that has something to tell a partner (decisions, conflicts, credits, earnings,
tier changes) emits this one contract; partner apps subscribe to the topic and filter by key.
"""

from __future__ import annotations

from pydantic import Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("notification.partner.v1")
class PartnerNotification(EventPayload):
    """A message for a partner app (key: partner id). `recipient` may be the partner or, for
    approvals and direct-sales conflicts, the direct account owner (addressed via the partner)."""

    notification_id: str
    partner_id: str
    recipient: str
    # deals: registration_approved | registration_rejected | conflict | pending_review | expired |
    #   direct_sales_conflict | co_sell | overlap_hint
    # attribution: credit_issued | credit_reversed; incentives: earning | clawback | mdf_claim
    # onboarding: partner_status | tier_changed | requalification
    kind: str
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )

"""Which campaign a `campaign` touchpoint may name: one programme announced, that the
touchpoint's partner runs, on a day the campaign ran. Pure rules, no I/O.

The campaign id a partner app types is not an identity until programme's own announcement of
the campaign confirms it (a verified link): attribution knows campaigns only from those events,
so a campaign created a moment ago may not be known yet, which is worth retrying. Credits carry
the campaign id on to programme, which sums a campaign's revenue from them."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.errors import Conflict, Unprocessable

# The campaign as programme announced it is the contract's; the rules' tests build it from here.
from shared.events.programme_service import KnownCampaign as KnownCampaign


class CampaignNotKnown(Conflict):
    """No announcement of the campaign has arrived (yet): a retry may succeed."""


class NotThroughCampaign(Unprocessable):
    """The touchpoint cannot have come through the campaign it names."""


def check_touch_campaign(
    campaign_id: str, campaign: KnownCampaign | None, partner_id: str, occurred_at: datetime
) -> None:
    """A touchpoint of `partner_id` at `occurred_at` may name the campaign when programme
    announced it, the partner runs it, and it was running then: from its first day to its last
    (whole days, UTC), and not after it was cancelled."""
    if campaign is None:
        raise CampaignNotKnown(
            f"campaign {campaign_id} is not known (yet): attribution learns of campaigns from "
            "programme's events; retry in a moment, or check the id"
        )
    if partner_id not in campaign.partner_ids:
        raise NotThroughCampaign(f"campaign {campaign_id} is not run by partner {partner_id}")
    day = occurred_at.astimezone(UTC).date()  # campaigns' days are UTC days
    if not campaign.starts_on <= day <= campaign.ends_on:
        raise NotThroughCampaign(
            f"occurred_at {occurred_at.isoformat()} is outside campaign {campaign_id}'s dates "
            f"({campaign.starts_on.isoformat()} to {campaign.ends_on.isoformat()})"
        )
    if campaign.cancelled_at is not None and occurred_at > campaign.cancelled_at:
        raise NotThroughCampaign(
            f"occurred_at {occurred_at.isoformat()} is after campaign {campaign_id} was "
            f"cancelled ({campaign.cancelled_at.isoformat()})"
        )

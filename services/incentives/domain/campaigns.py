"""Which campaign an MDF pre-approval may name: one programme announced, that the partner runs,
not cancelled and not over, with the activity inside the campaign's dates. Pure rules, no I/O.

The campaign id a partner types is not an identity until programme's own announcement of the
campaign confirms it (a verified link): incentives knows campaigns only from those events, so a
campaign created a moment ago may not be known yet, which is worth retrying."""

from __future__ import annotations

from datetime import date, timedelta

from shared.errors import Conflict, Unprocessable

# The campaign as programme announced it is the contract's; the rules' tests build it from here.
from shared.events.programme_service import KnownCampaign as KnownCampaign

# The longest claim window the settings admit (`preapproval_claim_window_days`).
LONGEST_CLAIM_WINDOW_DAYS = 365
# The last end from which the longest claim window still ends on a date. Programme refuses
# campaign dates past a hundred years from now; an older event may carry one (a campaign
# ending on 9999-12-30 made approving its budget answer 500: its deadline had no date).
LATEST_CAMPAIGN_END = date.max - timedelta(days=1 + LONGEST_CLAIM_WINDOW_DAYS)


class CampaignNotKnown(Conflict):
    """No announcement of the campaign has arrived (yet): a retry may succeed."""


class CampaignNotOpen(Conflict):
    """The campaign is cancelled or over: no budget can be asked for it any more."""


def check_campaign_end(campaign_id: str, ends_on: date) -> None:
    """A campaign whose claims' deadline can be counted from its last day."""
    if ends_on > LATEST_CAMPAIGN_END:
        raise Unprocessable(
            f"campaign {campaign_id} ends on {ends_on.isoformat()}: after "
            f"{LATEST_CAMPAIGN_END.isoformat()} its claims' deadline would have no date"
        )


def check_campaign(
    campaign_id: str, campaign: KnownCampaign | None, partner_id: str, today: date
) -> KnownCampaign:
    """The campaign a pre-approval for `partner_id` names, if it may: known, the partner's,
    not cancelled, and not ended before `today` (a campaign's last day still counts)."""
    if campaign is None:
        raise CampaignNotKnown(
            f"campaign {campaign_id} is not known (yet): incentives learns of campaigns from "
            "programme's events; retry in a moment, or check the id"
        )
    if partner_id not in campaign.partner_ids:
        raise Unprocessable(f"campaign {campaign_id} is not run by partner {partner_id}")
    if campaign.cancelled_at is not None:
        raise CampaignNotOpen(f"campaign {campaign_id} is cancelled")
    if campaign.ends_on < today:
        raise CampaignNotOpen(f"campaign {campaign_id} ended on {campaign.ends_on.isoformat()}")
    check_campaign_end(campaign_id, campaign.ends_on)
    return campaign


def check_within(campaign: KnownCampaign, starts_on: date, ends_on: date) -> None:
    """The activity a pre-approval budgets runs within its campaign's dates: its claim deadline
    is counted from the campaign's end, and dates beyond it would promise spending the campaign
    does not cover (a probe asked for two years of a ten-day campaign). Checked when asked:
    programme may later move the campaign's dates, and the deadline follows them."""
    if starts_on < campaign.starts_on or ends_on > campaign.ends_on:
        raise Unprocessable(
            f"the activity's dates {starts_on.isoformat()}..{ends_on.isoformat()} lie outside "
            f"campaign {campaign.campaign_id}'s dates {campaign.starts_on.isoformat()}.."
            f"{campaign.ends_on.isoformat()}: a pre-approval is for spending within its campaign"
        )


def check_approvable(
    campaign_id: str, campaign: KnownCampaign | None, partner_id: str
) -> KnownCampaign:
    """A requested pre-approval may be approved (money reserved for it) only while its campaign
    is not cancelled and its partner still runs it: programme may cancel a campaign, or a
    partner may leave it before it starts, after the partner asked, and then it spends nothing
    for that partner. Rejecting it stays open. (A campaign over by now may still be
    approved: the budget was asked in time, and claims have their window after the end.)"""
    if campaign is None:
        raise CampaignNotKnown(
            f"campaign {campaign_id} is not known (any more): a pre-approval is approved only "
            "for a campaign programme announced"
        )
    if partner_id not in campaign.partner_ids:
        raise CampaignNotOpen(
            f"partner {partner_id} no longer runs campaign {campaign_id}: its pre-approval can "
            "only be rejected"
        )
    if campaign.cancelled_at is not None:
        raise CampaignNotOpen(
            f"campaign {campaign_id} was cancelled on {campaign.cancelled_at.date().isoformat()}: "
            "its pre-approval can only be rejected"
        )
    check_campaign_end(campaign_id, campaign.ends_on)
    return campaign


def check_claimable(campaign_id: str, campaign: KnownCampaign | None, partner_id: str) -> None:
    """A claim draws on an approved pre-approval only while its partner still runs the
    campaign. Programme lets a partner leave only before the campaign starts and without a
    pre-approval, but it hears of pre-approvals a moment late: one approved in that moment is
    refused here, and its reservation is released when it expires. A cancelled campaign still
    takes claims (money spent before the cancellation)."""
    if campaign is None:
        raise CampaignNotKnown(
            f"campaign {campaign_id} is not known (any more): a claim is taken only for a "
            "campaign programme announced"
        )
    if partner_id not in campaign.partner_ids:
        raise CampaignNotOpen(
            f"partner {partner_id} no longer runs campaign {campaign_id}: no claim against "
            "its pre-approval"
        )

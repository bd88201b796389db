"""Partners made through the demo story's steps on a running fleet, for the end-to-end tests."""

from __future__ import annotations

import httpx

from deploy.story import Partner, Story
from tests.support.processes import ADMIN_TOKEN, Fleet


async def dealing_partner(fleet: Fleet, partner: Partner, *, crm_linked: bool = False) -> Partner:
    """`partner` onboarded through onboarding's API (selling data and ai) and known to deals as
    active; with `crm_linked`, a channel manager has confirmed that Salesforce names it by its
    partner id (its Salesforce deals credit it)."""
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        await story.onboard(partner, ["data", "ai"])
        await story.known_to_deals(partner)
        if crm_linked:
            await story.crm_linked(partner)
    return partner

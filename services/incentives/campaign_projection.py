"""The campaign projection: each co-marketing campaign as programme last announced it
(programme.campaign_changed.v1), read when a partner asks for an MDF pre-approval naming it,
and the end its approved pre-approvals' claim deadlines count from."""

from __future__ import annotations

from collections.abc import Sequence

from shared.campaigns import keep_campaign, known_campaign
from shared.db import Connection
from shared.events.programme_service import CampaignChanged, KnownCampaign


async def record(conn: Connection, changes: Sequence[CampaignChanged]) -> dict[str, int]:
    """Keep the newest word on each campaign (an older change read late changes nothing); a
    cancellation stays, whatever arrives after it. Returns, for each known campaign whose last
    day moved, by how many days (the claim deadlines of its pre-approvals move with it).

    The campaigns' rows stay locked to the end of the transaction: an approval reads its
    campaign FOR SHARE (`campaign`), so it computes its deadline from the end before or after
    this change, never from one this transaction is replacing."""
    ids = sorted({change.campaign_id for change in changes})
    ends = {
        row["campaign_id"]: row["ends_on"]
        for row in await conn.fetch(
            """SELECT campaign_id, ends_on FROM campaigns WHERE campaign_id = ANY($1::text[])
               ORDER BY campaign_id FOR UPDATE""",
            ids,
        )
    }
    was = dict(ends)
    for change in changes:
        kept = await keep_campaign(conn, change)
        if kept is not None:
            ends[change.campaign_id] = kept
    return {
        campaign_id: (ends[campaign_id] - end).days
        for campaign_id, end in was.items()
        if ends[campaign_id] != end
    }


async def campaign(
    conn: Connection, campaign_id: str, *, for_share: bool = False
) -> KnownCampaign | None:
    """The campaign as last announced; `for_share` keeps programme's next word on it (record)
    waiting until this transaction ends."""
    return await known_campaign(conn, campaign_id, for_share=for_share)

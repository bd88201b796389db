"""The campaign projection: each co-marketing campaign as programme last announced it
(programme.campaign_changed.v1), read when a partner asks for an MDF pre-approval naming it,
and the end its approved pre-approvals' claim deadlines count from."""

from __future__ import annotations

from collections.abc import Sequence

from services.incentives.domain.campaigns import KnownCampaign
from shared.db import Connection
from shared.events.programme_service import CampaignChanged


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
        kept = await conn.fetchval(
            """INSERT INTO campaigns (campaign_id, partner_ids, starts_on, ends_on, cancelled_at,
                   changed_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (campaign_id) DO UPDATE SET
                   partner_ids = excluded.partner_ids, starts_on = excluded.starts_on,
                   ends_on = excluded.ends_on,
                   cancelled_at = coalesce(campaigns.cancelled_at, excluded.cancelled_at),
                   changed_at = excluded.changed_at
               WHERE campaigns.changed_at <= excluded.changed_at
               RETURNING ends_on""",
            change.campaign_id,
            list(change.partner_ids),
            change.starts_on,
            change.ends_on,
            change.cancelled_at,
            change.changed_at,
        )
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
    lock = " FOR SHARE" if for_share else ""
    row = await conn.fetchrow(f"SELECT * FROM campaigns WHERE campaign_id = $1{lock}", campaign_id)
    if row is None:
        return None
    return KnownCampaign(
        campaign_id=row["campaign_id"],
        partner_ids=frozenset(row["partner_ids"]),
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        cancelled_at=row["cancelled_at"],
    )

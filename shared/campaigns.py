"""Programme's campaigns as a consuming service keeps them (`programme.campaigns.v1`).

Attribution (which campaign a touchpoint may name) and incentives (which campaign an MDF
pre-approval may name) keep the same projection of the same contract, each in a `campaigns`
table of its own schema that its migrations create with the same columns. What the projection
keeps is what the contract promises: the newest `changed_at` wins, and a cancellation is final.
What a service decides from a campaign stays in its own domain."""

from __future__ import annotations

from datetime import date

from shared.db import Connection, from_row
from shared.events.programme_service import CampaignChanged, KnownCampaign


async def keep_campaign(conn: Connection, change: CampaignChanged) -> date | None:
    """Keep programme's newest word on the campaign: an older change read late changes nothing,
    and a cancellation stays, whatever arrives after it. Returns the campaign's last day as
    the row holds it after this change, or None when the change was older than the row's."""
    kept_ends_on: date | None = await conn.fetchval(
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
    return kept_ends_on


async def known_campaign(
    conn: Connection, campaign_id: str, *, for_share: bool = False
) -> KnownCampaign | None:
    """The campaign as programme last announced it (None: no word of it has arrived);
    `for_share` keeps programme's next word on it (`keep_campaign`) waiting until this
    transaction ends."""
    lock = " FOR SHARE" if for_share else ""
    row = await conn.fetchrow(f"SELECT * FROM campaigns WHERE campaign_id = $1{lock}", campaign_id)
    if row is None:
        return None
    return from_row(KnownCampaign, row, partner_ids=frozenset(row["partner_ids"]))

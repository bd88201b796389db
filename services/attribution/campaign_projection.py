"""The campaign projection: each co-marketing campaign as programme last announced it
(programme.campaign_changed.v1), read when a touchpoint names it."""

from __future__ import annotations

from collections.abc import Sequence

from services.attribution.domain.campaigns import KnownCampaign
from shared.db import Connection
from shared.events.programme_service import CampaignChanged


async def record(conn: Connection, changes: Sequence[CampaignChanged]) -> None:
    """Keep the newest word on each campaign (an older change read late changes nothing); a
    cancellation stays, whatever arrives after it."""
    for change in changes:
        await conn.execute(
            """INSERT INTO campaigns (campaign_id, partner_ids, starts_on, ends_on, cancelled_at,
                   changed_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (campaign_id) DO UPDATE SET
                   partner_ids = excluded.partner_ids, starts_on = excluded.starts_on,
                   ends_on = excluded.ends_on,
                   cancelled_at = coalesce(campaigns.cancelled_at, excluded.cancelled_at),
                   changed_at = excluded.changed_at
               WHERE campaigns.changed_at <= excluded.changed_at""",
            change.campaign_id,
            list(change.partner_ids),
            change.starts_on,
            change.ends_on,
            change.cancelled_at,
            change.changed_at,
        )


async def campaign(conn: Connection, campaign_id: str) -> KnownCampaign | None:
    row = await conn.fetchrow("SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id)
    if row is None:
        return None
    return KnownCampaign(
        campaign_id=row["campaign_id"],
        partner_ids=frozenset(row["partner_ids"]),
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        cancelled_at=row["cancelled_at"],
    )

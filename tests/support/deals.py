"""What tests of deals need beyond the shared support: partners deals knows of."""

from __future__ import annotations

import asyncpg

from shared.topics import PARTNER_LIFECYCLE
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually


async def partners_onboarded(infra: Infra, *partner_ids: str) -> None:
    """Announce each partner on partners.lifecycle.v1, as onboarding does, and wait until deals
    has projected every one of them."""
    for partner_id in partner_ids:
        await publish(
            infra,
            PARTNER_LIFECYCLE,
            [partner_state_changed(partner_id=partner_id)],
            subject=partner_id,
            source="onboarding",
        )
    conn = await asyncpg.connect(infra.admin_dsn)
    try:

        async def all_there() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM deals.partners WHERE partner_id = ANY($1)", list(partner_ids)
            )
            return bool(count == len(partner_ids))

        await eventually(all_there, what=f"deals knows partners {', '.join(partner_ids)}")
    finally:
        await conn.close()

"""What tests of deals need beyond the shared support: waiting for the partner projection."""

from __future__ import annotations

import asyncpg

from tests.support.infra import Infra
from tests.support.polling import eventually


async def partners_known(infra: Infra, *partner_ids: str) -> None:
    """Wait until deals has projected every one of the partners (from partners.lifecycle.v1)."""
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

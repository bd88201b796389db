"""Helpers for tests that drive real deals processes: tokens, partners, bounded polling."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared.events import Envelope
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.outbox import make_producer
from shared.topics import PARTNER_LIFECYCLE
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth

__all__ = ["ADMIN", "auth", "eventually", "partners_known", "publish_partner"]


async def publish_partner(
    infra: Infra, partner_id: str, status: PartnerStatus = PartnerStatus.ACTIVE
) -> None:
    event = PartnerStateChanged(
        partner_id=partner_id,
        name=f"Partner {partner_id}",
        partner_type="GSI",
        status=status,
        tier="gold",
        regions=("US", "DE"),
        products=("data", "ai"),
        changed_at=datetime.now(UTC),
        version=1,
    )
    producer = make_producer(infra.kafka_bootstrap, "test-onboarding")
    await producer.start()
    try:
        envelope = Envelope.wrap(event, source="pollinate/onboarding", subject=partner_id)
        await producer.send_and_wait(
            PARTNER_LIFECYCLE.name, envelope.to_bytes(), key=partner_id.encode()
        )
    finally:
        await producer.stop()


async def partners_known(infra: Infra, *partner_ids: str) -> None:
    conn = await asyncpg.connect(infra.admin_dsn)
    try:

        async def all_there() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM deals.partners WHERE partner_id = ANY($1)", list(partner_ids)
            )
            return bool(count == len(partner_ids))

        await eventually(all_there)
    finally:
        await conn.close()

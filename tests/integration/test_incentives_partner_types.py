"""Incentive programmes per partner type, on real Kafka + Postgres: the type onboarding
publishes on partners.lifecycle.v1 reaches incentives' projection, and a type's own base rate
and SPIFF pay that type's partners only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events.crm import Customer
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.incentives import running_programs
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import auth

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()
PROGRAMS = {
    "version": "types-1",
    "kickers": [],
    "stacking": {"exclusive": []},
    "base_rates_by_type": {"referral_affiliate": {"gold": "0.08"}},
    "spiffs": [
        {
            "id": "isv-launch",
            "name": "ISV launch",
            "starts": TODAY.replace(day=1).isoformat(),
            "ends": TODAY.replace(month=12, day=31).isoformat(),
            "fixed_amount": "500.00",
            "partner_types": ["isv"],
        }
    ],
}


@pytest.fixture(scope="module")
async def incentives(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with running_programs(infra, tmp_path_factory.mktemp("incentives"), PROGRAMS) as url:
        yield url


async def test_a_partner_type_earns_its_own_base_rate_and_spiffs(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    run = uuid.uuid4().hex[:10]
    partners = {
        f"p-ref-{run}": "referral_affiliate",
        f"p-isv-{run}": "isv",
        f"p-gsi-{run}": "gsi",
    }
    for partner, kind in partners.items():
        snapshot = partner_state_changed(partner_id=partner, tier="gold", partner_type=kind)
        await publish(infra, PARTNER_LIFECYCLE, [snapshot], subject=partner, source="onboarding")

    async def projected() -> bool:
        rows = await admin_db.fetch(
            "SELECT partner_id, partner_type FROM incentives.partners WHERE partner_id = ANY($1)",
            list(partners),
        )
        return {r["partner_id"]: r["partner_type"] for r in rows} == partners

    await eventually(projected)
    for partner in partners:
        deal = f"salesforce:{partner}"
        credit = credit_issued(
            partner_id=partner,
            deal_key=deal,
            amount="10000.00",
            close_date=TODAY,
            customer=Customer(name="Typed", domain=f"{partner}.example", country="DE"),
        )
        await publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")

    async with httpx.AsyncClient(timeout=30) as client:

        async def balances() -> dict[str, str] | None:
            got = {
                p: (await client.get(f"{incentives}/partners/{p}/balance", headers=auth(p))).json()[
                    "balance"
                ]
                for p in partners
            }
            return got if all(b != "0.00" for b in got.values()) else None

        earned = await eventually(balances)
    assert earned == {
        f"p-ref-{run}": "800.00",  # the referral type's own gold rate, 8 %
        f"p-isv-{run}": "1000.00",  # gold 5 % + the ISV-only SPIFF's 500
        f"p-gsi-{run}": "500.00",  # gold 5 %: no rule of its own
    }

"""A programme that pays in yen, on real Kafka + Postgres: the ledger books in the currency's
smallest unit (a whole yen, not a hundredth of one), and no route takes a fraction of a yen."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.incentives import running_programs
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import auth
from tests.support.tokens import FINANCE

pytestmark = pytest.mark.integration
D = Decimal
# Gold earns 5 %, the fund 2 %; nothing else, so each figure is one rounding.
PROGRAMS = {
    "currency": "JPY",
    "kickers": [],
    "stacking": {"exclusive": []},
    "caps": {"per_partner_period": None},
    "mdf": {"rate": "0.02", "cap_per_partner_period": None},
}


@pytest.fixture(scope="module")
async def incentives(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with running_programs(infra, tmp_path_factory.mktemp("incentives"), PROGRAMS) as url:
        yield url


async def test_a_yen_programme_books_whole_yen_and_refuses_fractions(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    partner = f"p-yen-{uuid.uuid4().hex[:10]}"
    state = partner_state_changed(partner_id=partner, tier="gold")
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner, source="onboarding")

    async def known() -> bool:
        status = await admin_db.fetchval(
            "SELECT status FROM incentives.partners WHERE partner_id = $1", partner
        )
        return bool(status == "active")

    await eventually(known)
    # 5 % of 10,101 yen is 505.05 yen; 2 % is 202.02.
    credit = credit_issued(partner_id=partner, amount="10101", currency="JPY")
    await publish(
        infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
    )
    async with httpx.AsyncClient(base_url=incentives, timeout=30) as client:

        async def balance() -> dict[str, Any] | None:
            answer = await client.get(f"/partners/{partner}/balance", headers=auth(partner))
            body: dict[str, Any] = answer.json()
            return body if D(body["balance"]) > 0 else None

        earned = await eventually(balance)
        assert (D(earned["balance"]), earned["currency"]) == (D("505"), "JPY")
        fund = (await client.get(f"/partners/{partner}/mdf", headers=auth(partner))).json()
        assert D(fund["available"]) == D("202")

        refusals = [
            ("/partners/{p}/payouts", FINANCE, {"reference": "PAY-1", "amount": "100.50"}),
            (
                "/mdf/claims",
                auth(partner),
                {"amount": "10.5", "description": "booth", "proof_reference": "INV-1"},
            ),
            ("/what-if", auth(partner), {"amount": "1000.01"}),
        ]
        for path, headers, body in refusals:
            answer = await client.post(path.format(p=partner), json=body, headers=headers)
            assert answer.status_code == 422, (path, answer.text)
            assert "more decimals than JPY has (0)" in answer.text, answer.text
        paid = await client.post(
            f"/partners/{partner}/payouts",
            json={"reference": "PAY-2", "amount": "100"},
            headers=FINANCE,
        )
        assert paid.status_code == 201, paid.text

        # Entries from before the programme paid in yen (a copy of one, in dollars): nothing is
        # paid while dollars are owed (summed across currencies, they were paid as yen).
        async with admin_db.transaction():
            await admin_db.execute("SET LOCAL search_path TO incentives")  # its triggers' tables
            await admin_db.execute(
                """CREATE TEMP TABLE older ON COMMIT DROP AS
                   SELECT * FROM incentives.ledger_entries
                   WHERE partner_id = $1 AND entry_type = 'accrual'""",
                partner,
            )
            await admin_db.execute(
                """UPDATE older SET entry_id = entry_id || '-usd', currency = 'USD', amount = 7,
                       seq = nextval(pg_get_serial_sequence('incentives.ledger_entries', 'seq'))"""
            )
            await admin_db.execute("INSERT INTO incentives.ledger_entries SELECT * FROM older")
        waiting = await client.post(
            f"/partners/{partner}/payouts",
            json={"reference": "PAY-3", "amount": "1"},
            headers=FINANCE,
        )
        assert waiting.status_code == 409, waiting.text
        assert "the ledger holds 7.00 USD besides JPY" in waiting.text

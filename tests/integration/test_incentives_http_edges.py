"""Incentives' HTTP edges against a real process on real Kafka + Postgres, as an outside probe
found them: finance's concurrent retries of a payout pay once, a claim answers the amount it
stored, list limits and partner ids are validated (422, never clamped or taken as a partner
called ""), and a period is asked in the form the programme books, in a year 1900-9999."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.incentives import earning_partner
from tests.support.infra import Infra
from tests.support.processes import ADMIN, auth, service_fixture
from tests.support.tokens import FINANCE

pytestmark = pytest.mark.integration
D = Decimal


incentives = service_fixture("incentives")


def refused(answer: httpx.Response, where: tuple[str, ...]) -> str:
    """The message of a 422 that names exactly one field, at `where`."""
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list), detail
    assert [tuple(problem["loc"]) for problem in detail] == [where], detail
    problem = detail[0]
    return str(problem["msg"])


async def test_concurrent_payout_retries_pay_once_and_another_amount_is_a_conflict(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
        url, body = f"/partners/{partner}/payouts", {"amount": "0.01", "reference": "wire-123"}
        answers = await asyncio.gather(
            *(client.post(url, json=body, headers=FINANCE) for _ in range(20))
        )
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json()["entry_id"] for a in answers}) == 1
        entry = answers[0].json()["entry_id"]
        paid = await admin_db.fetch(
            """SELECT entry_id, amount FROM incentives.ledger_entries
               WHERE partner_id = $1 AND entry_type = 'payout'""",
            partner,
        )
        assert [tuple(r) for r in paid] == [(entry, D("-0.01"))]
        told = await admin_db.fetchval(
            """SELECT count(*) FROM incentives.outbox
               WHERE event_type = 'incentive.payout_recorded.v1' AND message_key = $1""",
            partner,
        )
        assert told == 1
        other = await client.post(
            url, json={"amount": "0.02", "reference": "wire-123"}, headers=FINANCE
        )
        assert (other.status_code, other.json()["detail"]) == (
            409,
            f"reference wire-123 already names payout {entry} of 0.01 USD (asked for 0.01 USD); "
            "this request asks for 0.02 USD: a new payout needs a new reference",
        )
        # An amount written another way is the same amount, answered as stored.
        again = await client.post(
            url, json={"amount": "0.010", "reference": "wire-123"}, headers=FINANCE
        )
        assert (again.status_code, again.json()) == (201, answers[0].json())
        balance = (await client.get(f"/partners/{partner}/balance", headers=FINANCE)).json()
        assert balance["paid"] == "-0.01"


async def test_a_claim_answers_the_amount_it_stored(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
        claim: dict[str, Any] = {"description": "booth"}
        # a JSON number 1e1 reads as 10.0; a string 2.5 as 2.5: each is stored to the cent
        for amount, who, query, stored, proof in (
            (1e1, auth(partner), "", "10.00", "INV-1"),
            ("2.5", ADMIN, f"?partner_id={partner}", "2.50", "INV-2"),
        ):
            body = {**claim, "amount": amount, "proof_reference": proof}
            asked = await client.post(f"/mdf/claims{query}", json=body, headers=who)
            assert asked.status_code == 201, asked.text
            found = await client.get(f"/mdf/claims/{asked.json()['claim_id']}", headers=who)
            assert asked.json()["amount"] == found.json()["amount"] == stored


async def test_list_limits_and_partner_ids_are_validated(
    incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    bodies = {
        "/mdf/claims": {"amount": "10.00", "description": "booth", "proof_reference": "INV-1"},
        "/mdf/preapprovals": {
            "reference": "r-1",
            "campaign_id": "c-1",
            "activity_kind": "event",
            "description": "joint booth",
            "starts_on": "2026-01-01",
            "ends_on": "2026-01-05",
            "amount": "10.00",
            "currency": "USD",
        },
    }
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        lists = {
            "/mdf/claims": ADMIN,
            "/mdf/preapprovals": ADMIN,
            "/credits/held": FINANCE,
            "/payouts": FINANCE,
        }
        for path, who in lists.items():
            for limit in ("-1", "0", str(10**23), "501"):
                answer = await client.get(path, params={"limit": limit}, headers=who)
                assert refused(answer, ("query", "limit")), (path, limit)
            assert (await client.get(path, params={"limit": 500}, headers=who)).status_code == 200
        assert "greater than or equal to 1" in refused(
            await client.get("/mdf/claims?limit=0", headers=ADMIN), ("query", "limit")
        )

        for bad in ("", "p" * 201):
            for path, body in bodies.items():
                answer = await client.post(
                    path, params={"partner_id": bad}, json=body, headers=ADMIN
                )
                refused_as = refused(answer, ("query", "partner_id"))
                assert "at least 1 character" in refused_as or "at most 200" in refused_as
            held = await client.get("/credits/held", params={"partner_id": bad}, headers=FINANCE)
            refused(held, ("query", "partner_id"))
            one = await client.get("/payouts", params={"partner": bad}, headers=FINANCE)
            refused(one, ("query", "partner"))
        # nothing was recorded for a partner called ""
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM incentives.mdf_claims WHERE partner_id = ''"
            )
            == 0
        )


async def test_a_period_is_asked_in_the_programmes_form(incentives: str) -> None:
    """The default programme books by quarter: a month is refused, as a year before 1900."""
    partner = f"p-period-{uuid.uuid4().hex[:8]}"
    statement = f"/partners/{partner}/statement"
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        cases = {
            ("/payouts", "2026-12"): (
                "period 2026-12 is a month, but the programme books by quarter: ask for a "
                "quarter (YYYY-Qn), e.g. 2026-Q4"
            ),
            (statement, "2026-02"): (
                "period 2026-02 is a month, but the programme books by quarter: ask for a "
                "quarter (YYYY-Qn), e.g. 2026-Q1"
            ),
            (statement, "0000-01"): "period 0000-01: the year must lie between 1900 and 9999",
            ("/payouts", "0000-Q1"): "period 0000-Q1: the year must lie between 1900 and 9999",
            (statement, "1899-Q4"): "period 1899-Q4: the year must lie between 1900 and 9999",
        }
        for (path, period), detail in cases.items():
            answer = await client.get(path, params={"period": period}, headers=FINANCE)
            assert (answer.status_code, answer.json()) == (422, {"detail": detail}), path
        for path in ("/payouts", statement):
            for period in ("2026-Q4", "1900-Q1", "9999-Q4"):
                answer = await client.get(path, params={"period": period}, headers=FINANCE)
                assert answer.status_code == 200, (path, period, answer.text)
                assert answer.json()["period"] == period

"""Incentives' payouts view for the finance team, on a real process: what each partner earned,
had taken back and was paid in a period, the balance it is still owed and its settlement state,
and the payouts made, from the same ledger partners read their statements from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes
from tests.support.tokens import FINANCE

pytestmark = pytest.mark.integration
D = Decimal


async def payouts(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    """The view with every page of partners gathered."""
    gathered: list[dict[str, Any]] = []
    while True:
        query = {**params, "offset": len(gathered), "limit": 500}
        answer = await client.get(f"{url}/payouts", params=query, headers=FINANCE)
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        gathered += view["partners"]
        if len(gathered) >= view["total_partners"]:
            view["partners"] = gathered
            return view


def quarter(day: datetime) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


async def test_payouts_by_period_and_state_add_up_to_the_ledger(
    infra: Infra, admin_db: asyncpg.Connection[Any]
) -> None:
    run = uuid.uuid4().hex[:8]
    partners = [f"p-pay-{run}-{n}" for n in range(2)]
    async with (
        service_processes(infra, "incentives") as [url],
        httpx.AsyncClient(timeout=30) as client,
    ):
        for partner in partners:
            state = partner_state_changed(partner_id=partner, tier="gold")
            await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner, source="onboarding")

            async def known(partner: str = partner) -> bool:
                tier = await admin_db.fetchval(
                    "SELECT tier FROM incentives.partners WHERE partner_id = $1", partner
                )
                return bool(tier == "gold")

            await eventually(known)
            credit = credit_issued(partner_id=partner, deal_key=f"deal-{partner}")
            await publish(
                infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
            )

        async def earned(partner: str) -> Any:
            answer = await client.get(f"{url}/partners/{partner}/balance", headers=auth(partner))
            body = answer.json()
            return body if D(body["balance"]) > 0 else None

        balances = [await eventually(lambda p=p: earned(p)) for p in partners]
        owed, paid_up = partners
        half = (D(balances[0]["balance"]) / 2).quantize(D("0.01"))
        for partner, amount in ((owed, str(half)), (paid_up, None)):
            body = {"reference": f"PAY-{partner}", **({"amount": amount} if amount else {})}
            answer = await client.post(
                f"{url}/partners/{partner}/payouts", json=body, headers=FINANCE
            )
            assert answer.status_code == 201, answer.text

        everything = await payouts(client, url)
        mine = {p["partner_id"]: p for p in everything["partners"] if p["partner_id"] in partners}
        assert mine[owed]["state"] == "owed"
        assert D(mine[owed]["paid"]) == half
        assert D(mine[owed]["balance"]) == D(balances[0]["balance"]) - half
        assert mine[paid_up]["state"] == "settled"
        assert D(mine[paid_up]["balance"]) == 0
        for partner, balance in zip(partners, balances, strict=True):
            assert D(mine[partner]["earned"]) == D(balance["earned"])
            assert mine[partner]["last_paid_at"] is not None
        assert D(everything["totals"]["paid"]) == sum(D(p["paid"]) for p in everything["partners"])

        settled = await payouts(client, url, state="settled")
        ids = {p["partner_id"] for p in settled["partners"]}
        assert paid_up in ids
        assert owed not in ids
        assert {p["state"] for p in settled["partners"]} == {"settled"}

        # The credits closed in their quarter; the payouts were made in today's.
        today = quarter(datetime.now(UTC))
        now_view = await payouts(client, url, period=today)
        made = {p["reference"]: p for p in now_view["payouts"] if p["partner_id"] in partners}
        assert set(made) == {f"PAY-{p}" for p in partners}
        assert D(made[f"PAY-{owed}"]["amount"]) == half
        assert today in now_view["periods"]

        # Every payout made is reachable, a page at a time, newest first, with their count.
        for n in range(2):
            body = {"reference": f"PAY-{owed}-{n}", "amount": "0.01"}
            answer = await client.post(f"{url}/partners/{owed}/payouts", json=body, headers=FINANCE)
            assert answer.status_code == 201, answer.text
        pages, before = [], None
        while True:
            query = {"partner": owed, "payouts_limit": 1}
            answer = await client.get(
                f"{url}/payouts",
                params={**query, **({"payouts_before": before} if before else {})},
                headers=FINANCE,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["total_payouts"] == 3
            pages.append(answer.json()["payouts"])
            before = answer.json()["next_payouts_before"]
            if before is None:
                break
        assert [len(page) for page in pages] == [1, 1, 1]
        references = [page[0]["reference"] for page in pages]
        assert references == [f"PAY-{owed}-1", f"PAY-{owed}-0", f"PAY-{owed}"]
        unknown = await client.get(
            f"{url}/payouts", params={"payouts_before": str(uuid.uuid4())}, headers=FINANCE
        )
        assert unknown.status_code == 422
        assert "payouts_before names no payout" in unknown.text

        for bad in ({"period": "2026-Q5"}, {"period": "last"}, {"state": "due"}, {"limit": 0}):
            answer = await client.get(f"{url}/payouts", params=bad, headers=FINANCE)
            assert answer.status_code == 422, (bad, answer.text)
        assert (await client.get(f"{url}/payouts", headers=ADMIN)).status_code == 200
        refused = await client.get(f"{url}/payouts", headers=auth(owed))
        assert refused.status_code == 403

"""What the campaign tests share: the results they expect of a co-marketing campaign
(programme's `GET /campaigns/{id}`: both play the same story, a 1,500.00 USD budget
pre-approved, a 1,000.00 claim on it approved and a 40,000.00 deal won through the campaign's
touchpoint; leads and the partners' reported pipeline differ by test), partners programme
knows, and incentives' word on a pre-approval."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from shared.events.incentives import MdfPreapprovalChanged
from shared.topics import PARTNER_LIFECYCLE
from tests.support import factories as f
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.tokens import ADMIN

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def usd_results(*, leads: int, pipeline: str) -> dict[str, Any]:
    """The results after that story: what was spent, what it brought and the return."""
    return {
        "leads": leads,
        "by_currency": [
            {
                "currency": "USD",
                "pipeline": pipeline,
                "attributed_revenue": "40000.00",
                "mdf_approved": "1500.00",
                "mdf_reserved": "500.00",
                "mdf_claimed": "1000.00",
                "return_per_dollar": "40.0000",
            }
        ],
    }


async def ask_once_known(
    client: httpx.AsyncClient, incentives: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    """`POST /mdf/preapprovals` once incentives has heard of the campaign `body` names: it
    learns of campaigns from programme's events, so a campaign created a moment ago is a 409
    "not known (yet)" until then. Any other answer fails the test."""

    async def accepted() -> Any:
        answer = await client.post(f"{incentives}/mdf/preapprovals", json=body, headers=headers)
        if answer.status_code == 409 and "is not known (yet)" in answer.json()["detail"]:
            return None
        assert answer.status_code == 201, answer.text
        return answer.json()

    return await eventually(accepted, 60, what=f"incentives to hear of {body['campaign_id']}")


async def known_partners(infra: Infra, client: httpx.AsyncClient, url: str, *ids: str) -> None:
    for partner_id in ids:
        state = f.partner_state_changed(partner_id=partner_id, changed_at=AT)
        await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")

    async def heard() -> bool:
        answer = await client.get(f"{url}/kpis", params={"partner_id": list(ids)}, headers=ADMIN)
        return bool(answer.json()["partners"]["active"] == len(ids))

    await eventually(heard, 60, what="programme to hear of the partners")


def preapproval(
    partner: str, campaign: str, pa: str, status: str, reserved: str, claimed: str, minute: int
) -> MdfPreapprovalChanged:
    return MdfPreapprovalChanged(
        preapproval_id=pa,
        partner_id=partner,
        campaign_id=campaign,
        activity_kind="webinar",
        status=status,
        amount=Decimal("1500.00"),
        currency="USD",
        starts_on=date(2026, 11, 1),
        ends_on=date(2026, 11, 30),
        reserved=Decimal(reserved),
        claimed=Decimal(claimed),
        fund_available=Decimal("500.00"),
        changed_at=AT + timedelta(minutes=minute),
    )

"""What the campaign tests expect of a co-marketing campaign's results (programme's
`GET /campaigns/{id}`): both play the same story, a 1,500.00 USD budget pre-approved, a
1,000.00 claim on it approved and a 40,000.00 deal won through the campaign's touchpoint;
leads and the partners' reported pipeline differ by test."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.polling import eventually


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

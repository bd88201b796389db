"""A campaign touchpoint on a real attribution process: it names its campaign (and only it
does), weighs in the split like any influence, and the partner's credits on the won deal carry
the campaign id, corrections included, so a campaign's revenue is a sum over credits."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events.crm import CrmSource, DealStatus
from shared.topics import PROGRAMME_CAMPAIGNS
from tests.support.attribution import (
    CONFIG,
    Deal,
    active_credits,
    approved_registration,
    credit_events,
)
from tests.support.factories import campaign_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def attribution(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config_file = Path(tmp_path_factory.mktemp("attribution")) / "attribution.json"
    config_file.write_text(json.dumps(CONFIG))  # linear: every touchpoint weighs the same
    async with service_processes(
        infra, "attribution", env={"ATTRIBUTION_CONFIG_FILE": str(config_file)}
    ) as urls:
        yield urls[0]


async def test_credits_through_a_campaign_touchpoint_carry_the_campaign(
    infra: Infra, attribution: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    partner, ally, campaign = f"cm-{run}", f"cm-ally-{run}", f"camp-{run}"
    deal = Deal(run, CrmSource.SALESFORCE)
    created_at = datetime.now(UTC) - timedelta(days=30)
    registrations = (
        approved_registration(f"reg-{run}", partner, days_ago=20),
        approved_registration(f"reg-ally-{run}", ally, days_ago=25),
    )
    open_deal = deal.snapshot(
        status=DealStatus.OPEN, created_at=created_at, registrations=registrations
    )
    await deal.publish(infra, open_deal)

    async def known() -> bool:
        held = await admin_db.fetchval(
            "SELECT revision FROM attribution.deals WHERE deal_key = $1", deal.key
        )
        return held is not None

    await eventually(known, 30, what="attribution to hold the deal")

    def touchpoint(**fields: Any) -> dict[str, Any]:
        return {
            "deal_key": deal.key,
            "kind": "campaign",
            "campaign_id": campaign,
            "occurred_at": (datetime.now(UTC) - timedelta(days=10)).isoformat(),
            "source": "partner-app",
        } | fields

    # Programme's word on the campaigns: the partner's (running since 20 days ago), one of the
    # ally's only, one that starts tomorrow, and one cancelled 15 days ago.
    today = datetime.now(UTC).date()
    since = {"starts_on": today - timedelta(days=20), "ends_on": today + timedelta(days=10)}
    announced = [
        campaign_changed(campaign_id=campaign, partner_ids=(partner,), **since),
        campaign_changed(campaign_id=f"{campaign}-ally", partner_ids=(ally,), **since),
        campaign_changed(
            campaign_id=f"{campaign}-later",
            partner_ids=(partner,),
            starts_on=today + timedelta(days=1),
            ends_on=today + timedelta(days=5),
        ),
        campaign_changed(
            campaign_id=f"{campaign}-off",
            partner_ids=(partner,),
            state="cancelled",
            cancelled_at=datetime.now(UTC) - timedelta(days=15),
            **since,
        ),
    ]
    for change in announced:
        await publish(
            infra, PROGRAMME_CAMPAIGNS, [change], subject=change.campaign_id, source="programme"
        )

    async def heard() -> bool:
        known = await admin_db.fetchval(
            "SELECT count(*) FROM attribution.campaigns WHERE campaign_id = ANY($1)",
            [c.campaign_id for c in announced],
        )
        return bool(known == len(announced))

    await eventually(heard, 30, what="attribution to hear of the campaigns")

    async with httpx.AsyncClient(base_url=attribution, timeout=30) as client:
        # Only a campaign programme announced, that the partner ran at the time.
        for named, status, says in (
            (f"{campaign}-nobody", 409, f"campaign {campaign}-nobody is not known (yet)"),
            (f"{campaign}-ally", 422, f"campaign {campaign}-ally is not run by partner {partner}"),
            (f"{campaign}-later", 422, f"is outside campaign {campaign}-later's dates"),
            (f"{campaign}-off", 422, f"is after campaign {campaign}-off was cancelled"),
        ):
            refused = await client.post(
                "/touchpoints", headers=auth(partner), json=touchpoint(campaign_id=named)
            )
            assert refused.status_code == status, refused.text
            assert says in refused.json()["detail"]
        unnamed = await client.post(
            "/touchpoints", headers=auth(partner), json=touchpoint(campaign_id=None)
        )
        assert unnamed.status_code == 422
        assert unnamed.json()["detail"] == "a campaign touchpoint must name campaign_id"
        misnamed = await client.post(
            "/touchpoints", headers=auth(partner), json=touchpoint(kind="referral")
        )
        assert misnamed.status_code == 422
        assert misnamed.json()["detail"] == (
            "only a campaign touchpoint names campaign_id, not referral"
        )
        reported = await client.post("/touchpoints", headers=auth(partner), json=touchpoint())
        assert reported.status_code == 201, reported.text
        assert reported.json()["counted"] is True  # linked through its approved registration

        # Won now, after the report (the helper's snapshots carry its start as their
        # ingestion: a win then would be before the report, which would wait for a manager).
        won = deal.closed("9000", "", registrations=registrations, ingested_at=datetime.now(UTC))
        await deal.publish(infra, won)
        credits = await eventually(lambda: active_credits(admin_db, deal.key))
        events = await credit_events(infra, deal, 2)
        issued = {e.data.partner_id: e.data for e in events}
        # linear over three touchpoints: the partner's registration and campaign, the ally's
        assert {p: (c.amount, c.campaign_id) for p, c in issued.items()} == {
            partner: (Decimal("6000.00"), campaign),
            ally: (Decimal("3000.00"), None),
        }
        assert sum(c["amount"] for c in credits) == Decimal("9000.00")

        # A correction re-issues the partner's credit through the same campaign.
        await deal.publish(infra, deal.closed("12000", "", registrations=registrations))
        events = await credit_events(infra, deal, 6)
        reissued = [e.data for e in events[2:] if e.type == "credit.issued.v1"]
        assert {(c.partner_id, c.amount, c.campaign_id) for c in reissued} == {
            (partner, Decimal("8000.00"), campaign),
            (ally, Decimal("4000.00"), None),
        }
        view = (await client.get(f"/deals/{deal.key}/attribution", headers=ADMIN)).json()
        assert "campaign" in {t["kind"] for t in view["touchpoints"]}

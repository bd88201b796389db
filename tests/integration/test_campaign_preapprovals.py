"""A campaign's MDF pre-approval across real programme, incentives and notifications processes
and real Kafka: programme announces the campaign it records (programme.campaigns.v1), incentives
accepts a pre-approval only for a campaign it has heard of, of the asking partner, neither
cancelled nor over, and the partner finds each decision in its inbox at the notifications
service (notification.partner.v5)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topics import PROGRAMME_CAMPAIGNS
from tests.support.campaigns import ask_once_known
from tests.support.factories import credit_issued
from tests.support.incentives import partner_at_tier, publish_credits
from tests.support.infra import Infra
from tests.support.kafka import wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth

pytestmark = pytest.mark.integration


programme = service_fixture("programme")
incentives = service_fixture("incentives")
notifications = service_fixture("notifications")


async def funded(
    infra: Infra, admin_db: asyncpg.Connection[Any], client: httpx.AsyncClient, url: str, run: str
) -> str:
    """A gold partner, as onboarding announces it, whose MDF fund holds 2,000.00 USD."""
    partner = f"p-cpa-{run}"
    await partner_at_tier(infra, admin_db, partner, "gold")
    await publish_credits(
        infra, credit_issued(partner_id=partner, deal_key=f"d-cpa-{run}", amount="100000.00")
    )

    async def filled() -> bool:
        fund = (await client.get(f"{url}/partners/{partner}/mdf", headers=auth(partner))).json()
        return bool(fund.get("available") == "2000.00")

    await eventually(filled, 60, what="incentives to accrue the partner's MDF")
    return partner


def budget(campaign: str, reference: str, amount: str, days: int = 10) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "reference": reference,
        "campaign_id": campaign,
        "activity_kind": "webinar",
        "description": "webinar platform and promotion",
        "starts_on": str(today),
        "ends_on": str(today + timedelta(days=days)),
        "amount": amount,
        "currency": "USD",
    }


async def test_a_campaign_recorded_in_programme_gets_its_mdf_and_the_partner_hears_of_it(
    infra: Infra,
    programme: str,
    incentives: str,
    notifications: str,
    admin_db: asyncpg.Connection[Any],
) -> None:
    run, since = uuid.uuid4().hex[:8], datetime.now(UTC)
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(timeout=30) as client:
        partner = await funded(infra, admin_db, client, incentives, run)
        other = await funded(infra, admin_db, client, incentives, f"o-{run}")
        campaign_body = {
            "name": "Lakehouse in a day",
            "kind": "webinar",
            "starts_on": str(today),
            "ends_on": str(today + timedelta(days=10)),
        }

        async def created(body: dict[str, Any] = campaign_body) -> Any:
            answer = await client.post(f"{programme}/campaigns", json=body, headers=auth(partner))
            return answer.json() if answer.status_code == 201 else None

        campaign = (await eventually(created, 60, what="programme to know the partner"))[
            "campaign_id"
        ]

        # incentives accepts the pre-approval once it has heard of the campaign (409 until
        # then: the event may be a moment behind the campaign's creation)
        ask = f"{incentives}/mdf/preapprovals"
        first = await ask_once_known(
            client, incentives, budget(campaign, f"a-{run}", "1500.00"), auth(partner)
        )
        assert (first["campaign_id"], first["status"]) == (campaign, "requested")
        # a partner that does not run it cannot ask for its budget
        theirs = await client.post(
            ask, json=budget(campaign, f"x-{run}", "10.00"), headers=auth(other)
        )
        assert (theirs.status_code, theirs.json()["detail"]) == (
            422,
            f"campaign {campaign} is not run by partner {other}",
        )

        # decided by a channel manager: approved (reserved), and a second one rejected
        pa = first["preapproval_id"]
        approved = await client.post(
            f"{ask}/{pa}/decision", json={"approve": True, "note": "fits the plan"}, headers=ADMIN
        )
        assert approved.status_code == 200, approved.text
        second = await client.post(
            ask, json=budget(campaign, f"b-{run}", "900.00"), headers=auth(partner)
        )
        assert second.status_code == 201, second.text
        rejected = await client.post(
            f"{ask}/{second.json()['preapproval_id']}/decision",
            json={"approve": False, "note": "one webinar is funded already"},
            headers=ADMIN,
        )
        assert rejected.status_code == 200, rejected.text

        # the partner reads both decisions in its inbox at the notifications service
        inbox = f"{notifications}/partners/{partner}/notifications"

        async def told() -> list[dict[str, Any]] | None:
            page = (await client.get(inbox, headers=auth(partner))).json()
            found = [m for m in page["items"] if m["kind"].startswith("mdf_preapproval_")]
            return found if len(found) == 2 else None

        messages = await eventually(told, 60, what="the decisions to reach the partner's inbox")
        assert [(m["kind"], m["subject"]) for m in messages] == [
            (
                "mdf_preapproval_approved",
                f"MDF approved for campaign {campaign}: 1500.00 USD reserved",
            ),
            ("mdf_preapproval_rejected", f"MDF not approved for campaign {campaign}"),
        ]
        assert messages[1]["body"].endswith("is rejected: one webinar is funded already")
        assert all(m["partner_id"] == partner for m in messages)
        others = (
            await client.get(f"{notifications}/partners/{other}/notifications", headers=auth(other))
        ).json()
        assert not [m for m in others["items"] if m["kind"].startswith("mdf_preapproval_")]

        # cancelled in programme: incentives refuses new budgets for it once it hears so
        cancelled = await client.post(
            f"{programme}/campaigns/{campaign}/cancel",
            json={"reason": "speaker unavailable"},
            headers=ADMIN,
        )
        assert cancelled.status_code == 200, cancelled.text

        async def heard_cancelled() -> bool:
            return bool(
                await admin_db.fetchval(
                    "SELECT cancelled_at IS NOT NULL FROM incentives.campaigns"
                    " WHERE campaign_id = $1",
                    campaign,
                )
            )

        await eventually(heard_cancelled, 60, what="incentives to hear of the cancellation")
        late = await client.post(
            ask, json=budget(campaign, f"c-{run}", "10.00"), headers=auth(partner)
        )
        assert (late.status_code, late.json()["detail"]) == (
            409,
            f"campaign {campaign} is cancelled",
        )

        # a campaign a channel manager records after it ended gets no budget either (a
        # partner's own ends today at the earliest)
        ended = {
            **campaign_body,
            "starts_on": str(today - timedelta(days=9)),
            "ends_on": str(today - timedelta(days=2)),
        }
        assert (await created(ended)) is None
        recorded = await client.post(
            f"{programme}/campaigns", json={**ended, "partner_ids": [partner]}, headers=ADMIN
        )
        assert recorded.status_code == 201, recorded.text
        over = recorded.json()
        assert over["state"] == "completed"

        async def heard_of(campaign_id: str) -> bool:
            return bool(
                await admin_db.fetchval(
                    "SELECT count(*) FROM incentives.campaigns WHERE campaign_id = $1",
                    campaign_id,
                )
            )

        await eventually(lambda: heard_of(over["campaign_id"]), 60, what="the ended campaign")
        ended = await client.post(
            ask, json=budget(over["campaign_id"], f"d-{run}", "10.00"), headers=auth(partner)
        )
        assert (ended.status_code, ended.json()["detail"]) == (
            409,
            f"campaign {over['campaign_id']} ended on {today - timedelta(days=2)}",
        )

    # what programme announced: the campaign created, then cancelled
    def both(found: list[dict[str, Any]]) -> bool:
        return len(found) >= 2

    events = await wait_for_keyed(
        infra.kafka, PROGRAMME_CAMPAIGNS.name, campaign, both, since=since
    )
    assert [
        (e["type"], e["data"]["state"], e["data"]["partner_ids"], e["data"]["cancelled_at"] is None)
        for e in events
    ] == [
        ("programme.campaign_changed.v1", "running", [partner], True),
        ("programme.campaign_changed.v1", "cancelled", [partner], False),
    ]


async def test_a_budget_lies_within_its_campaign_and_its_deadline_follows_programmes_end(
    infra: Infra, programme: str, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    """The probe's two years of a ten-day campaign is a 422; an approved budget takes claims
    until the campaign's end + the window (60 days), as programme moves that end."""
    run = uuid.uuid4().hex[:8]
    first = datetime.now(UTC).date() + timedelta(days=1)
    last = first + timedelta(days=9)
    async with httpx.AsyncClient(timeout=30) as client:
        partner = await funded(infra, admin_db, client, incentives, f"dl-{run}")
        campaign_body = {"name": "Ten days", "kind": "webinar", "starts_on": str(first)}

        async def created() -> Any:
            answer = await client.post(
                f"{programme}/campaigns",
                json={**campaign_body, "ends_on": str(last)},
                headers=auth(partner),
            )
            return answer.json() if answer.status_code == 201 else None

        campaign = (await eventually(created, 60, what="programme to know the partner"))[
            "campaign_id"
        ]
        inside = {**budget(campaign, f"in-{run}", "100.00"), "starts_on": str(first)}
        inside["ends_on"] = str(first + timedelta(days=2))
        pa = (await ask_once_known(client, incentives, inside, auth(partner)))["preapproval_id"]
        far = {
            **budget(campaign, f"far-{run}", "10.00"),
            "starts_on": str(first - timedelta(days=201)),
            "ends_on": str(first + timedelta(days=699)),
        }
        refused = await client.post(
            f"{incentives}/mdf/preapprovals", json=far, headers=auth(partner)
        )
        assert (refused.status_code, refused.json()["detail"]) == (
            422,
            f"the activity's dates {far['starts_on']}..{far['ends_on']} lie outside campaign "
            f"{campaign}'s dates {first}..{last}: a pre-approval is for spending within its "
            "campaign",
        )
        decided = await client.post(
            f"{incentives}/mdf/preapprovals/{pa}/decision", json={"approve": True}, headers=ADMIN
        )
        assert decided.json()["expires_at"] == stamp(last), decided.text

        # With MDF asked for it, the partner moves the end only earlier: later, its budget's
        # deadline (and reservation) followed, a century out in review. A manager moves it.
        longer = await client.patch(
            f"{programme}/campaigns/{campaign}",
            json={"ends_on": str(last + timedelta(days=20))},
            headers=auth(partner),
        )
        assert longer.status_code == 409, longer.text
        assert "a channel manager moves the end later" in longer.json()["detail"]
        for ends_on, by in (
            (last + timedelta(days=20), ADMIN),
            (first + timedelta(days=3), auth(partner)),
        ):
            edited = await client.patch(
                f"{programme}/campaigns/{campaign}", json={"ends_on": str(ends_on)}, headers=by
            )
            assert edited.status_code == 200, edited.text

            async def moved(ends_on: date = ends_on) -> bool:
                read = await client.get(
                    f"{incentives}/mdf/preapprovals/{pa}", headers=auth(partner)
                )
                return bool(read.json()["expires_at"] == stamp(ends_on))

            await eventually(moved, 60, what=f"the deadline to follow the end to {ends_on}")


def stamp(campaign_ends_on: date) -> str:
    """The claim deadline as the API writes it: the campaign's last day + 60 days, at its end."""
    return datetime.combine(campaign_ends_on + timedelta(days=61), time(), UTC).isoformat()

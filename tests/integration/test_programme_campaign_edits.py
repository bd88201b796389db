"""Changing a co-marketing campaign on a real programme process: a channel manager moves its
dates and partners within the rules (a partner only its own solo campaign's name and dates),
every refusal a precise 4xx, and each change announced on programme.campaigns.v1 in the same
transaction (an edit that changes nothing announces nothing)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import INCENTIVE_LEDGER, PARTNER_LIFECYCLE, PROGRAMME_CAMPAIGNS
from tests.support import factories
from tests.support.campaigns import known_partners, preapproval
from tests.support.infra import Infra, waits_for
from tests.support.kafka import publish, wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth

pytestmark = pytest.mark.integration


programme = service_fixture("programme")


async def announced(admin_db: asyncpg.Connection, campaign: str) -> int:
    """How many announcements of the campaign programme's outbox holds."""
    count: int = await admin_db.fetchval(
        "SELECT count(*) FROM programme.outbox WHERE topic = $1 AND message_key = $2",
        PROGRAMME_CAMPAIGNS.name,
        campaign,
    )
    return count


async def test_a_manager_changes_a_campaign_before_it_ends_and_the_change_is_announced(
    infra: Infra, programme: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    partner, ally, newcomer = f"p-ed-{run}", f"p-ed-ally-{run}", f"p-ed-new-{run}"
    today = datetime.now(UTC).date()

    def day(offset: int) -> str:
        return str(today + timedelta(days=offset))

    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        await known_partners(infra, client, programme, partner, ally, newcomer)
        body = {"name": "Joint roadshow", "kind": "event", "starts_on": day(5), "ends_on": day(20)}
        created = await client.post(
            "/campaigns", json={**body, "partner_ids": [partner, ally]}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        campaign = created.json()["campaign_id"]
        path = f"/campaigns/{campaign}"
        since = datetime.now(UTC) - timedelta(seconds=5)

        # Planned: a manager moves both dates, and the ally leaves as a newcomer joins.
        moved = await client.patch(
            path,
            json={"starts_on": day(7), "ends_on": day(30), "partner_ids": [partner, newcomer]},
            headers=ADMIN,
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["starts_on"], moved.json()["ends_on"]) == (day(7), day(30))
        assert moved.json()["partner_ids"] == sorted([partner, newcomer])
        assert moved.json()["state"] == "planned"

        def has_move(events: list[dict[str, Any]]) -> bool:
            return any(e["data"]["ends_on"] == day(30) for e in events)

        events = await wait_for_keyed(
            infra.kafka, PROGRAMME_CAMPAIGNS.name, campaign, has_move, since=since
        )
        change = next(e["data"] for e in events if e["data"]["ends_on"] == day(30))
        assert (change["starts_on"], change["partner_ids"]) == (day(7), sorted([partner, newcomer]))

        # The same values again: nothing changes, nothing more is announced.
        before = await announced(admin_db, campaign)
        same = await client.patch(path, json={"ends_on": day(30)}, headers=ADMIN)
        assert same.status_code == 200, same.text
        assert await announced(admin_db, campaign) == before

        refused: dict[str, tuple[dict[str, str], dict[str, Any], int, str]] = {
            "nothing": (ADMIN, {}, 422, "nothing to change"),
            "only nulls": (ADMIN, {"name": None}, 422, "nothing to change"),
            "kind": (ADMIN, {"kind": "webinar"}, 422, "Extra inputs are not permitted"),
            "inverted": (ADMIN, {"ends_on": day(6)}, 422, f"ends_on {day(6)} is before"),
            "past start": (ADMIN, {"starts_on": day(-1)}, 409, f"starts_on {day(-1)} is in the"),
            "unknown joins": (
                ADMIN,
                {"partner_ids": [partner, f"p-none-{run}"]},
                404,
                f"partner p-none-{run} not found",
            ),
            "joint, by a partner": (
                auth(partner),
                {"name": "Mine now"},
                403,
                "a partner changes only a campaign it runs alone",
            ),
            "an outsider": (auth(ally), {"name": "x"}, 404, f"campaign {campaign} not found"),
        }
        for name, (headers, sent, status, says) in refused.items():
            answer = await client.patch(path, json=sent, headers=headers)
            assert answer.status_code == status, (name, answer.text)
            assert says in answer.text, (name, answer.text)

        # A partner still onboarding joins no campaign already announced.
        onboarding = f"p-ed-onb-{run}"
        state = factories.partner_state_changed(
            partner_id=onboarding, status=PartnerStatus.ONBOARDING, change=PartnerChange.ONBOARDING
        )
        await publish(infra, PARTNER_LIFECYCLE, [state], subject=onboarding, source="onboarding")

        async def joining_refused() -> Any:
            answer = await client.patch(
                path, json={"partner_ids": [partner, newcomer, onboarding]}, headers=ADMIN
            )
            return answer if answer.status_code != 404 else None  # not heard of yet

        joining = await eventually(joining_refused, 30, what="programme to hear of the partner")
        assert joining.status_code == 409, joining.text
        assert joining.json()["detail"] == (
            f"partner {onboarding} is onboarding: only an active partner joins a campaign"
        )

        # A partner that asked for MDF for it cannot leave it.
        asked = preapproval(newcomer, campaign, f"pa-{run}", "requested", "0.00", "0.00", 0)
        await publish(infra, INCENTIVE_LEDGER, [asked], subject=newcomer, source="incentives")

        async def heard() -> bool:
            shown = (await client.get(path, headers=ADMIN)).json()
            return bool(shown["preapprovals"])

        await eventually(heard, 30, what="programme to hear of the pre-approval")
        leaving = await client.patch(path, json={"partner_ids": [partner]}, headers=ADMIN)
        assert leaving.status_code == 409, leaving.text
        assert f"{newcomer} asked for MDF for campaign {campaign}" in leaving.json()["detail"]

        # Cancelled: no change any more.
        cancelled = await client.post(f"{path}/cancel", json={"reason": "venue"}, headers=ADMIN)
        assert cancelled.status_code == 200, cancelled.text
        late = await client.patch(path, json={"ends_on": day(40)}, headers=ADMIN)
        assert late.status_code == 409
        assert late.json()["detail"] == f"campaign {campaign} is cancelled: it cannot be changed"


async def test_a_partner_changes_its_own_running_campaign_but_not_its_start(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:8]
    partner = f"p-solo-{run}"
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        await known_partners(infra, client, programme, partner)
        created = await client.post(
            "/campaigns",
            json={
                "name": "Webinar",
                "kind": "webinar",
                "starts_on": str(today),
                "ends_on": str(today + timedelta(days=3)),
            },
            headers=auth(partner),
        )
        assert created.status_code == 201, created.text
        path = f"/campaigns/{created.json()['campaign_id']}"
        renamed = await client.patch(
            path,
            json={"name": "Webinar, part one", "ends_on": str(today + timedelta(days=10))},
            headers=auth(partner),
        )
        assert renamed.status_code == 200, renamed.text
        assert (renamed.json()["name"], renamed.json()["ends_on"]) == (
            "Webinar, part one",
            str(today + timedelta(days=10)),
        )
        for sent, status, says in (
            ({"partner_ids": [partner]}, 403, "a partner cannot change a campaign's partners"),
            (
                {"starts_on": str(today + timedelta(days=1))},
                409,
                f"started on {today}: its first day cannot move",
            ),
            (
                {"ends_on": str(today - timedelta(days=1))},
                422,
                "is before starts_on",
            ),
        ):
            answer = await client.patch(path, json=sent, headers=auth(partner))
            assert answer.status_code == status, answer.text
            assert says in answer.json()["detail"], answer.text
        assert date.fromisoformat(renamed.json()["starts_on"]) == today


async def test_a_partner_added_to_another_partners_campaign_is_not_told_who_created_it(
    infra: Infra, programme: str
) -> None:
    """Found in review: the partners were cut to the caller, but `created_by` named the other
    partner's person (`<partner>/<person>`)."""
    run = uuid.uuid4().hex[:8]
    creator, joined = f"p-creator-{run}", f"p-joined-{run}"
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        await known_partners(infra, client, programme, creator, joined)
        body = {
            "name": "Joint",
            "kind": "webinar",
            "starts_on": str(today + timedelta(days=2)),
            "ends_on": str(today + timedelta(days=9)),
        }
        created = await client.post("/campaigns", json=body, headers=auth(creator))
        assert created.status_code == 201, created.text
        path = f"/campaigns/{created.json()['campaign_id']}"
        both = {"partner_ids": [creator, joined]}
        assert (await client.patch(path, json=both, headers=ADMIN)).status_code == 200
        shown = {
            "creator": (await client.get(path, headers=auth(creator))).json()["created_by"],
            "joined": (await client.get(path, headers=auth(joined))).json()["created_by"],
            "manager": (await client.get(path, headers=ADMIN)).json()["created_by"],
        }
        listed = await client.get("/campaigns", headers=auth(joined))
    assert shown == {
        "creator": f"{creator}/tests",
        "joined": "someone outside your partner",
        "manager": f"{creator}/tests",
    }
    [mine] = [c for c in listed.json() if c["campaign_id"] == path.rsplit("/", 1)[1]]
    assert mine["created_by"] == "someone outside your partner"
    assert creator not in listed.text


async def test_only_active_partners_run_a_new_campaign_as_only_they_join_one(
    infra: Infra, programme: str, admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: an edit refused a partner still onboarding, a new campaign took it."""
    run = uuid.uuid4().hex[:8]
    onboarding = f"p-onb-{run}"
    state = factories.partner_state_changed(
        partner_id=onboarding, status=PartnerStatus.ONBOARDING, change=PartnerChange.QUALIFIED
    )
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=onboarding, source="onboarding")

    async def heard() -> bool:
        known = await admin_db.fetchval(
            "SELECT count(*) FROM programme.partner_versions WHERE partner_id = $1", onboarding
        )
        return bool(known)

    await eventually(heard)
    today = datetime.now(UTC).date()
    body = {
        "name": "Too early",
        "kind": "webinar",
        "starts_on": str(today + timedelta(days=3)),
        "ends_on": str(today + timedelta(days=9)),
        "partner_ids": [onboarding],
    }
    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        refused = await client.post("/campaigns", json=body, headers=ADMIN)
    assert refused.status_code == 409, refused.text
    assert "only an active partner runs a campaign" in refused.text


async def test_an_edit_waiting_for_another_keeps_what_that_one_wrote(
    infra: Infra, programme: str
) -> None:
    """Two edits of one campaign at once: the second waits for the first's lock and then
    works from what the first wrote (a renaming never drops a partner that just joined)."""
    run = uuid.uuid4().hex[:8]
    partner, ally, joined = f"p-race-{run}", f"p-race-ally-{run}", f"p-race-new-{run}"
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=programme, timeout=30) as client:
        await known_partners(infra, client, programme, partner, ally)
        created = await client.post(
            "/campaigns",
            json={
                "name": "Race",
                "kind": "content",
                "starts_on": str(today + timedelta(days=3)),
                "ends_on": str(today + timedelta(days=9)),
                "partner_ids": [partner, ally],
            },
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        campaign = created.json()["campaign_id"]
        # The first edit, played in SQL: it holds the campaign's row while a partner joins.
        first = await asyncpg.connect(infra.admin_dsn)
        try:
            writing = first.transaction()
            await writing.start()
            await first.execute(
                "SELECT 1 FROM programme.campaigns WHERE campaign_id = $1 FOR UPDATE", campaign
            )
            holder = await first.fetchval("SELECT pg_backend_pid()")
            renaming = asyncio.create_task(
                client.patch(f"/campaigns/{campaign}", json={"name": "Renamed"}, headers=ADMIN)
            )

            await eventually(
                lambda: waits_for(first, holder), what="the renaming to wait for the first edit"
            )
            await first.execute(
                "INSERT INTO programme.campaign_partners (campaign_id, partner_id) VALUES ($1, $2)",
                campaign,
                joined,
            )
            await writing.commit()
        finally:
            await first.close()
        renamed = await renaming
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "Renamed"
        assert renamed.json()["partner_ids"] == sorted([partner, ally, joined])


async def test_a_partners_campaigns_page_by_cursor_in_one_total_order(
    infra: Infra, programme: str
) -> None:
    """Found in review: pages were offsets, so a campaign planned or re-dated between two
    pages moved the others past the next one. A page now follows the campaign `after` names,
    latest-starting first, ties by id; a cursor naming a campaign not in the list is a 422."""
    run = uuid.uuid4().hex[:8]
    mine, theirs = f"p-pages-{run}", f"p-other-{run}"
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        await known_partners(infra, client, programme, mine, theirs)

        async def plan(partner: str, starts_in: int) -> str:
            body = {
                "name": f"Campaign {starts_in}",
                "kind": "webinar",
                "starts_on": str(today + timedelta(days=starts_in)),
                "ends_on": str(today + timedelta(days=starts_in + 5)),
            }
            created = await client.post("/campaigns", json=body, headers=auth(partner))
            assert created.status_code == 201, created.text
            return str(created.json()["campaign_id"])

        ids = [await plan(mine, days) for days in (3, 9, 9)]
        other = await plan(theirs, 9)
        ordered = [*sorted(ids[1:]), ids[0]]  # the latest-starting first, a tie by id
        walked, after = [], None
        for _ in range(len(ordered) + 1):  # bounded: a cursor that does not move ends too
            params = {"limit": 1, **({"after": after} if after else {})}
            page = (await client.get("/campaigns", params=params, headers=auth(mine))).json()
            if not page:
                break
            walked += [c["campaign_id"] for c in page]
            after = page[-1]["campaign_id"]
        assert walked == ordered
        stray = await client.get("/campaigns", params={"after": other}, headers=auth(mine))
        assert stray.status_code == 422, stray.text
        assert "names no campaign in this list" in stray.text

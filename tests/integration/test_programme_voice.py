"""Partner voice on real programme and notifications processes: a survey reaches each partner
of its audience as a `survey` message in the partner's inbox (through the notifications
service), is answered once per survey and person, each answer is announced on
programme.voice.v1 for health signals, and NPS per tier and quarter comes out of the KPI API.
The advisory council keeps its members, meetings and decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.events.partners import PartnerChange, PartnerStatus
from shared.identity import Role
from shared.topics import PARTNER_LIFECYCLE, PROGRAMME_VOICE
from tests.support import factories as f
from tests.support.infra import Infra
from tests.support.kafka import publish, wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth, bearer, token

pytestmark = pytest.mark.integration


programme = service_fixture("programme")
notifications = service_fixture("notifications")


def person(partner_id: str, name: str) -> dict[str, str]:
    return bearer(token(f"{name}@{partner_id}", Role.PARTNER_USER, partner_id=partner_id))


# The partners each test hears of: two active, one suspended (none of them to be asked).
STATUS_BY_TIER = {"gold": "active", "silver": "active", "bronze": "suspended"}


async def partners_heard(
    infra: Infra, client: httpx.AsyncClient, url: str, run: str
) -> dict[str, str]:
    """A partner of each tier of STATUS_BY_TIER, in that status (a tier made up for this run,
    so no other test's partner is in the audience), as onboarding tells them; their ids by
    tier."""
    ids = {}
    for tier, status in STATUS_BY_TIER.items():
        partner_id = f"p-voice-{tier}-{run}"
        change = PartnerChange.SUSPENDED if status == "suspended" else PartnerChange.ACTIVATED
        state = f.partner_state_changed(
            partner_id=partner_id,
            tier=f"{tier}-{run}",
            status=PartnerStatus(status),
            change=change,
            changed_at=datetime.now(UTC) - timedelta(days=30),
        )
        await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")
        ids[tier] = partner_id

    async def heard() -> bool:
        answer = await client.get(
            f"{url}/kpis", params={"partner_id": list(ids.values())}, headers=ADMIN
        )
        counts = answer.json()["partners"]
        return bool(counts["active"] == 2 and counts["suspended"] == 1)

    await eventually(heard, 30, what="programme to hear of the partners")
    return ids


async def test_a_survey_reaches_partners_is_answered_once_per_person_and_gives_nps(
    infra: Infra, programme: str, notifications: str
) -> None:
    run = uuid.uuid4().hex[:6]
    started = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=10) as client:
        ids = await partners_heard(infra, client, programme, run)
        gold, silver, bronze = ids["gold"], ids["silver"], ids["bronze"]
        tiers = [f"gold-{run}", f"silver-{run}", f"bronze-{run}"]
        sent = await client.post(
            f"{programme}/surveys",
            headers=ADMIN,
            json={"tiers": tiers, "closes_at": (started + timedelta(days=14)).isoformat()},
        )
        assert sent.status_code == 201, sent.text
        survey_id = sent.json()["survey_id"]
        assert sent.json()["recipients"] == 2  # the suspended partner is not asked

        # each active partner finds it in its inbox at the notifications service
        for partner in (gold, silver):

            async def filed(partner: str = partner) -> list[dict[str, Any]]:
                page = await client.get(
                    f"{notifications}/partners/{partner}/notifications", headers=auth(partner)
                )
                return [m for m in page.json()["items"] if m["kind"] == "survey"]

            (message,) = await eventually(filed, 30, what=f"{partner}'s survey message")
            assert survey_id in message["body"]

        # answers: two people of gold, one of silver; a second answer by one person is refused
        url = f"{programme}/surveys/{survey_id}/answers"
        for who, score in ((person(gold, "ann"), 10), (person(gold, "bob"), 6), (auth(silver), 8)):
            answered = await client.post(url, headers=who, json={"score": score, "comment": "ok"})
            assert answered.status_code == 201, answered.text
            assert answered.json()["answered"] is True
        again = await client.post(url, headers=person(gold, "ann"), json={"score": 0})
        assert again.status_code == 409
        assert "already answered" in again.text
        # a manager reads them in the order they came, a page at a time
        first = (await client.get(url, headers=ADMIN, params={"limit": 2})).json()
        rest = await client.get(url, headers=ADMIN, params={"after": first["next_after"]})
        assert [a["score"] for a in first["items"]] == [10, 6]
        assert first["next_after"] == first["items"][-1]["answer_id"]
        assert ([a["score"] for a in rest.json()["items"]], rest.json()["next_after"]) == (
            [8],
            None,
        )
        stray = await client.get(url, headers=ADMIN, params={"after": str(uuid.uuid4())})
        assert (stray.status_code, "after names no answer" in stray.text) == (422, True)
        # a partner not asked cannot see or answer it; a manager does not answer
        stranger = await client.post(url, headers=auth(bronze), json={"score": 5})
        assert stranger.status_code in (403, 404)  # suspended: refused before anything else
        other = await client.post(url, headers=auth(f"p-nobody-{run}"), json={"score": 5})
        assert other.status_code == 404
        assert (await client.post(url, headers=ADMIN, json={"score": 5})).status_code == 403
        for bad, why in (({"score": 11}, "score"), ({"score": 5, "extra": 1}, "extra")):
            refused = await client.post(url, headers=person(gold, "cy"), json=bad)
            assert refused.status_code == 422, refused.text
            assert why in refused.text

        # every answer announced for health signals: score and category, no comment or person
        for partner, expected in ((gold, [10, 6]), (silver, [8])):
            wanted = len(expected)
            events = await wait_for_keyed(
                infra.kafka,
                PROGRAMME_VOICE.name,
                partner,
                lambda found, wanted=wanted: len(found) >= wanted,
                since=started,
            )
            assert sorted(e["data"]["score"] for e in events) == sorted(expected)
            assert all("comment" not in e["data"] and "respondent" not in e["data"] for e in events)
            assert {e["data"]["category"] for e in events} <= {"promoter", "passive", "detractor"}

        report = (
            await client.get(
                f"{programme}/kpis", params={"partner_id": [gold, silver]}, headers=ADMIN
            )
        ).json()
        quarter = f"{started.year}-Q{(started.month - 1) // 3 + 1}"
        assert report["nps"]["overall"] == {
            "responses": 3,
            "promoters": 1,
            "passives": 1,
            "detractors": 1,
            "nps": "0.0",
        }
        assert [
            (r["quarter"], r["tier"], r["responses"], r["nps"])
            for r in report["nps"]["by_quarter_and_tier"]
        ] == [
            (quarter, f"gold-{run}", 2, "0.0"),
            (quarter, f"silver-{run}", 1, "0.0"),
        ]
        # the channel team reads the comments; a partner sees only whether it answered
        comments = (await client.get(url, headers=ADMIN)).json()["items"]
        assert sorted((c["partner_id"], c["score"], c["category"]) for c in comments) == [
            (gold, 6, "detractor"),
            (gold, 10, "promoter"),
            (silver, 8, "passive"),
        ]
        assert (await client.get(url, headers=auth(gold))).status_code == 403
        seen = (
            await client.get(f"{programme}/surveys/{survey_id}", headers=person(gold, "dan"))
        ).json()
        assert (seen["answered"], seen["results"], seen["recipients"]) == (False, None, None)
        managed = (await client.get(f"{programme}/surveys/{survey_id}", headers=ADMIN)).json()
        assert (managed["recipients"], managed["results"]["responses"]) == (2, 3)

        # By region: the partner's regions when it answered, as every other figure reads them.
        # Gold had left DE a day before its people answered; silver (US and DE) had not. Found
        # in review: a region a partner ever had counted all its answers.
        moved = f.partner_state_changed(
            partner_id=gold,
            version=2,
            tier=f"gold-{run}",
            regions=("US",),
            change=PartnerChange.UPDATED,
            changed_at=datetime.now(UTC) - timedelta(days=1),
        )
        await publish(infra, PARTNER_LIFECYCLE, [moved], subject=gold, source="onboarding")

        async def in_germany() -> dict[str, Any] | None:
            answer = await client.get(
                f"{programme}/kpis",
                params={"partner_id": [gold, silver], "region": "DE"},
                headers=ADMIN,
            )
            overall: dict[str, Any] = answer.json()["nps"]["overall"]
            return overall if overall["responses"] == 1 else None

        assert (await eventually(in_germany))["passives"] == 1  # silver's 8


async def test_a_closed_survey_and_an_empty_audience_are_refused(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=10) as client:
        past = await client.post(
            f"{programme}/surveys",
            headers=ADMIN,
            json={"closes_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        )
        assert past.status_code == 422
        assert "closes_at must be in the future" in past.text
        nobody = await client.post(
            f"{programme}/surveys",
            headers=ADMIN,
            json={"tiers": [f"none-{run}"], "closes_at": "2099-01-01T00:00:00Z"},
        )
        assert nobody.status_code == 422
        assert "no active partner" in nobody.text
        assert (
            await client.post(f"{programme}/surveys", headers=auth("p-x"), json={})
        ).status_code == 403


async def test_the_advisory_council_keeps_members_meetings_and_decisions(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=10) as client:
        ids = await partners_heard(infra, client, programme, run)
        seat = await client.put(
            f"{programme}/council/members/{ids['gold']}",
            headers=ADMIN,
            json={"representative": "Ada Lovelace", "role": "chair", "joined_on": "2026-01-01"},
        )
        assert seat.status_code == 200, seat.text
        unknown = await client.put(
            f"{programme}/council/members/p-nobody-{run}",
            headers=ADMIN,
            json={"representative": "X", "role": "member", "joined_on": "2026-01-01"},
        )
        assert unknown.status_code == 404
        meeting = {
            "held_on": "2026-03-10",
            "attendees": [ids["gold"], ids["silver"]],
            "agenda": "MDF rules for 2026",
            "decisions": [
                {"decision": "raise the MDF cap", "owner": "Channel team", "due_on": "2026-06-30"}
            ],
        }
        refused = await client.post(f"{programme}/council/meetings", headers=ADMIN, json=meeting)
        assert refused.status_code == 422
        assert f"not council members on 2026-03-10: {ids['silver']}" in refused.text
        held = await client.post(
            f"{programme}/council/meetings",
            headers=ADMIN,
            json=meeting | {"attendees": [ids["gold"]]},
        )
        assert held.status_code == 201, held.text
        council = (await client.get(f"{programme}/council", headers=ADMIN)).json()
        mine = [m for m in council["members"] if m["partner_id"] == ids["gold"]]
        assert mine == [
            {
                "partner_id": ids["gold"],
                "representative": "Ada Lovelace",
                "role": "chair",
                "joined_on": "2026-01-01",
                "left_on": None,
            }
        ]
        (recorded,) = [
            m for m in council["meetings"] if m["meeting_id"] == held.json()["meeting_id"]
        ]
        assert recorded["decisions"] == [
            {"decision": "raise the MDF cap", "owner": "Channel team", "due_on": "2026-06-30"}
        ]
        assert (
            await client.get(f"{programme}/council", headers=auth(ids["gold"]))
        ).status_code == 403

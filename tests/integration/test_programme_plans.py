"""Joint business plans and quarterly business reviews on a real programme process, the
actuals fed by the other services' events on the real topics (played here as each producer
sends them): who proposes, who answers, the states, and a review that shows each goal against
the actual from attribution, onboarding, incentives and programme's own campaigns."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.events.attribution import CreditKind
from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import ATTRIBUTION_CREDITS, INCENTIVE_LEDGER, PARTNER_LIFECYCLE
from tests.support import factories as f
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth, partner_admin

pytestmark = pytest.mark.integration

YEAR = 2026
PLAN = {
    "currency": "USD",
    "goals": {
        "sourced_revenue": "200000.00",
        "certifications": 4,
        "new_logos": 3,
        "co_marketing_campaigns": 2,
    },
    "note": "FY26: grow the data practice",
}


programme = service_fixture("programme")


async def known_partner(infra: Infra, client: httpx.AsyncClient, url: str, **fields: Any) -> str:
    partner_id = f"p-plan-{uuid.uuid4().hex[:8]}"
    state = f.partner_state_changed(
        partner_id=partner_id,
        changed_at=datetime(YEAR, 1, 10, tzinfo=UTC),
        competencies=("data", "ai"),
        **fields,
    )
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")

    async def heard() -> bool:
        # the KPIs count it (active, or churned when expelled) once programme has heard of it
        answer = await client.get(f"{url}/kpis", params={"partner_id": partner_id}, headers=ADMIN)
        counts = answer.json()["partners"]
        return bool(counts["active"] + counts["churned"])

    await eventually(heard, 30, what="programme to hear of the partner")
    return partner_id


async def answer_plan(
    client: httpx.AsyncClient,
    plan_url: str,
    headers: dict[str, str],
    revision: int,
    accept: bool = True,
    note: str | None = None,
) -> httpx.Response:
    """A partner's answer (from whoever `headers` sign in) to revision `revision` of the plan."""
    body: dict[str, Any] = {"accept": accept, "revision": revision}
    if note is not None:
        body["note"] = note
    return await client.post(f"{plan_url}/answer", headers=headers, json=body)


async def test_a_plan_is_proposed_answered_by_the_partner_and_revised(
    infra: Infra, programme: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        partner = await known_partner(infra, client, programme)
        plan_url = f"{programme}/partners/{partner}/plans/{YEAR}"
        # a partner cannot propose; nothing to answer before a proposal
        assert (
            await client.put(plan_url, headers=partner_admin(partner), json=PLAN)
        ).status_code == 403
        early = await answer_plan(client, plan_url, partner_admin(partner), 1)
        assert early.status_code == 404, early.text

        proposed = await client.put(plan_url, headers=ADMIN, json=PLAN)
        assert proposed.status_code == 200, proposed.text
        assert (proposed.json()["state"], proposed.json()["revision"]) == ("proposed", 1)

        # the partner's users read it; only its admins answer; another partner sees nothing
        assert (await client.get(plan_url, headers=auth(partner))).status_code == 200
        user = await answer_plan(client, plan_url, auth(partner), 1)
        assert user.status_code == 403
        other = partner_admin("p-someone-else")
        assert (await client.get(plan_url, headers=other)).status_code == 404
        assert (await answer_plan(client, plan_url, other, 1)).status_code == 404
        # reviewing a plan not accepted is refused
        early_review = await client.post(
            f"{plan_url}/reviews", headers=ADMIN, json={"quarter": "2026-Q1", "summary": "too soon"}
        )
        assert early_review.status_code == 409, early_review.text

        declined = await answer_plan(
            client, plan_url, partner_admin(partner), 1, accept=False, note="too high"
        )
        assert declined.status_code == 200, declined.text
        assert (declined.json()["state"], declined.json()["response_note"]) == (
            "declined",
            "too high",
        )
        again = await answer_plan(client, plan_url, partner_admin(partner), 1)
        assert again.status_code == 409
        assert "the plan is declined" in again.text

        revised = await client.put(
            plan_url,
            headers=ADMIN,
            json=PLAN | {"goals": PLAN["goals"] | {"sourced_revenue": "150000"}},
        )
        assert (revised.json()["state"], revised.json()["revision"]) == ("proposed", 2)
        # an answer to the revision read before this one accepts nothing (found from outside)
        stale = await answer_plan(client, plan_url, partner_admin(partner), 1)
        assert stale.status_code == 409, stale.text
        assert "at revision 2, not 1: read it again" in stale.json()["detail"]
        assert (await client.get(plan_url, headers=ADMIN)).json()["state"] == "proposed"
        accepted = await answer_plan(client, plan_url, partner_admin(partner), 2)
        assert accepted.json()["state"] == "accepted"
        history = [(h["revision"], h["state"]) for h in accepted.json()["history"]]
        assert history == [(1, "proposed"), (1, "declined"), (2, "proposed"), (2, "accepted")]
        assert accepted.json()["goals"]["sourced_revenue"] == "150000.00"

        # the plan as it stands, sent again twenty times at once: no revision, still accepted
        same = PLAN | {"goals": PLAN["goals"] | {"sourced_revenue": "150000.0"}}
        repeats = await asyncio.gather(
            *(client.put(plan_url, headers=ADMIN, json=same) for _ in range(20))
        )
        assert {(r.status_code, r.json()["state"], r.json()["revision"]) for r in repeats} == {
            (200, "accepted", 2)
        }
        assert [(h["revision"], h["state"]) for h in repeats[0].json()["history"]] == history


async def test_hostile_plans_are_refused_precisely(infra: Infra, programme: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        partner = await known_partner(infra, client, programme)
        expelled = await known_partner(
            infra, client, programme, status=PartnerStatus.EXPELLED, change=PartnerChange.EXPELLED
        )
        url = f"{programme}/partners/{partner}/plans/{YEAR}"
        for body, why in (
            (PLAN | {"currency": "usd"}, "currency"),
            (PLAN | {"currency": "EUR"}, "in the reporting currency USD; plan in USD"),
            (PLAN | {"goals": PLAN["goals"] | {"sourced_revenue": "10.001"}}, "2 decimal places"),
            (
                {**PLAN, "currency": "JPY", "goals": PLAN["goals"] | {"sourced_revenue": "10.5"}},
                "at most 0 allowed in JPY",
            ),
            (PLAN | {"goals": PLAN["goals"] | {"new_logos": -1}}, "new_logos"),
            (PLAN | {"extra": 1}, "extra"),
            ({"currency": "USD"}, "goals"),
        ):
            answer = await client.put(url, headers=ADMIN, json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert why in answer.text, (body, answer.text)
        assert (
            await client.put(f"{programme}/partners/{partner}/plans/1999", headers=ADMIN, json=PLAN)
        ).status_code == 422
        unknown = await client.put(
            f"{programme}/partners/p-nobody-{uuid.uuid4().hex[:6]}/plans/{YEAR}",
            headers=ADMIN,
            json=PLAN,
        )
        assert unknown.status_code == 404, unknown.text
        gone = await client.put(
            f"{programme}/partners/{expelled}/plans/{YEAR}", headers=ADMIN, json=PLAN
        )
        assert gone.status_code == 409
        assert "expelled" in gone.text
        # nothing was written by any of them
        assert (
            await client.get(f"{programme}/partners/{partner}/plans", headers=ADMIN)
        ).json() == {"items": []}


async def test_a_quarterly_review_shows_goals_against_actuals_from_three_services(
    infra: Infra, programme: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        partner = await known_partner(infra, client, programme)
        plan_url = f"{programme}/partners/{partner}/plans/{YEAR}"
        assert (await client.put(plan_url, headers=ADMIN, json=PLAN)).status_code == 200
        accepted = await answer_plan(client, plan_url, partner_admin(partner), 1)
        assert accepted.status_code == 200, accepted.text

        # attribution: two sourced credits in the year (one reversed), one influenced, one the
        # year before; incentives: a new-logo kicker, another clawed back, an approved and a
        # rejected MDF claim; onboarding: certified in a third competency in Q2
        at = datetime(YEAR, 5, 4, tzinfo=UTC)
        kept = f.credit_issued(partner_id=partner, amount="50000.00", close_date=date(YEAR, 4, 30))
        undone = f.credit_issued(partner_id=partner, amount="9000.00", close_date=date(YEAR, 5, 2))
        credits = [
            kept,
            undone,
            f.credit_reversed(undone),
            f.credit_issued(
                partner_id=partner,
                amount="7000.00",
                kind=CreditKind.INFLUENCED,
                close_date=date(YEAR, 5, 1),
            ),
            f.credit_issued(
                partner_id=partner, amount="4000.00", close_date=date(YEAR - 1, 12, 30)
            ),
            f.credit_issued(
                partner_id=partner, amount="3000.00", close_date=date(YEAR, 8, 1)
            ),  # Q3
        ]
        for credit in credits:
            await publish(
                infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
            )
        # a third deal's new-logo kicker paid 0 (the partner at its period cap): a new logo all
        # the same (the paid sum missed it)
        capped = f.incentive_earned(
            partner_id=partner,
            program_rule="kicker:new_logo",
            deal_key=f"deal-capped-{partner}",
            period="2026-Q2",
            amount=Decimal("0.00"),
        )
        earned_undone = f.incentive_earned(
            partner_id=partner,
            program_rule="kicker:new_logo",
            deal_key=undone.deal_key,
            period="2026-Q2",
            amount=Decimal("270.00"),
        )
        ledger = [
            capped,
            f.incentive_earned(
                partner_id=partner,
                program_rule="kicker:new_logo",
                deal_key=kept.deal_key,
                period="2026-Q2",
            ),
            f.incentive_earned(
                partner_id=partner,
                program_rule="base:gold",
                deal_key=kept.deal_key,
                period="2026-Q2",
            ),
            earned_undone,
            f.incentive_reversed(
                partner_id=partner,
                program_rule="kicker:new_logo",
                deal_key=undone.deal_key,
                period="2026-Q2",
                amount=Decimal("270.00"),
                reverses_entry_id=earned_undone.entry_id,
            ),
            f.mdf_claim_decided(partner_id=partner, decided_at=at),
            f.mdf_claim_decided(
                partner_id=partner, decided_at=at, status="rejected", entry_id=None
            ),
        ]
        await publish(infra, INCENTIVE_LEDGER, ledger, subject=partner, source="incentives")
        certified = f.partner_state_changed(
            partner_id=partner,
            version=2,
            changed_at=at,
            competencies=("ai", "data", "security"),
            change=PartnerChange.UPDATED,
        )
        await publish(infra, PARTNER_LIFECYCLE, [certified], subject=partner, source="onboarding")
        # programme: campaigns the partner ran (completed, not cancelled) in the period count,
        # whoever funded them: one ended in Q2, one in Q3; one still to come, one cancelled
        # before it began and one of another partner do not
        other = await known_partner(infra, client, programme)
        soon = datetime.now(UTC).date() + timedelta(days=30)
        campaigns = [
            (partner, date(YEAR, 5, 18), date(YEAR, 5, 20)),
            (partner, date(YEAR, 8, 1), date(YEAR, 8, 15)),
            (partner, soon, soon),
            (partner, soon, soon + timedelta(days=1)),
            (other, date(YEAR, 5, 18), date(YEAR, 5, 20)),
        ]
        created: list[str] = []
        for runs, starts, ends in campaigns:
            answer = await client.post(
                f"{programme}/campaigns",
                headers=ADMIN,
                json={
                    "name": f"campaign {len(created)}",
                    "kind": "webinar",
                    "starts_on": str(starts),
                    "ends_on": str(ends),
                    "partner_ids": [runs],
                },
            )
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["campaign_id"])
        off = await client.post(
            f"{programme}/campaigns/{created[3]}/cancel",
            headers=ADMIN,
            json={"reason": "no speaker"},
        )
        assert off.status_code == 200, off.text

        async def all_heard() -> dict[str, Any] | None:
            plan = (await client.get(f"{plan_url}", headers=ADMIN)).json()
            actual = {line["goal"]: Decimal(line["actual"]) for line in plan["actuals"]}
            expected = {
                "sourced_revenue": Decimal("53000"),
                "certifications": 3,
                "new_logos": 2,
                "co_marketing_campaigns": 2,  # to the current quarter: Q2's and Q3's
            }
            # the approved MDF claim (not the rejected one) shows beside the campaigns run
            claims_heard = plan["mdf_claims_approved"] == 1
            return plan if actual == expected and claims_heard else None

        live = await eventually(all_heard, 30, what="programme to hear every event")
        assert live["mdf_claims_approved"] == 1
        assert {line["goal"]: line["source"] for line in live["actuals"]}[
            "co_marketing_campaigns"
        ] == "programme"
        recorded = await client.post(
            f"{plan_url}/reviews",
            headers=ADMIN,
            json={"quarter": "2026-Q2", "summary": "on track", "actions": ["joint webinar in Q3"]},
        )
        assert recorded.status_code == 201, recorded.text
        review = recorded.json()
        lines = [
            (
                line["goal"],
                line["source"],
                Decimal(line["target"]),
                Decimal(line["actual"]),
                line["attainment"],
            )
            for line in review["lines"]
        ]
        assert lines == [
            # 50000 kept (the reversed 9000 and the Q3 3000 are not counted in Q2; influenced
            # and last year's are not sourced revenue of this year)
            ("sourced_revenue", "attribution", Decimal("200000"), Decimal("50000"), "0.2500"),
            ("certifications", "onboarding", 4, 3, "0.7500"),
            ("new_logos", "incentives", 3, 2, "0.6667"),
            ("co_marketing_campaigns", "programme", 2, 1, "0.5000"),  # Q2's only
        ]
        assert (review["quarter"], review["plan_revision"], review["actions"]) == (
            "2026-Q2",
            1,
            ["joint webinar in Q3"],
        )
        assert review["mdf_claims_approved"] == 1  # the May claim, as shown beside the lines
        # one review per quarter; the partner reads it; a quarter outside the year is refused
        twice = await client.post(
            f"{plan_url}/reviews", headers=ADMIN, json={"quarter": "2026-Q2", "summary": "again"}
        )
        assert twice.status_code == 409
        outside = await client.post(
            f"{plan_url}/reviews", headers=ADMIN, json={"quarter": "2027-Q1", "summary": "x"}
        )
        assert outside.status_code == 422
        assert "not in the plan's year" in outside.text
        for quarter in ("0000-Q1", "9999-Q4"):  # no date holds their range: refused, not a 500
            beyond = await client.post(
                f"{plan_url}/reviews", headers=ADMIN, json={"quarter": quarter, "summary": "x"}
            )
            assert beyond.status_code == 422, beyond.text
            assert "outside the quarters 1900-Q1 to 9998-Q4" in beyond.text
        listed = await client.get(f"{plan_url}/reviews", headers=auth(partner))
        assert listed.json()["items"] == [review]

"""The programme after a seeded flow through the real services (the scripted story, an
application the scoring rejects, a registration a manager reviews, certifications, an MDF claim
approved, a co-marketing campaign run and one cancelled). The KPIs' automation share,
partner-sourced and -influenced revenue by tier and quarter and the incentive return are the
sums computed straight from the owning services' own tables (the test reads them; the programme
service only ever heard their events). A quarterly business review shows one partner's goals
against actuals from attribution, onboarding, incentives and programme's own campaigns, each
equal to what those services' tables hold."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner, tell_story
from shared.identity import Role
from tests.support.onboarding import weak_application
from tests.support.polling import NeverHappened, eventually
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet
from tests.support.tokens import bearer, token

pytestmark = pytest.mark.e2e

QUARTER = """to_char({}, 'YYYY-"Q"Q')"""


def share(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)


async def from_the_tables(db: Any, partners: list[str]) -> dict[str, Any]:
    """Every reconciled figure, from onboarding's, deals', attribution's and incentives' rows."""
    onboarding = await db.fetch(
        """SELECT h.acted_by = 'onboarding' AS automatic
           FROM onboarding.partner_history h
           JOIN onboarding.partner_history before
             ON before.partner_id = h.partner_id AND before.version = h.version - 1
           WHERE h.partner_id = ANY($1) AND h.change IN ('qualified', 'rejected')
             AND before.status = 'applied'""",
        partners,
    )
    registrations = await db.fetch(
        """SELECT l.what <> 'reviewed' AS automatic
           FROM deals.registration_ledger l JOIN deals.registrations r USING (registration_id)
           WHERE r.partner_id = ANY($1) AND l.what IN ('decided', 'reviewed', 'auto_decided')
             AND l.status IN ('approved', 'rejected', 'won')""",
        partners,
    )
    revenue: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    by_quarter: dict[str, Decimal] = defaultdict(Decimal)
    for row in await db.fetch(
        f"""SELECT {QUARTER.format("c.close_date")} AS quarter, c.kind, c.amount,
                   (SELECT h.tier FROM onboarding.partner_history h
                    WHERE h.partner_id = c.partner_id AND h.changed_at <= c.issued_at
                    ORDER BY h.version DESC LIMIT 1) AS tier
            FROM attribution.credits c
            WHERE c.partner_id = ANY($1) AND c.reversed_at IS NULL""",
        partners,
    ):
        revenue[(row["quarter"], row["tier"], row["kind"])] += row["amount"]
        by_quarter[row["quarter"]] += row["amount"]
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for row in await db.fetch(
        """SELECT period, sum(amount) AS amount FROM incentives.ledger_entries
           WHERE partner_id = ANY($1) AND entry_type IN ('accrual', 'kicker', 'spiff', 'reversal')
           GROUP BY period""",
        partners,
    ):
        spend[row["period"]] += row["amount"]
    for row in await db.fetch(
        f"""SELECT {QUARTER.format("decided_at")} AS quarter, sum(amount) AS amount
            FROM incentives.mdf_claims WHERE partner_id = ANY($1) AND status = 'approved'
            GROUP BY 1""",
        partners,
    ):
        spend[row["quarter"]] += row["amount"]
    automatic = sum(r["automatic"] for r in onboarding) + sum(r["automatic"] for r in registrations)
    return {
        "onboarding": (
            len(onboarding),
            share(sum(r["automatic"] for r in onboarding), len(onboarding)),
        ),
        "registrations": (
            len(registrations),
            share(sum(r["automatic"] for r in registrations), len(registrations)),
        ),
        "automatic_share": share(automatic, len(onboarding) + len(registrations)),
        "revenue": {key: amount for key, amount in revenue.items() if amount},
        "return": {
            quarter: share_of_money(
                by_quarter.get(quarter, Decimal(0)), spend.get(quarter, Decimal(0))
            )
            for quarter in sorted(set(by_quarter) | set(spend))
        },
    }


def share_of_money(revenue: Decimal, spend: Decimal) -> tuple[Decimal, Decimal, Decimal | None]:
    if spend == 0:
        return revenue, spend, None
    return revenue, spend, (revenue / spend).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)


def from_the_api(report: dict[str, Any]) -> dict[str, Any]:
    automation = report["automation"]

    def pair(kind: dict[str, Any]) -> tuple[int, Decimal | None]:
        value = kind["automatic_share"]
        return kind["decisions"], Decimal(value) if value is not None else None

    revenue: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in report["revenue"]:
        revenue[(row["quarter"], row["tier"], "sourced")] += Decimal(row["sourced"])
        revenue[(row["quarter"], row["tier"], "influenced")] += Decimal(row["influenced"])
    overall = automation["automatic_share"]
    return {
        "onboarding": pair(automation["onboarding"]),
        "registrations": pair(automation["registrations"]),
        "automatic_share": Decimal(overall) if overall is not None else None,
        "revenue": {key: amount for key, amount in revenue.items() if amount},
        "return": {
            row["quarter"]: (
                Decimal(row["attributed_revenue"]),
                Decimal(row["incentives"]) + Decimal(row["mdf_claimed"]),
                Decimal(row["return_per_dollar"]) if row["return_per_dollar"] else None,
            )
            for row in report["spend"]
        },
    }


@dataclass(frozen=True)
class Seeded:
    partners: list[str]  # every partner the flow concerns
    alpine: Partner  # the partner that sourced the won deal and claimed MDF


@pytest.fixture(scope="module")
async def seeded(fleet: Fleet) -> Seeded:
    async with httpx.AsyncClient(timeout=30) as client:
        return await seed(client, fleet)


async def seed(client: httpx.AsyncClient, fleet: Fleet) -> Seeded:
    """The scripted story, then what it lacks: a rejected application, a manager's review, an
    approved MDF claim and a campaign run (another cancelled)."""
    result, _ = await tell_story(fleet.urls, ADMIN_TOKEN)
    domain = f"weak-{uuid.uuid4().hex[:10]}.example"
    weak = await client.post(
        f"{fleet.url('onboarding')}/applications", json=weak_application(domain)
    )
    assert weak.status_code == 201, weak.text
    assert weak.json()["status"] == "rejected"
    pending = result.decisions["direct_conflict"]
    reviewed = await client.post(
        f"{fleet.url('deals')}/registrations/{pending['registration_id']}/review",
        headers=ADMIN,
        params={"approve": "true", "note": "the rep agrees to co-sell"},
    )
    assert reviewed.status_code == 200, reviewed.text
    alpine = result.partners["alpine"]
    claim = await client.post(
        f"{fleet.url('incentives')}/mdf/claims",
        headers=alpine.auth,
        json={"amount": "1.00", "description": "Joint webinar", "proof_reference": "inv-1"},
    )
    assert claim.status_code == 201, claim.text
    decided = await client.post(
        f"{fleet.url('incentives')}/mdf/claims/{claim.json()['claim_id']}/decision",
        headers=ADMIN,
        json={"approve": True},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    # alpine's people certify in the data track (sales and technical: one competency)
    for role, person in (("sales", "sam"), ("technical", "tess")):
        certified = await client.post(
            f"{fleet.url('onboarding')}/partners/{alpine.partner_id}/certifications",
            headers=ADMIN,
            json={
                "person_email": f"{person}@alpine-{result.run}.example",
                "role": role,
                "track": "data",
                "issued_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                "expires_at": (datetime.now(UTC) + timedelta(days=300)).isoformat(),
            },
        )
        assert certified.status_code == 201, certified.text
    await campaigns_of(client, fleet, alpine)
    everyone = [p.partner_id for p in result.partners.values()] + [weak.json()["partner_id"]]
    return Seeded(sorted(everyone), alpine)


async def campaigns_of(client: httpx.AsyncClient, fleet: Fleet, partner: Partner) -> None:
    """A webinar the partner ran, recorded the day after it ended, and an event cancelled before
    it began (a plan counts the first only). On 1 January no campaign of the year has ended
    yet: the run one then ends on the last day of the year before and counts nowhere."""
    today = datetime.now(UTC).date()
    url = f"{fleet.url('programme')}/campaigns"
    ran, cancelled = (
        {
            "name": name,
            "kind": kind,
            "starts_on": str(today + timedelta(days=offset)),
            "ends_on": str(today + timedelta(days=offset + 1)),
            "partner_ids": [partner.partner_id],
        }
        for name, kind, offset in (("Data day", "webinar", -2), ("Summit booth", "event", 20))
    )

    async def created(body: dict[str, Any]) -> Any:
        answer = await client.post(url, json=body, headers=ADMIN)
        return answer.json()["campaign_id"] if answer.status_code == 201 else None

    await eventually(lambda: created(ran), 60, what="programme to know the partner")
    off = await eventually(lambda: created(cancelled), 60, what="the second campaign")
    answer = await client.post(f"{url}/{off}/cancel", json={"reason": "no booth"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text


async def test_the_kpis_reconcile_with_the_owning_services_tables(
    fleet: Fleet, admin_db: Any, seeded: Seeded
) -> None:
    partners = seeded.partners
    async with httpx.AsyncClient(timeout=30) as client:
        seen: dict[str, Any] = {}

        async def reconciled() -> bool:
            answer = await client.get(
                f"{fleet.url('programme')}/kpis", params={"partner_id": partners}, headers=ADMIN
            )
            assert answer.status_code == 200, answer.text
            seen["api"] = from_the_api(answer.json())
            seen["tables"] = await from_the_tables(admin_db, partners)
            return bool(seen["api"] == seen["tables"])

        try:
            await eventually(reconciled, 60, what="the KPIs to equal the tables' sums", every=0.5)
        except NeverHappened:
            assert seen["api"] == seen["tables"]
    tables = seen["tables"]
    # the flow decided something of every kind, so the figures are not vacuously equal
    assert tables["onboarding"][0] == 6  # five approved by a manager, one rejected by its score
    assert tables["registrations"][0] >= 4
    assert 0 < tables["automatic_share"] < 1
    assert {kind for _, _, kind in tables["revenue"]} == {"sourced", "influenced"}
    assert any(ratio is not None for _, _, ratio in tables["return"].values())


async def actuals_in_the_tables(db: Any, partner_id: str, year: int) -> dict[str, Decimal]:
    """A partner's year from attribution's, onboarding's, incentives' and programme's own
    rows (campaigns run: ended before today, not cancelled)."""
    starts = datetime(year, 1, 1, tzinfo=UTC)
    sourced = await db.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM attribution.credits
           WHERE partner_id = $1 AND kind = 'sourced' AND reversed_at IS NULL
             AND close_date >= $2""",
        partner_id,
        starts.date(),
    )
    certified = await db.fetchval(
        "SELECT cardinality(competencies) FROM onboarding.partners WHERE partner_id = $1",
        partner_id,
    )
    logos = await db.fetchval(
        """SELECT count(*) FROM (SELECT deal_key FROM incentives.ledger_entries
               WHERE partner_id = $1 AND rule = 'kicker:new_logo' AND period LIKE $2
               GROUP BY deal_key HAVING sum(amount) > 0) x""",
        partner_id,
        f"{year}-%",
    )
    campaigns = await db.fetchval(
        """SELECT count(*) FROM programme.campaigns c
             JOIN programme.campaign_partners p USING (campaign_id)
           WHERE p.partner_id = $1 AND c.cancelled_at IS NULL
             AND c.ends_on >= $2 AND c.ends_on < $3""",
        partner_id,
        starts.date(),
        datetime.now(UTC).date(),
    )
    return {
        "sourced_revenue": Decimal(sourced),
        "certifications": Decimal(certified),
        "new_logos": Decimal(logos),
        "co_marketing_campaigns": Decimal(campaigns),
    }


async def test_a_quarterly_review_shows_goals_against_actuals_from_three_services(
    fleet: Fleet, admin_db: Any, seeded: Seeded
) -> None:
    today = datetime.now(UTC)
    year, quarter = today.year, f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    partner = seeded.alpine.partner_id
    plan_url = f"{fleet.url('programme')}/partners/{partner}/plans/{year}"
    partner_admin = bearer(token(f"{partner}/admin", Role.PARTNER_ADMIN, partner_id=partner))
    goals = {
        "sourced_revenue": "100000.00",
        "certifications": 4,
        "new_logos": 2,
        "co_marketing_campaigns": 2,
    }
    async with httpx.AsyncClient(timeout=30) as client:
        proposed = await client.put(
            plan_url, headers=ADMIN, json={"currency": "USD", "goals": goals}
        )
        assert proposed.status_code == 200, proposed.text
        accepted = await client.post(
            f"{plan_url}/answer", headers=partner_admin, json={"accept": True, "revision": 1}
        )
        assert accepted.json()["state"] == "accepted", accepted.text
        seen: dict[str, dict[str, Decimal]] = {}

        async def caught_up() -> bool:
            plan = (await client.get(plan_url, headers=ADMIN)).json()
            seen["plan"] = {line["goal"]: Decimal(line["actual"]) for line in plan["actuals"]}
            seen["tables"] = await actuals_in_the_tables(admin_db, partner, year)
            return seen["plan"] == seen["tables"]

        try:
            await eventually(caught_up, 60, what="programme to hear the partner's year", every=0.5)
        except NeverHappened:
            assert seen["plan"] == seen["tables"]
        expected = seen["tables"]
        recorded = await client.post(
            f"{plan_url}/reviews",
            headers=ADMIN,
            json={"quarter": quarter, "summary": "strong start", "actions": ["plan a webinar"]},
        )
        assert recorded.status_code == 201, recorded.text
    lines = {line["goal"]: line for line in recorded.json()["lines"]}
    assert {goal: line["source"] for goal, line in lines.items()} == {
        "sourced_revenue": "attribution",
        "certifications": "onboarding",
        "new_logos": "incentives",
        "co_marketing_campaigns": "programme",
    }
    assert {goal: Decimal(line["actual"]) for goal, line in lines.items()} == expected
    assert {goal: Decimal(line["target"]) for goal, line in lines.items()} == {
        goal: Decimal(target) for goal, target in goals.items()
    }
    # each service contributed something real: a sourced deal, a competency, the campaign run
    # (which ended yesterday: on 1 January that was last year, and the year has none yet)
    assert expected["sourced_revenue"] > 0
    assert expected["certifications"] > 0
    ran_ended = today.date() - timedelta(days=1)
    assert expected["co_marketing_campaigns"] == (1 if ran_ended.year == year else 0)

"""The programme service as a real process, fed the other services' events on the real topics
(played here by the tests, as each producer would send them): every KPI figure exactly, a late
reversal and a redelivery counted once, the filters, and who may read."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events.attribution import CreditKind
from shared.events.crm import Customer
from shared.events.partners import PartnerChange, PartnerStatus
from shared.events.registrations import RegistrationStatus
from shared.topics import (
    ATTRIBUTION_CREDITS,
    DEAL_REGISTRATIONS,
    INCENTIVE_LEDGER,
    PARTNER_LIFECYCLE,
)
from tests.support import factories as f
from tests.support.infra import Infra
from tests.support.kafka import publish, send_envelopes
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, FINANCE, auth

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 2, 9, tzinfo=UTC)  # 2026-Q4
H = timedelta(hours=1)


programme = service_fixture("programme")


def _ids() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {name: f"p-{name}-{run}" for name in ("star", "scored", "reviewed", "gone")}


async def seed(infra: Infra, p: dict[str, str]) -> dict[str, Any]:
    """One programme's worth of facts for four partners, in an awkward order."""
    star, scored, reviewed, gone = p["star"], p["scored"], p["reviewed"], p["gone"]
    # star: a GSI, gold when activated 10 days before its first credit, platinum two days later
    versions = [
        f.partner_state_changed(
            partner_id=star,
            version=1,
            change=PartnerChange.ACTIVATED,
            tier="gold",
            changed_at=T - 240 * H,
            regions=("US",),
        ),
        f.partner_state_changed(
            partner_id=star,
            version=2,
            change=PartnerChange.TIER_CHANGED,
            tier="platinum",
            changed_at=T + 24 * H,
            regions=("US",),
        ),
    ]
    for version in versions:
        await publish(infra, PARTNER_LIFECYCLE, [version], subject=star, source="onboarding")
    # scored: rejected by its score the moment it applied; reviewed: a manager qualified it 2h on
    applications = {
        scored: f.application_decided(
            partner_id=scored,
            status=PartnerStatus.REJECTED,
            reason="application score 31 below 40",
            changed_at=T,
            decided_at=T,
        ),
        reviewed: f.application_decided(
            partner_id=reviewed,
            status=PartnerStatus.QUALIFIED,
            reason="manual review: application approved (score 77)",
            changed_at=T,
            decided_at=T + 2 * H,
        ),
        gone: [
            f.partner_state_changed(
                partner_id=gone,
                version=7,
                change=PartnerChange.EXPELLED,
                status=PartnerStatus.EXPELLED,
                tier="silver",
                previous_status=PartnerStatus.SUSPENDED,
                changed_at=T + H,
            ),
        ],
    }
    for partner, events in applications.items():
        await publish(infra, PARTNER_LIFECYCLE, events, subject=partner, source="onboarding")

    us, de = Customer(country="US"), Customer(country="DE")
    sourced = f.credit_issued(
        partner_id=star, amount="1000.00", close_date=date(2026, 10, 5), issued_at=T, customer=us
    )
    influenced = f.credit_issued(
        partner_id=star,
        amount="500.25",
        kind=CreditKind.INFLUENCED,
        close_date=date(2026, 11, 30),
        issued_at=T + 48 * H,
        customer=de,
    )
    corrected = f.credit_issued(
        partner_id=star,
        amount="700.00",
        close_date=date(2026, 12, 1),
        issued_at=T + 49 * H,
        customer=us,
    )
    earlier = f.credit_issued(
        partner_id=star, amount="90.00", close_date=date(2026, 9, 30), issued_at=T, customer=us
    )
    # the reversal comes before the credit it reverses (another partition's order is no order)
    reversal = f.credit_reversed(corrected)
    await publish(
        infra, ATTRIBUTION_CREDITS, [reversal], subject=corrected.deal_key, source="attribution"
    )
    for credit in (sourced, influenced, corrected, earlier):
        await publish(
            infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
        )
    # a redelivery of the first credit changes nothing
    (again,) = await publish(
        infra, ATTRIBUTION_CREDITS, [sourced], subject=sourced.deal_key, source="attribution"
    )
    await send_envelopes(infra, ATTRIBUTION_CREDITS.name, sourced.deal_key, again)

    # The first credit's booking in one event (as incentives announces it); the others'
    # entries each alone (as it announced them before: such records stay on the topic).
    head = {"partner_id": star, "credit_id": sourced.credit_id, "period": "2026-Q4"}
    # a SPIFF earned while gold, clawed back once platinum: gold's to take back
    spiff = f.incentive_earned(
        **head, program_rule="spiff:q4", amount=Decimal("12.00"), earned_at=T + 2 * H
    )
    spiff_back = f.incentive_reversed(
        **head,
        program_rule="spiff:q4",
        amount=Decimal("12.00"),
        reverses_entry_id=spiff.entry_id,
        reversed_at=T + 50 * H,
    )
    ledger = [
        f.credit_booked(
            **head,
            earnings=[f.incentive_earned(**head, amount=Decimal("100.00"), earned_at=T)],
            mdf_accrued=f.mdf_accrued(**head, amount=Decimal("20.00"), accrued_at=T),
        ),
        f.incentive_earned(
            partner_id=star,
            amount=Decimal("35.00"),
            credit_id=corrected.credit_id,
            period="2026-12",
            earned_at=T + 49 * H,
        ),
        f.incentive_reversed(
            partner_id=star,
            amount=Decimal("35.00"),
            credit_id=corrected.credit_id,
            period="2026-12",
            reversed_at=T + 50 * H,
        ),
        spiff,
        spiff_back,
        f.mdf_claim_decided(partner_id=star, amount=Decimal("30.00"), decided_at=T + 3 * H),
        f.mdf_claim_decided(
            partner_id=star,
            amount=Decimal("999.00"),
            status="rejected",
            entry_id=None,
            decided_at=T + 3 * H,
        ),
        f.incentive_earned(
            partner_id=star,
            amount=Decimal("9.00"),
            credit_id=earlier.credit_id,
            period="2026-Q3",
            earned_at=T,
        ),
    ]
    await publish(infra, INCENTIVE_LEDGER, ledger, subject=star, source="incentives")

    # registrations: one approved by the rules, one a manager approved after 10h, one the
    # review policy rejected after 48h, one still waiting
    auto = f.registration_decided(partner_id=star, decided_at=T)
    waits = [
        f.registration_decided(
            partner_id=star, status=RegistrationStatus.PENDING_REVIEW, decided_at=T
        )
        for _ in range(3)
    ]
    manual = f.registration_status_changed(
        registration_id=waits[0].registration_id,
        partner_id=star,
        previous_status=RegistrationStatus.PENDING_REVIEW,
        status=RegistrationStatus.APPROVED,
        reason="manual review: checked with the rep",
        changed_at=T + 10 * H,
    )
    policy = f.registration_status_changed(
        registration_id=waits[1].registration_id,
        partner_id=star,
        previous_status=RegistrationStatus.PENDING_REVIEW,
        status=RegistrationStatus.REJECTED,
        reason="review deadline passed undecided: rejected under policy",
        changed_at=T + 48 * H,
    )
    for first, then in ((auto, None), (waits[0], manual), (waits[1], policy), (waits[2], None)):
        events = [first] if then is None else [first, then]
        await publish(
            infra, DEAL_REGISTRATIONS, events, subject=first.registration_id, source="deals"
        )
    return {"sourced": sourced, "influenced": influenced}


async def kpis(url: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"{url}/kpis", params=params, headers=headers)


async def test_every_figure_from_the_events_exactly(infra: Infra, programme: str) -> None:
    p = _ids()
    await seed(infra, p)
    partners = sorted(p.values())

    def d(value: str | None) -> Decimal | None:
        return Decimal(value) if value is not None else None

    async def settled() -> dict[str, Any] | None:
        answer = await kpis(programme, ADMIN, partner_id=partners)
        assert answer.status_code == 200, answer.text
        report: dict[str, Any] = answer.json()
        spend = report["spend"]
        complete = (
            report["automation"]["registrations"]["decisions"] == 3
            and report["automation"]["onboarding"]["decisions"] == 2
            and len(report["revenue"]) == 4
            and report["partners"]["churned"] == 1
            and len(spend) == 2
            and d(spend[1]["mdf_claimed"]) == 30
            and d(spend[1]["incentives"]) == 100
            and d(report["revenue_totals"][0]["sourced"]) == 1090
        )
        return report if complete else None

    report = await eventually(settled, 60, what="the programme to count every event")
    revenue = [
        (
            r["quarter"],
            r["tier"],
            r["partner_type"],
            r["region"],
            r["currency"],
            d(r["sourced"]),
            d(r["influenced"]),
        )
        for r in report["revenue"]
    ]
    assert revenue == [
        ("2026-Q3", "gold", "gsi", "US", "USD", Decimal("90"), 0),
        ("2026-Q4", "gold", "gsi", "US", "USD", Decimal("1000"), 0),
        ("2026-Q4", "platinum", "gsi", "DE", "USD", 0, Decimal("500.25")),
        # the corrected credit, reversed in full (its reversal came first)
        ("2026-Q4", "platinum", "gsi", "US", "USD", 0, 0),
    ]
    assert [
        (t["currency"], d(t["sourced"]), d(t["influenced"])) for t in report["revenue_totals"]
    ] == [("USD", Decimal("1090"), Decimal("500.25"))]
    spend = [
        (
            s["quarter"],
            s["currency"],
            d(s["attributed_revenue"]),
            d(s["incentives"]),
            d(s["mdf_claimed"]),
            d(s["mdf_accrued"]),
            s["return_per_dollar"],
        )
        for s in report["spend"]
    ]
    assert spend == [
        ("2026-Q3", "USD", Decimal("90"), Decimal("9"), 0, 0, "10.0000"),
        # 1500.25 / (100 + 30): the clawed-back 35 and the rejected claim cost nothing
        (
            "2026-Q4",
            "USD",
            Decimal("1500.25"),
            Decimal("100"),
            Decimal("30"),
            Decimal("20"),
            "11.5404",
        ),
    ]
    automation = report["automation"]
    assert automation["onboarding"] == {
        "decisions": 2,
        "approved": 1,  # reviewed qualified; scored rejected
        "rejected": 1,
        "approval_share": "0.5000",
        "automatic": 1,
        "automatic_share": "0.5000",
        "time_to_decision": {"count": 2, "p50_hours": 0.0, "p90_hours": 2.0},
    }
    assert automation["registrations"] == {
        "decisions": 3,
        "approved": 2,  # by the rules and by the manager; the policy rejected one
        "rejected": 1,
        "approval_share": "0.6667",
        "automatic": 2,
        "automatic_share": "0.6667",
        "time_to_decision": {"count": 3, "p50_hours": 10.0, "p90_hours": 48.0},
    }
    assert (automation["automatic_share"], automation["target_met"]) == ("0.6000", False)
    assert report["partners"] == {
        "active": 1,
        "suspended": 0,
        "churned": 1,
        "time_to_first_deal": {"count": 1, "p50_hours": 240.0, "p90_hours": 240.0},
    }
    # the only partner with revenue, at the tier it has now (platinum, not gold as credited)
    assert report["top_partners"] == [
        {
            "partner_id": p["star"],
            "currency": "USD",
            "tier": "platinum",
            "sourced": "1090.0000",
            "influenced": "500.2500",
            "total": "1590.2500",
        }
    ]

    # filters: a quarter, a tier (the partner's when the credit came), a country, a type
    q3 = (await kpis(programme, ADMIN, partner_id=partners, to_quarter="2026-Q3")).json()
    assert [r["quarter"] for r in q3["revenue"]] == ["2026-Q3"]
    assert [s["quarter"] for s in q3["spend"]] == ["2026-Q3"]
    assert q3["automation"]["registrations"]["decisions"] == 0
    gold = (await kpis(programme, ADMIN, partner_id=partners, tier="platinum")).json()
    assert {(r["tier"], r["region"]) for r in gold["revenue"]} == {
        ("platinum", "DE"),
        ("platinum", "US"),
    }
    germany = (await kpis(programme, FINANCE, partner_id=partners, region="DE")).json()
    assert [(r["region"], d(r["influenced"])) for r in germany["revenue"]] == [
        ("DE", Decimal("500.25"))
    ]
    # a region filter leaves out MDF claims, which belong to no deal
    assert [d(s["mdf_claimed"]) for s in germany["spend"]] == [0]
    isv = (await kpis(programme, ADMIN, partner_id=partners, partner_type="isv")).json()
    assert isv["revenue"] == []
    # the spend's partner version is joined only for a tier or type: gold's, not platinum's 35
    in_gold = (await kpis(programme, ADMIN, partner_id=partners, tier="gold")).json()
    assert [
        (s["quarter"], d(s["incentives"]), d(s["mdf_claimed"]), d(s["mdf_accrued"]))
        for s in in_gold["spend"]
    ] == [("2026-Q3", 9, 0, 0), ("2026-Q4", 100, 30, 20)]
    # a clawback counts under the tier of what it takes back: the SPIFF earned while gold
    in_platinum = (await kpis(programme, ADMIN, partner_id=partners, tier="platinum")).json()
    assert [(s["quarter"], d(s["incentives"])) for s in in_platinum["spend"]] == [("2026-Q4", 0)]
    assert isv["spend"] == []
    assert isv["automation"]["onboarding"]["decisions"] == 2


async def test_only_the_channel_team_and_finance_read_it_and_bad_filters_are_refused(
    programme: str,
) -> None:
    assert (await kpis(programme, auth("p-anyone"))).status_code == 403
    assert (await kpis(programme, {})).status_code == 401
    assert (await kpis(programme, FINANCE)).status_code == 200
    for params, why in (
        ({"from_quarter": "2026-Q3", "to_quarter": "2026-Q2"}, "before from_quarter"),
        ({"from_quarter": "2026-Q5"}, "from_quarter"),
        ({"partner_type": "pirate"}, "partner_type"),
        ({"region": "germany"}, "region"),
        ({"tier": "Gold!"}, "tier"),
        ({"partner_id": [f"p{i}" for i in range(201)]}, "partner_id"),
    ):
        answer = await kpis(programme, ADMIN, **params)
        assert answer.status_code == 422, (params, answer.text)
        assert why in answer.text, (params, answer.text)


async def test_top_partners_are_ten_a_currency_most_first_ties_to_the_smaller_id(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:8]
    # twelve partners in EUR, 100..1200 (two tie at 700), one in GBP, one reversed to nothing
    amounts = {f"t{run}-{n:02d}": 100 * n for n in range(1, 13)}
    amounts[f"t{run}-00"] = 700
    credits = [
        f.credit_issued(partner_id=pid, amount=f"{amount}.00", currency="EUR", issued_at=T)
        for pid, amount in amounts.items()
    ]
    pound = f.credit_issued(partner_id=f"t{run}-gb", amount="5.00", currency="GBP", issued_at=T)
    undone = f.credit_issued(partner_id=f"t{run}-zz", amount="9999.00", currency="EUR", issued_at=T)
    for credit in (*credits, pound, undone, f.credit_reversed(undone)):
        await publish(
            infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
        )
    named = sorted([*amounts, pound.partner_id, undone.partner_id])

    async def counted() -> list[dict[str, Any]] | None:
        report = (await kpis(programme, ADMIN, partner_id=named)).json()
        totals = report["revenue_totals"]
        done = {t["currency"]: Decimal(t["sourced"]) for t in totals} == {
            "EUR": Decimal(sum(amounts.values())),
            "GBP": Decimal(5),
        }
        return report["top_partners"] if done else None

    top = await eventually(counted, 60, what="every credit and the reversal counted")
    eur = sorted(amounts, key=lambda pid: (-amounts[pid], pid))[:10]
    assert [(t["currency"], t["partner_id"]) for t in top] == [
        *(("EUR", pid) for pid in eur),
        ("GBP", pound.partner_id),
    ]
    assert eur[5:7] == [f"t{run}-00", f"t{run}-07"]  # the tie at 700, the smaller id first
    assert [Decimal(t["total"]) for t in top[:2]] == [Decimal(1200), Decimal(1100)]
    assert {t["tier"] for t in top} == {"unknown"}  # no lifecycle event for these partners


async def test_a_credit_stored_closing_at_infinity_leaves_the_report_answering(
    programme: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """asyncpg wrote 9999-12-31 as Postgres' infinity: credits stored so before the contracts
    and attribution refused such dates made every report answer 500 (found from outside). They
    lie in no quarter: the report counts them in none."""
    partner = f"p-infinity-{uuid.uuid4().hex[:8]}"
    await admin_db.execute(
        """INSERT INTO programme.credits (credit_id, deal_key, partner_id, kind, amount, currency,
               customer_country, close_date, issued_at)
           VALUES ($1, 'salesforce:x', $2, 'sourced', 10, 'USD', NULL, 'infinity', now())""",
        f"c-{partner}",
        partner,
    )
    for params in ({}, {"partner_id": [partner]}):
        answer = await kpis(programme, ADMIN, **params)
        assert answer.status_code == 200, answer.text
    named = (await kpis(programme, ADMIN, partner_id=[partner])).json()
    assert named["revenue_totals"] == []


async def test_time_to_first_deal_counts_the_first_deal_kept_never_below_zero(
    infra: Infra, programme: str
) -> None:
    """Found in review: a credit issued before the partner's activation (a confirmed CRM link
    while it onboarded) made the wait negative, and a reversed credit counted as its first deal.
    `undone`'s early credit was reversed: its first deal is the one 30 hours after activation;
    `early` kept its credit from before activation: it waited nothing."""
    run = uuid.uuid4().hex[:8]
    undone, early = f"ttfd-undone-{run}", f"ttfd-early-{run}"
    for partner in (undone, early):
        activated = f.partner_state_changed(
            partner_id=partner, version=1, change=PartnerChange.ACTIVATED, changed_at=T
        )
        await publish(infra, PARTNER_LIFECYCLE, [activated], subject=partner, source="onboarding")
    before = {p: f.credit_issued(partner_id=p, issued_at=T - 5 * H) for p in (undone, early)}
    kept = f.credit_issued(partner_id=undone, issued_at=T + 30 * H)
    for credit in (*before.values(), f.credit_reversed(before[undone]), kept):
        await publish(
            infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
        )

    async def waited(partner: str, sourced: Decimal) -> dict[str, Any] | None:
        """The partner's wait once its activation and every credit and reversal are in."""
        report = (await kpis(programme, ADMIN, partner_id=[partner])).json()
        net = sum(Decimal(t["sourced"]) for t in report["revenue_totals"])
        durations: dict[str, Any] = report["partners"]["time_to_first_deal"]
        return durations if durations["count"] == 1 and net == sourced else None

    undone_wait = await eventually(
        lambda: waited(undone, kept.amount), 60, what="undone's credits and reversal counted"
    )
    assert undone_wait["p50_hours"] == 30.0
    early_wait = await eventually(
        lambda: waited(early, before[early].amount), 60, what="early's credit counted"
    )
    assert early_wait["p50_hours"] == 0.0

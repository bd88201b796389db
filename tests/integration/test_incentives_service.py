"""Incentives as real processes on real Kafka + Postgres: credit -> earnings -> correction ->
clawback, redelivery paying once, concurrent MDF claim approvals on two instances, reversals
arriving before their credit, dead letters, partner isolation and the append-only ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued
from shared.events.crm import Customer
from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import (
    ATTRIBUTION_CREDITS,
    INCENTIVE_LEDGER,
    PARTNER_LIFECYCLE,
    PARTNER_NOTIFICATIONS,
)
from tests.support.factories import credit_issued, credit_reversed, partner_state_changed
from tests.support.incentives import (
    partner_at_tier,
    partner_known,
    publish_credits,
    publish_partner,
)
from tests.support.infra import Infra
from tests.support.kafka import keyed_headers, publish, send_envelopes, wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes
from tests.support.tokens import FINANCE

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture(scope="module")
async def instances(infra: Infra) -> AsyncIterator[list[str]]:
    """Two incentives processes sharing the incentives schema and consumer groups."""
    async with service_processes(infra, "incentives", count=2) as urls:
        yield urls


def customer(domain: str = "", country: str = "DE") -> Customer:
    """A customer of its own: its name too (one name is one customer, as deals matches them)."""
    return Customer(name=f"Customer {domain or 'without domain'}", domain=domain, country=country)


def ai_credit(partner: str, deal: str, amount: str, domain: str, **fields: Any) -> CreditIssued:
    """`partner`'s credit on `deal` for AI, a strategic product, sold to the customer at
    `domain`."""
    return credit_issued(
        partner_id=partner,
        deal_key=deal,
        amount=amount,
        customer=customer(domain),
        products=("ai",),
        **fields,
    )


def wrap(payload: EventPayload, subject: str) -> Envelope[Any]:
    return Envelope.wrap(payload, source="pollinate/attribution", subject=subject)


async def balance_is(client: httpx.AsyncClient, url: str, partner_id: str, expected: str) -> Any:
    async def check() -> Any:
        body = (
            await client.get(f"{url}/partners/{partner_id}/balance", headers=auth(partner_id))
        ).json()
        return body if body["balance"] == expected else None

    return await eventually(check)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


async def test_credit_earns_correction_claws_back_and_redelivery_pays_once(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    run, since = uuid.uuid4().hex[:10], datetime.now(UTC)
    partner, deal, domain = f"p-inc-{run}", f"salesforce:deal-{run}", f"{run}.example"
    await partner_at_tier(infra, admin_db, partner, "gold")

    # Gold 5 % + new logo 3 % + strategic product 2 % + co-sell 1 % + new region 1 % = 12 %.
    first = ai_credit(partner, deal, "100000.00", domain, co_sell=True)
    envelope, same_credit_new_event = wrap(first, deal), wrap(first, deal)
    await send_envelopes(
        infra, ATTRIBUTION_CREDITS.name, deal, envelope, envelope, same_credit_new_event
    )

    async with httpx.AsyncClient(timeout=30) as client:
        url = instances[0]
        body = await balance_is(client, url, partner, "12000.00")
        assert (body["earned"], body["reversed"], body["mdf"]["available"]) == (
            "12000.00",
            "0.00",
            "2000.00",
        )
        rules = await admin_db.fetch(
            """SELECT rule, amount FROM incentives.ledger_entries WHERE credit_id = $1
               ORDER BY rule""",
            first.credit_id,
        )
        assert [(r["rule"], str(r["amount"])) for r in rules] == [
            ("base:gold", "5000.00"),
            ("kicker:co_sell", "1000.00"),
            ("kicker:new_logo", "3000.00"),
            ("kicker:new_region", "1000.00"),
            ("kicker:strategic_product", "2000.00"),
        ]

        # Correction: attribution reverses the credit and re-issues it at 80 000.
        corrected = ai_credit(
            partner, deal, "80000.00", domain, co_sell=True, replaces=first.credit_id
        )
        await publish_credits(infra, credit_reversed(first), corrected)
        await balance_is(client, url, partner, "9600.00")  # still new logo: the same deal

        statement = (
            await client.get(
                f"{url}/partners/{partner}/statement",
                params={"period": _period(first.close_date)},
                headers=auth(partner),
            )
        ).json()
        assert (statement["opening_balance"], statement["closing_balance"]) == ("0", "9600.00")
        assert [e["entry_type"] for e in statement["entries"]].count("reversal") == 5
        assert statement["totals_by_type"]["reversal"] == "-12000.00"
        assert sum(D(e["amount"]) for e in statement["entries"]) == D("9600.00")
        # The same quarter in the earnings by quarter: both earnings, the clawback, the net.
        earnings = (
            await client.get(f"{url}/partners/{partner}/earnings", headers=auth(partner))
        ).json()
        quarter = next(q for q in earnings["quarters"] if q["quarter"] == _period(first.close_date))
        assert (quarter["earned"], quarter["reversed"], quarter["net"]) == (
            "21600.00",
            "-12000.00",
            "9600.00",
        )

        # Full reversal (deal lost): back to exactly zero, MDF too.
        final = credit_reversed(corrected)
        await publish_credits(infra, final)
        body = await balance_is(client, url, partner, "0.00")
        assert body["mdf"]["available"] == "0.00"

        # Redelivery of the reversal, then a sentinel credit on the same key (same partition,
        # processed after it): once the sentinel is booked, the duplicate was already handled.
        sentinel = ai_credit(partner, deal, "1000.00", domain)
        await send_envelopes(
            infra,
            ATTRIBUTION_CREDITS.name,
            deal,
            wrap(final, deal),
            wrap(final.model_copy(update={"reversal_id": "rv-again"}), deal),
            wrap(sentinel, deal),
        )
        # base 50 + new logo 30 + strategic 20 + new region 10 (co-sell off) = 110.
        await balance_is(client, url, partner, "110.00")
        reversals = await admin_db.fetchval(
            """SELECT count(*) FROM incentives.ledger_entries
               WHERE partner_id = $1 AND entry_type = 'reversal'""",
            partner,
        )
        assert reversals == 10

    # Published: each credit's booking once, carrying each earning with the rule, the credit
    # and the credit's ingested_at.
    def complete(found: list[dict[str, Any]]) -> bool:
        types = types_of(found)
        return (
            types.count("incentive.credit_booked.v1") >= 3
            and types.count("incentive.reversed.v1") >= 12
        )

    events = await wait_for_keyed(
        infra.kafka, INCENTIVE_LEDGER.name, partner, complete, since=since
    )
    bookings = [e["data"] for e in events if e["type"] == "incentive.credit_booked.v1"]
    assert [b["credit_id"] for b in bookings] == [
        first.credit_id,
        corrected.credit_id,
        sentinel.credit_id,
    ]
    earned = [line for b in bookings for line in b["earnings"]]
    assert len(earned) == 14  # 5 + 5 + 4 (sentinel): the duplicates paid nothing
    first_earned = [e for e in earned if e["credit_id"] == first.credit_id]
    assert {e["program_rule"] for e in first_earned} == {r["rule"] for r in rules}
    assert {datetime.fromisoformat(e["ingested_at"]) for e in first_earned} == {first.ingested_at}
    reversed_ = [e["data"] for e in events if e["type"] == "incentive.reversed.v1"]
    assert sorted((e["ledger"], e["credit_id"]) for e in reversed_) == sorted(
        [("incentive", first.credit_id)] * 5
        + [("mdf", first.credit_id)]
        + [("incentive", corrected.credit_id)] * 5
        + [("mdf", corrected.credit_id)]
    )
    accrued = [b["mdf_accrued"] for b in bookings if b["mdf_accrued"] is not None]
    assert sorted(e["amount"] for e in accrued) == ["1600.00", "20.00", "2000.00"]

    def notified(found: list[dict[str, Any]]) -> bool:
        kinds = [e["data"]["kind"] for e in found]
        return kinds.count("earning") >= 3 and kinds.count("clawback") >= 2

    notes = await wait_for_keyed(
        infra.kafka, PARTNER_NOTIFICATIONS.name, partner, notified, since=since
    )
    assert sorted(n["data"]["kind"] for n in notes) == ["clawback", "clawback"] + ["earning"] * 3


def _period(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


async def test_concurrent_claim_approvals_never_overdraw_the_fund(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    run, since = uuid.uuid4().hex[:10], datetime.now(UTC)
    partner, other, deal = f"p-mdf-{run}", f"p-other-{run}", f"hubspot:deal-{run}"
    await partner_at_tier(infra, admin_db, partner, "gold")
    issued = credit_issued(
        partner_id=partner, deal_key=deal, amount="100000.00", customer=customer(f"{run}.example")
    )
    await publish_credits(infra, issued)

    async with httpx.AsyncClient(timeout=60) as client:

        async def funded() -> bool:
            fund = (
                await client.get(f"{instances[0]}/partners/{partner}/mdf", headers=auth(partner))
            ).json()
            return bool(fund["available"] == "2000.00")

        await eventually(funded)
        claims = []
        for i in range(10):
            response = await client.post(
                f"{instances[i % 2]}/mdf/claims",
                json={
                    "amount": "300.00",
                    "description": f"event {i}",
                    "proof_reference": f"INV-{run}-{i}",
                },
                headers=auth(partner),
            )
            assert response.status_code == 201, response.text
            claims.append(response.json()["claim_id"])

        # Another partner cannot see them; a partner cannot decide.
        hidden = await client.get(f"{instances[0]}/mdf/claims/{claims[0]}", headers=auth(other))
        assert hidden.status_code == 404
        forbidden = await client.post(
            f"{instances[0]}/mdf/claims/{claims[0]}/decision",
            json={"approve": True},
            headers=auth(partner),
        )
        assert forbidden.status_code == 403

        decisions = await asyncio.gather(
            *(
                client.post(
                    f"{instances[i % 2]}/mdf/claims/{claim_id}/decision",
                    json={"approve": True, "note": "receipts checked"},
                    headers=ADMIN,
                )
                for i, claim_id in enumerate(claims)
            )
        )
        codes = sorted(r.status_code for r in decisions)
        assert codes == [200] * 6 + [409] * 4
        refused = [r.json()["detail"] for r in decisions if r.status_code == 409]
        assert set(refused) == {"claim of 300.00 exceeds the available fund of 200.00"}

        fund = (
            await client.get(f"{instances[1]}/partners/{partner}/mdf", headers=auth(partner))
        ).json()
        assert (fund["available"], fund["ledger_balance"], fund["deficit"]) == (
            "200.00",
            "200.00",
            "0.00",
        )
        approved = next(c for c, r in zip(claims, decisions, strict=True) if r.status_code == 200)
        again = await client.post(
            f"{instances[0]}/mdf/claims/{approved}/decision", json={"approve": False}, headers=ADMIN
        )
        assert again.status_code == 409
        assert again.json()["detail"] == f"claim {approved} is already approved"
        # A claim larger than the fund is refused at request time too.
        too_big = await client.post(
            f"{instances[0]}/mdf/claims",
            json={"amount": "200.01", "description": "booth", "proof_reference": "x"},
            headers=auth(partner),
        )
        assert too_big.status_code == 409
        still_requested = await admin_db.fetchval(
            "SELECT count(*) FROM incentives.mdf_claims WHERE partner_id = $1 AND status = 'requested'",
            partner,
        )
        assert still_requested == 4

    def decided(found: list[dict[str, Any]]) -> bool:
        return types_of(found).count("incentive.mdf_claim_decided.v1") >= 6

    events = await wait_for_keyed(infra.kafka, INCENTIVE_LEDGER.name, partner, decided, since=since)
    outcomes = [e["data"] for e in events if e["type"] == "incentive.mdf_claim_decided.v1"]
    assert len(outcomes) == 6
    assert sorted(D(o["fund_available"]) for o in outcomes) == [
        D("200.00"),
        D("500.00"),
        D("800.00"),
        D("1100.00"),
        D("1400.00"),
        D("1700.00"),
    ]


async def test_reversal_before_its_credit_is_parked_and_bad_events_are_dead_lettered(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    run = uuid.uuid4().hex[:10]
    partner, deal = f"p-park-{run}", f"aws_ace:deal-{run}"
    # The tier projection ignores an older snapshot arriving late.
    await publish_partner(infra, partner, "platinum", version=2)
    await publish_partner(infra, partner, "silver", version=1)
    # Partner snapshots and credits are different topics: no order between them, so the test
    # waits for the projection before the credits (else a credit may earn at the default tier).
    await partner_known(admin_db, partner, "platinum")
    late = ai_credit(partner, deal, "5000.00", f"{run}.example")
    # Published in the wrong order: the reversal first.
    await publish_credits(infra, credit_reversed(late), late)

    async def booked_and_reversed() -> bool:
        return bool(
            await admin_db.fetchval(
                "SELECT reversal_id IS NOT NULL FROM incentives.credits WHERE credit_id = $1",
                late.credit_id,
            )
        )

    await eventually(booked_and_reversed)
    rows = await admin_db.fetch(
        "SELECT entry_type, rule, amount FROM incentives.ledger_entries WHERE credit_id = $1",
        late.credit_id,
    )
    assert sum(r["amount"] for r in rows) == 0
    assert ("accrual", "base:platinum", D("350.00")) in [tuple(r) for r in rows]
    assert [r["entry_type"] for r in rows].count("reversal") == len(rows) // 2
    assert (
        await admin_db.fetchval(
            "SELECT count(*) FROM incentives.pending_reversals WHERE credit_id = $1", late.credit_id
        )
        == 0
    )

    # Dead letters, with the reason: wrong currency; reversal not matching its credit.
    euro_deal = f"aws_ace:eur-{run}"
    euro = credit_issued(partner_id=partner, deal_key=euro_deal, amount="10.00", currency="EUR")
    await publish_credits(infra, euro)
    bad_deal = f"aws_ace:bad-{run}"
    good = credit_issued(partner_id=partner, deal_key=bad_deal, amount="10.00")
    await publish_credits(infra, good, credit_reversed(good, amount=D("9.99")))

    def one(found: list[dict[str, str]]) -> bool:
        return len(found) >= 1

    euro_dead = await keyed_headers(infra, "incentives.dlq.v1", euro_deal, one)
    assert "is in EUR; the incentive programs pay in USD" in euro_dead[0]["dlq.reason"]
    bad = await keyed_headers(infra, "incentives.dlq.v1", bad_deal, one)
    assert "does not match credit" in bad[0]["dlq.reason"]
    assert "amount 9.99 != credit's 10.00" in bad[0]["dlq.reason"]
    # Nothing half-written for the rejected reversal: the credit still stands.
    assert (
        await admin_db.fetchval(
            "SELECT reversal_id FROM incentives.credits WHERE credit_id = $1", good.credit_id
        )
        is None
    )


async def test_api_isolation_what_if_payout_and_append_only_ledger(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    run = uuid.uuid4().hex[:10]
    partner, other, deal = f"p-api-{run}", f"p-api2-{run}", f"microsoft:deal-{run}"
    await partner_at_tier(infra, admin_db, partner, "silver")
    url = instances[1]
    async with httpx.AsyncClient(timeout=30) as client:
        what_if = await client.post(
            f"{url}/what-if",
            json={
                "amount": "10000.00",
                "customer_domain": f"{run}.example",
                "customer_country": "US",
                "products": ["mainframe-migration"],
            },
            headers=auth(partner),
        )
        assert what_if.status_code == 200, what_if.text
        answer = what_if.json()
        # silver 3 % + new logo 3 % + legacy migration 2 % + new region 1 %.
        assert (answer["tier"], answer["total"], answer["mdf_accrual"]) == (
            "silver",
            "900.00",
            "200.00",
        )
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM incentives.credits WHERE partner_id = $1", partner
            )
            == 0
        )  # nothing stored

        bad = await client.post(
            f"{url}/what-if", json={"amount": "-1", "colour": "red"}, headers=auth(partner)
        )
        assert bad.status_code == 422
        locations = {tuple(e["loc"]) for e in bad.json()["detail"]}
        assert locations == {("body", "amount"), ("body", "colour")}
        unauthenticated = await client.get(f"{url}/partners/{partner}/balance")
        assert unauthenticated.status_code == 401
        others = await client.get(f"{url}/partners/{partner}/balance", headers=auth(other))
        assert others.status_code == 404
        programs = (await client.get(f"{url}/programs", headers=auth(other))).json()
        assert programs["programs"]["base_rates"]["silver"] == "0.03"

        # The same deal for real books exactly what the what-if said.
        real = credit_issued(
            partner_id=partner,
            deal_key=deal,
            amount="10000.00",
            customer=customer(f"{run}.example", "US"),
            products=("mainframe-migration",),
        )
        await publish_credits(infra, real)
        await balance_is(client, url, partner, answer["total"])
        payout = await client.post(
            f"{url}/partners/{partner}/payouts",
            json={"amount": "400.00", "reference": f"wire-{run}"},
            headers=auth(partner),
        )
        assert payout.status_code == 403
        # Payouts are finance's: not even a channel manager records one.
        payout = await client.post(
            f"{url}/partners/{partner}/payouts",
            json={"amount": "400.00", "reference": f"wire-{run}"},
            headers=ADMIN,
        )
        assert payout.json() == {"detail": "this needs the role finance"}
        payout = await client.post(
            f"{url}/partners/{partner}/payouts",
            json={"amount": "400.00", "reference": f"wire-{run}"},
            headers=FINANCE,
        )
        assert payout.status_code == 201, payout.text
        assert payout.json()["balance_after"] == "500.00"
        overpay = await client.post(
            f"{url}/partners/{partner}/payouts",
            json={"reference": "x", "amount": "500.01"},
            headers=FINANCE,
        )
        assert overpay.status_code == 409
        body = await balance_is(client, url, partner, "500.00")
        assert body["paid"] == "-400.00"

    # The ledger refuses edits, even from the owning role.
    owner = await asyncpg.connect(infra.dsn_for("incentives_svc", "incentives_svc"))
    try:
        with pytest.raises(
            asyncpg.exceptions.RestrictViolationError, match="append-only: UPDATE refused"
        ):
            await owner.execute(
                "UPDATE incentives.ledger_entries SET amount = 0 WHERE partner_id = $1", partner
            )
        with pytest.raises(
            asyncpg.exceptions.RestrictViolationError, match="append-only: DELETE refused"
        ):
            await owner.execute("DELETE FROM incentives.mdf_entries WHERE partner_id = $1", partner)
    finally:
        await owner.close()


async def test_a_partner_what_if_never_reveals_another_partners_customer(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """The attack: a partner's what-if on a customer said `new_logo: false` when another
    partner had already won it, revealing that partner's business. Now only the partner's own
    deals may make a customer not new to it; managers still see the truth."""
    run = uuid.uuid4().hex[:10]
    owner, prober = f"p-own-{run}", f"p-probe-{run}"
    for partner in (owner, prober):
        await partner_at_tier(infra, admin_db, partner, "silver")
    url = instances[0]
    body = {"amount": "10000.00", "customer_domain": f"{run}.example", "customer_country": "US"}
    async with httpx.AsyncClient(timeout=30) as client:
        before = (await client.post(f"{url}/what-if", json=body, headers=auth(owner))).json()
        assert before["new_logo"] is True
        # No credited deal yet: the note all the same (its absence told a prober the same as
        # a manager's `new_logo: true`).
        assert before["notes"][0].startswith("new logo assumed")
        real = credit_issued(
            partner_id=owner,
            deal_key=f"microsoft:deal-{run}",
            amount="10000.00",
            customer=customer(f"{run}.example", "US"),
        )
        await publish_credits(infra, real)
        await balance_is(client, url, owner, before["total"])

        probed = await client.post(f"{url}/what-if", json=body, headers=auth(prober))
        assert probed.status_code == 200, probed.text
        assert probed.json()["new_logo"] is True
        assert probed.json()["notes"][0].startswith("new logo assumed")
        assert owner not in probed.text
        # Naming the owner's deal as its own (it is the customer's first) tells nothing more.
        named = {**body, "deal_key": real.deal_key}
        naming = await client.post(f"{url}/what-if", json=named, headers=auth(prober))
        assert (naming.json()["new_logo"], naming.json()["notes"]) == (
            True,
            probed.json()["notes"],
        )
        # its own customer is not new to the owner; a manager sees the customer is not new
        own = (await client.post(f"{url}/what-if", json=body, headers=auth(owner))).json()
        managed = await client.post(
            f"{url}/what-if", json={**body, "partner_id": prober}, headers=ADMIN
        )
    assert own["new_logo"] is False
    assert managed.json()["new_logo"] is False


async def lived(
    infra: Infra,
    admin_db: asyncpg.Connection[Any],
    partner: str,
    versions: list[tuple[PartnerStatus, str, int]],
) -> None:
    """Onboarding announces the partner's versions, each (status, tier, hours ago), and
    incentives has heard the last."""
    now = datetime.now(UTC)
    changes = [
        partner_state_changed(
            partner_id=partner,
            version=n,
            status=status,
            tier=tier,
            changed_at=now - timedelta(hours=hours_ago),
        )
        for n, (status, tier, hours_ago) in enumerate(versions, 1)
    ]
    await publish(infra, PARTNER_LIFECYCLE, changes, subject=partner, source="onboarding")

    async def heard() -> bool:
        version = await admin_db.fetchval(
            "SELECT version FROM incentives.partners WHERE partner_id = $1", partner
        )
        return bool(version == len(versions))

    await eventually(heard)


async def test_a_credit_is_judged_by_its_partner_as_it_was_when_the_credit_was_issued(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """Credits and lifecycle changes are two topics read by two consumer groups. Found in
    review: a credit was judged by the partner as incentives held it when it got to the
    credit, so whichever group lagged decided what it earned. One partner was suspended after
    its credit was issued (heard first): it earns, at its tier then. Another's credit was
    issued while it was suspended and heard after its reinstatement: it earns nothing."""
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    kept, lapsed = f"p-then-{run}", f"p-susp-{run}"
    lives = {
        kept: [(PartnerStatus.ACTIVE, "gold", 3), (PartnerStatus.SUSPENDED, "silver", 1)],
        lapsed: [
            (PartnerStatus.ACTIVE, "gold", 4),
            (PartnerStatus.SUSPENDED, "gold", 3),
            (PartnerStatus.ACTIVE, "gold", 1),
        ],
    }
    for partner, versions in lives.items():
        await lived(infra, admin_db, partner, versions)
    issued = now - timedelta(hours=2)  # after the first change of each, before the next
    credits = {
        p: credit_issued(partner_id=p, amount="100000.00", issued_at=issued, customer=customer())
        for p in lives
    }
    for credit in credits.values():
        await publish_credits(infra, credit)

    async def judged() -> dict[str, Any] | None:
        rows = await admin_db.fetch(
            "SELECT partner_id, tier, notes FROM incentives.credits WHERE credit_id = ANY($1)",
            [c.credit_id for c in credits.values()],
        )
        return {r["partner_id"]: r for r in rows} if len(rows) == 2 else None

    rows = await eventually(judged)
    assert rows[kept]["tier"] == "gold"  # as it was; silver and suspended since
    assert any("partner is suspended: not eligible" in n for n in rows[lapsed]["notes"])
    async with httpx.AsyncClient(timeout=30) as client:
        url = instances[0]
        # A manager reads them: the suspended partner's own token is refused (403) once
        # incentives has heard of the suspension, whenever that is.
        earned = await client.get(f"{url}/partners/{kept}/balance", headers=ADMIN)
        nothing = await client.get(f"{url}/partners/{lapsed}/balance", headers=ADMIN)
    assert D(earned.json()["balance"]) > 0
    assert D(nothing.json()["balance"]) == 0


async def test_a_correction_after_a_suspension_is_judged_as_the_deal_it_corrects_was(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: a re-issue after a correction (an amount changed by a cent) was judged
    by the partner at the correction; suspended since its win, the partner lost everything it
    had earned on the deal (the reversal took it back, the re-issue earned nothing)."""
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    partner = f"p-fix-{run}"
    lives = [(PartnerStatus.ACTIVE, "gold", 3), (PartnerStatus.SUSPENDED, "silver", 1)]
    await lived(infra, admin_db, partner, lives)
    won = credit_issued(
        partner_id=partner,
        amount="100000.00",
        issued_at=now - timedelta(hours=2),
        customer=customer(),
    )
    corrected = credit_issued(
        partner_id=partner,
        deal_key=won.deal_key,
        amount="100000.01",
        issued_at=now,
        customer=won.customer,
        replaces=won.credit_id,
        deal_revision=won.deal_revision + 1,
    )
    await publish_credits(infra, won)
    await publish_credits(infra, credit_reversed(won), corrected)

    async def booked() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await admin_db.fetchrow(
            "SELECT tier, notes FROM incentives.credits WHERE credit_id = $1", corrected.credit_id
        )
        return row

    row = await eventually(booked)
    assert row["tier"] == "gold"  # as at the win; silver and suspended since
    assert not any("not eligible" in note for note in row["notes"])
    async with httpx.AsyncClient(timeout=30) as client:
        balance = await client.get(f"{instances[0]}/partners/{partner}/balance", headers=ADMIN)
    assert D(balance.json()["balance"]) > 0


async def test_a_customer_whose_only_credited_deal_was_lost_is_a_new_logo_again(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: the customer's first credited deal stayed its first after that deal was
    lost and its credit reversed, so every later deal of the customer lost the new-logo kicker,
    though nothing of the customer stayed credited."""
    run = uuid.uuid4().hex[:10]
    partner, domain = f"p-logo-{run}", f"{run}-logo.example"
    await partner_at_tier(infra, admin_db, partner, "gold")
    lost = ai_credit(partner, f"salesforce:lost-{run}", "1000.00", domain)
    later = ai_credit(partner, f"salesforce:later-{run}", "1000.00", domain)
    await publish_credits(infra, lost)
    await publish_credits(infra, credit_reversed(lost))

    async def reversed_() -> bool:
        done = await admin_db.fetchval(
            "SELECT reversal_id IS NOT NULL FROM incentives.credits WHERE credit_id = $1",
            lost.credit_id,
        )
        return bool(done)

    await eventually(reversed_)
    await publish_credits(infra, later)

    async def kickers() -> list[str] | None:
        rows = await admin_db.fetch(
            "SELECT rule FROM incentives.ledger_entries WHERE credit_id = $1 ORDER BY seq",
            later.credit_id,
        )
        return [r["rule"] for r in rows] or None

    assert "kicker:new_logo" in await eventually(kickers)


async def test_a_customer_is_a_new_logo_once_under_every_key_it_is_known_by(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: one key, the domain else the name as typed, made one customer new again
    under each: its deal with a domain, then one from another CRM without a domain ("ACME
    Incorporated"), then one named with a Cyrillic A, each earned the new-logo kicker. Deals
    names the customer as it compares them (`folded_name`); every key is checked, and a
    clawback of the first deal forgets every key."""
    run = uuid.uuid4().hex[:10]
    partner, domain = f"p-keys-{run}", f"{run}-keys.example"
    folded = f"keys{run} trading"
    await partner_at_tier(infra, admin_db, partner, "gold")

    def named(deal: str, name: str, with_domain: bool) -> CreditIssued:
        known = Customer(
            name=name, domain=domain if with_domain else None, country="US", folded_name=folded
        )
        return credit_issued(
            partner_id=partner,
            deal_key=f"salesforce:{deal}-{run}",
            amount="1000.00",
            customer=known,
            products=("ai",),
        )

    first = named("first", f"Keys{run} Trading Inc", True)
    again = [
        named("again", f"KEYS{run} TRADING Incorporated", False),
        named("typed-otherwise", f"Typed otherwise {run}", False),
    ]

    async def kickers(credit: CreditIssued) -> list[str] | None:
        rows = await admin_db.fetch(
            "SELECT rule FROM incentives.ledger_entries WHERE credit_id = $1 ORDER BY seq",
            credit.credit_id,
        )
        return [r["rule"] for r in rows] or None

    for credit in (first, *again):
        await publish_credits(infra, credit)
        rules = await eventually(
            lambda booked=credit: kickers(booked), what=f"{credit.deal_key} booked"
        )
        assert ("kicker:new_logo" in rules) is (credit is first), (credit.deal_key, rules)
    # The first deal is lost: nothing of the customer stays first, under any of its keys.
    await publish_credits(infra, credit_reversed(first))
    await publish_credits(infra, credit_reversed(again[0]), credit_reversed(again[1]))

    async def forgotten() -> bool:
        left = await admin_db.fetchval(
            "SELECT count(*) FROM incentives.customers WHERE first_deal_key = $1", first.deal_key
        )
        return bool(left == 0)

    await eventually(forgotten, what="every key of the lost first deal forgotten")
    later = named("later", f"Something Else {run}", False)
    await publish_credits(infra, later)
    assert "kicker:new_logo" in await eventually(lambda: kickers(later), what="later booked")


async def test_a_credit_waits_for_the_partner_state_attribution_knew_when_it_issued_it(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: a credit issued just after the partner's suspension, booked before
    incentives' own partner consumer heard of it, earned at active rates (and one issued just
    after a reinstatement was refused for good). The credit names the partner version
    attribution knew; incentives holds it until it knows that version too, then judges it."""
    run = uuid.uuid4().hex[:10]
    partner = f"p-ver-{run}"
    await partner_at_tier(infra, admin_db, partner, "gold")  # version 1, active
    credit = credit_issued(
        partner_id=partner,
        deal_key=f"salesforce:ver-{run}",
        amount="1000.00",
        customer=customer(f"{run}-ver.example"),
        partner_version=2,
    )
    await publish_credits(infra, credit)

    async def held() -> str | None:
        reason: str | None = await admin_db.fetchval(
            "SELECT reason FROM incentives.held_credits WHERE credit_id = $1", credit.credit_id
        )
        return reason

    reason = await eventually(held, what="the credit held for the partner's version 2")
    assert reason == (
        f"partner {partner}'s state version 2 (which attribution knew when it issued the"
        " credit) not heard yet"
    )
    suspension = partner_state_changed(
        partner_id=partner,
        tier="gold",
        version=2,
        status=PartnerStatus.SUSPENDED,
        change=PartnerChange.SUSPENDED,
    )
    await publish(infra, PARTNER_LIFECYCLE, [suspension], subject=partner, source="onboarding")

    async def judged() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await admin_db.fetchrow(
            "SELECT notes FROM incentives.credits WHERE credit_id = $1", credit.credit_id
        )
        return row

    row = await eventually(judged, what="the credit judged once version 2 was heard")
    assert any("not eligible" in note for note in row["notes"]), row["notes"]
    earned = await admin_db.fetchval(
        "SELECT count(*) FROM incentives.ledger_entries WHERE credit_id = $1", credit.credit_id
    )
    assert earned == 0  # suspended when issued: not paid at active rates


async def test_a_credit_that_overtakes_its_partners_activation_is_held_then_paid(
    infra: Infra, instances: list[str], admin_db: asyncpg.Connection[Any]
) -> None:
    """The loss this prevents: a credit refused because incentives had not yet heard that its
    partner is active was never booked again. Now it waits, visible to channel managers and
    finance (not partners), and the partner's activation books it."""
    run = uuid.uuid4().hex[:10]
    partner, deal = f"p-held-{run}", f"salesforce:deal-{run}"
    early = ai_credit(partner, deal, "10000.00", f"{run}.example")
    await publish_credits(infra, early)
    url = instances[0]
    async with httpx.AsyncClient(timeout=30) as client:

        async def held() -> list[dict[str, Any]] | None:
            answer = await client.get(
                f"{url}/credits/held", params={"partner_id": partner}, headers=ADMIN
            )
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()
            return found or None

        [waiting] = await eventually(held)
        assert (waiting["credit_id"], waiting["deal_key"], waiting["amount"]) == (
            early.credit_id,
            deal,
            "10000.00",
        )
        assert waiting["reason"] == "partner not yet known to incentives: held until it is active"
        by_finance = await client.get(
            f"{url}/credits/held", params={"partner_id": partner}, headers=FINANCE
        )
        assert early.credit_id in [c["credit_id"] for c in by_finance.json()]
        assert (await client.get(f"{url}/credits/held", headers=auth(partner))).status_code == 403

        await publish_partner(infra, partner, "gold")
        # gold 5 % + new logo 3 % + strategic product 2 % + new region 1 %.
        await balance_is(client, url, partner, "1100.00")
        assert await held() is None

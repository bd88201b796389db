"""MDF claims once per (partner, proof reference), as an outside probe found them paid twice: a
partner posting one claim twice got two claims, both approved, the fund drawn twice. On a real
Postgres schema: concurrent repeats of a claim (with or without a pre-approval) record one, a
repeat answers with the recorded claim whatever it became since (never a second debit), other
money under the reference is a conflict naming both, the key refuses a second claim under one
reference whatever the timing, and claims recorded before holding one reference twice still
migrate. Over HTTP against a real process: twenty posts at once make one claim."""

from __future__ import annotations

import asyncio
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.incentives import mdf_preapprovals
from services.incentives.domain.claims import ClaimAsk, ClaimConflict
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.mdf_claims import ClaimRequested, decide_claim, request_claim
from services.incentives.mdf_preapprovals import PreapprovedClaimRequested
from shared.db import Pool, create_pool
from tests.support.factories import credit_issued
from tests.support.incentives import (
    MIGRATIONS,
    OUTBOX,
    apply_credit,
    ask,
    budget,
    decide,
    earning_partner,
    fund_state,
    funded_partner,
)
from tests.support.infra import (
    Infra,
    ScratchService,
    migrations_before,
    scratch_pool_fixture,
)
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration
D = Decimal
PROGRAMS = IncentivePrograms()  # gold MDF 2 %, USD
WEBINAR = ("0.50", "Same webinar", "INV-2026-001")


pool = scratch_pool_fixture("incentives", MIGRATIONS, max_size=20)


async def claim(
    pool: Pool, partner: str, amount: str, description: str, proof: str
) -> ClaimRequested:
    """A claim on the fund as `POST /mdf/claims` records it (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        asked = ClaimAsk(partner, D(amount), description, proof)
        return await request_claim(conn, PROGRAMS, asked)


async def claim_on(
    pool: Pool, partner: str, preapproval_id: str, amount: str, description: str, proof: str
) -> PreapprovedClaimRequested:
    """A claim against a pre-approval as its route records it (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        asked = ClaimAsk(partner, D(amount), description, proof)
        return await mdf_preapprovals.request_claim(conn, PROGRAMS, preapproval_id, asked)


async def approve(pool: Pool, claim_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await decide_claim(conn, OUTBOX, PROGRAMS, claim_id, approve=True, note="")


async def claims_of(pool: Pool, partner: str) -> list[tuple[str, Decimal, str]]:
    rows = await pool.fetch(
        """SELECT proof_reference, amount, status FROM mdf_claims WHERE partner_id = $1
           ORDER BY requested_at""",
        partner,
    )
    return [tuple(r) for r in rows]


async def test_concurrent_repeats_of_a_claim_record_it_once(pool: Pool) -> None:
    """Twenty copies of one claim at once on twenty connections (a form sent twice, a client
    retrying): one claim, every answer that claim, one of them new."""
    partner = await funded_partner(pool, PROGRAMS, "200.00")
    answers = await asyncio.gather(*(claim(pool, partner, *WEBINAR) for _ in range(20)))
    assert sorted(a.new for a in answers) == [False] * 19 + [True]
    assert len({a.claim_id for a in answers}) == 1
    assert {(a.amount, a.status) for a in answers} == {(D("0.50"), "requested")}
    assert await claims_of(pool, partner) == [("INV-2026-001", D("0.50"), "requested")]

    # The same against a pre-approval, under another reference.
    pa = await ask(pool, PROGRAMS, partner, budget("100.00"))
    await decide(pool, pa, approve=True)
    on = await asyncio.gather(
        *(claim_on(pool, partner, pa, "30.00", "booth", "INV-2026-002") for _ in range(20))
    )
    assert sorted(a.new for a in on) == [False] * 19 + [True]
    assert len({a.claim_id for a in on}) == 1
    assert {(a.amount, a.preapproval_left) for a in on} == {(D("30.00"), D("70.00"))}
    assert len(await claims_of(pool, partner)) == 2


async def test_a_proof_reference_names_one_claim_and_pays_once(pool: Pool) -> None:
    partner = await funded_partner(pool, PROGRAMS, "200.00")
    first = await claim(pool, partner, *WEBINAR)
    assert (first.new, first.status, first.fund_available) == (True, "requested", D("200.00"))
    # The same money written another way is the same claim.
    again = await claim(pool, partner, "0.5", "Same webinar", "INV-2026-001")
    assert (again.claim_id, again.amount, again.new) == (first.claim_id, D("0.50"), False)

    refusal = (
        f"proof reference INV-2026-001 already names claim {first.claim_id}, 0.50 USD for "
        "'Same webinar' from the fund; this request is {asked}: a claim on other "
        "spending needs its own proof reference"
    )
    for amount, description, asked in (
        ("0.60", "Same webinar", "0.60 USD for 'Same webinar' from the fund"),
        ("0.50", "Other webinar", "0.50 USD for 'Other webinar' from the fund"),
    ):
        with pytest.raises(ClaimConflict) as refused:
            await claim(pool, partner, amount, description, "INV-2026-001")
        assert refused.value.message == refusal.format(asked=asked)

    # Approved, the claim drew the fund once; a repeat answers with it as it is now, and is
    # not refused for a fund that no longer covers it.
    await approve(pool, first.claim_id)
    everything = await claim(pool, partner, "199.50", "The rest", "INV-2026-003")
    await approve(pool, everything.claim_id)
    assert (await fund_state(pool, partner))["available"] == "0.00"
    after = await claim(pool, partner, *WEBINAR)
    assert (after.claim_id, after.status, after.new) == (first.claim_id, "approved", False)
    assert after.fund_available == D("0.00")
    debits = await pool.fetchval(
        "SELECT count(*) FROM mdf_entries WHERE partner_id = $1 AND entry_type = 'claim'",
        partner,
    )
    assert debits == 2
    assert await claims_of(pool, partner) == [
        ("INV-2026-001", D("0.50"), "approved"),
        ("INV-2026-003", D("199.50"), "approved"),
    ]

    # Another partner's reference is its own.
    other = await funded_partner(pool, PROGRAMS, "10.00")
    assert (await claim(pool, other, *WEBINAR)).claim_id != first.claim_id
    # The longest reference beside the longest partner id, in four-byte characters, is a
    # claim like any (the key holds the reference's digest: as it is, it would not fit).
    rare = random.Random(7)  # characters that do not compress: the index sees every byte
    longest = "".join(chr(rare.randint(0x20000, 0x2A6DF)) for _ in range(200))
    await pool.execute("INSERT INTO partners VALUES ($1, 'gold', 'active', 1, now())", longest)
    await apply_credit(pool, PROGRAMS, credit_issued(partner_id=longest, amount="500.00"))
    proof = "".join(chr(rare.randint(0x20000, 0x2A6DF)) for _ in range(500))
    long_claim = await claim(pool, longest, "1.00", "booth", proof)
    assert (await claim(pool, longest, "1.00", "booth", proof)).claim_id == long_claim.claim_id

    # The key refuses a second claim under a reference whatever the timing; the references
    # are as append-only as the ledgers.
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await pool.execute(
            """INSERT INTO mdf_claim_references (partner_id, proof_reference, proof_digest,
                   claim_id)
               VALUES ($1, 'INV-2026-001', sha256('INV-2026-001'), $2)""",
            partner,
            everything.claim_id,
        )
    with pytest.raises(asyncpg.exceptions.RestrictViolationError, match="append-only"):
        await pool.execute("DELETE FROM mdf_claim_references WHERE partner_id = $1", partner)


async def test_a_proof_claimed_from_the_fund_or_a_pre_approval_is_claimed_once(
    pool: Pool,
) -> None:
    partner = await funded_partner(pool, PROGRAMS, "200.00")
    pa = await ask(pool, PROGRAMS, partner, budget("100.00"))
    await decide(pool, pa, approve=True)
    on = await claim_on(pool, partner, pa, "30.00", "booth", "INV-7")
    again = await claim_on(pool, partner, pa, "30.00", "booth", "INV-7")
    assert (again.claim_id, again.new, again.preapproval_left) == (on.claim_id, False, D("70.00"))

    # The same proof from the fund, or from another pre-approval, would pay it twice.
    with pytest.raises(ClaimConflict) as refused:
        await claim(pool, partner, "30.00", "booth", "INV-7")
    assert refused.value.message == (
        f"proof reference INV-7 already names claim {on.claim_id}, 30.00 USD for 'booth' "
        f"from pre-approval {pa}; this request is 30.00 USD for 'booth' from the fund: "
        "a claim on other spending needs its own proof reference"
    )
    fund_claim = await claim(pool, partner, "5.00", "flyers", "INV-8")
    with pytest.raises(ClaimConflict, match=re.escape(f"claim {fund_claim.claim_id}, 5.00")):
        await claim_on(pool, partner, pa, "5.00", "flyers", "INV-8")

    # Approved, then the pre-approval used up: a repeat still answers with the claim.
    await approve(pool, on.claim_id)
    rest = await claim_on(pool, partner, pa, "70.00", "stand", "INV-9")
    await approve(pool, rest.claim_id)
    after = await claim_on(pool, partner, pa, "30.00", "booth", "INV-7")
    assert (after.claim_id, after.status, after.preapproval_left) == (
        on.claim_id,
        "approved",
        D("0.00"),
    )
    assert len(await claims_of(pool, partner)) == 3


async def test_claims_recorded_twice_under_one_reference_before_still_migrate(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    """Before the references, a claim sent twice was recorded twice: both stay as they are
    (decided or not), and the first answers a repeat from now on."""
    before = migrations_before(MIGRATIONS, "0009_mdf_claim_references.sql", tmp_path / "migrations")
    assert sorted(p.name for p in before.iterdir())[-1] == "0008_payout_references.sql"
    await scratch_service.migrate("incentives", before)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=2)
    try:
        await pool.execute("INSERT INTO mdf_funds (partner_id, created_at) VALUES ('p-old', now())")
        for claim_id, proof, status, minutes in (
            ("old-2", "INV-1", "approved", 2),
            ("old-1", "INV-1", "approved", 1),
            ("old-3", "INV-2", "requested", 3),
        ):
            await pool.execute(
                """INSERT INTO mdf_claims (claim_id, partner_id, amount, currency, description,
                       proof_reference, status, requested_at)
                   VALUES ($1, 'p-old', 0.50, 'USD', 'Same webinar', $2, $3,
                       now() - make_interval(mins => $4))""",
                claim_id,
                proof,
                status,
                10 - minutes,
            )
        await scratch_service.migrate("incentives", MIGRATIONS)
        kept = await pool.fetch(
            "SELECT proof_reference, claim_id FROM mdf_claim_references ORDER BY 1"
        )
        assert [tuple(r) for r in kept] == [("INV-1", "old-1"), ("INV-2", "old-3")]
        assert await pool.fetchval("SELECT count(*) FROM mdf_claims") == 3  # none changed
        repeat = await claim(pool, "p-old", "0.50", "Same webinar", "INV-1")
        assert (repeat.claim_id, repeat.status, repeat.new) == ("old-1", "approved", False)
    finally:
        await pool.close()


incentives = service_fixture("incentives")


async def test_twenty_posts_of_one_claim_at_once_make_one_claim(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    """The probe's double submit, twenty times at once over HTTP: every answer a 201 naming
    the one claim; approving it draws the fund once; other money under the reference a 409."""
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
        amount, description, proof = WEBINAR
        body = {"amount": amount, "description": description, "proof_reference": proof}
        answers = await asyncio.gather(
            *(client.post("/mdf/claims", json=body, headers=auth(partner)) for _ in range(20))
        )
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json()["claim_id"] for a in answers}) == 1
        claim_id = answers[0].json()["claim_id"]
        stored = await admin_db.fetch(
            "SELECT claim_id FROM incentives.mdf_claims WHERE partner_id = $1", partner
        )
        assert [r["claim_id"] for r in stored] == [claim_id]
        recorded = await admin_db.fetchval(
            """SELECT count(*) FROM incentives.audit_log
               WHERE action = 'mdf_claim.request' AND subject = $1""",
            claim_id,
        )
        assert recorded == 1  # the request is recorded once, as it was made once

        decided = await client.post(
            f"/mdf/claims/{claim_id}/decision", json={"approve": True}, headers=ADMIN
        )
        assert decided.status_code == 200, decided.text
        again = await client.post("/mdf/claims", json=body, headers=auth(partner))
        assert (again.status_code, again.json()["claim_id"], again.json()["status"]) == (
            201,
            claim_id,
            "approved",
        )
        other = await client.post(
            "/mdf/claims", json={**body, "amount": "0.60"}, headers=auth(partner)
        )
        assert (other.status_code, other.json()["detail"]) == (
            409,
            f"proof reference INV-2026-001 already names claim {claim_id}, 0.50 USD for "
            "'Same webinar' from the fund; this request is 0.60 USD for 'Same webinar' "
            "from the fund: a claim on other spending needs its own proof reference",
        )
        debits = await admin_db.fetchval(
            """SELECT count(*) FROM incentives.mdf_entries
               WHERE partner_id = $1 AND entry_type = 'claim'""",
            partner,
        )
        assert debits == 1

"""A person's departure and their passed exam on a real Postgres schema, driven through
onboarding's own use cases in the one interleaving two concurrent requests can produce and a
test cannot time: the exam's request took its clock, the departure (with a later clock)
committed first, and the exam is applied after it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.onboarding.domain.programme import EXAM_BASE
from services.onboarding.enablement_schemas import PersonIn, StatementIn
from services.onboarding.people import add_person, leave
from services.onboarding.statements import receive
from shared.db import Pool
from shared.outbox import Outbox
from tests.support.infra import ROOT, scratch_pool_fixture
from tests.support.onboarding import SMALL, activated_partner

pytestmark = pytest.mark.integration

MIGRATIONS = Path(ROOT / "services" / "onboarding" / "migrations")
OUTBOX = Outbox("onboarding", "pollinate/onboarding")
BY = "enablement-system"


pool = scratch_pool_fixture("onboarding", MIGRATIONS)


async def person(pool: Pool, partner_id: str, email: str, role: str) -> str:
    async with pool.acquire() as conn, conn.transaction():
        body = PersonIn.model_validate({"email": email, "role": role})
        row, _ = await add_person(
            conn,
            OUTBOX,
            SMALL,
            partner_id,
            body,
            datetime.now(UTC),
            by="channel-manager@tests",
            as_partner=False,
        )
    person_id: str = row["person_id"]
    return person_id


async def passed(pool: Pool, email: str, track: str, role: str, at: datetime) -> None:
    """The learning system's statement that `email` passed the exam, received at `at`."""
    body = StatementIn.model_validate(
        {
            "actor": {"objectType": "Agent", "mbox": f"mailto:{email}"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"objectType": "Activity", "id": f"{EXAM_BASE}{track}/{role}"},
            "result": {"success": True},
            "timestamp": at.isoformat(),
        }
    )
    statement_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        await receive(
            conn,
            OUTBOX,
            SMALL,
            [(body.parsed(statement_id, at), body.content(statement_id))],
            at=at,
            by=BY,
            by_subject=BY,
        )


async def competencies(pool: Pool, partner_id: str) -> list[str]:
    held: list[str] = await pool.fetchval(
        "SELECT competencies FROM partners WHERE partner_id = $1", partner_id
    )
    return held


async def test_an_exam_applied_after_its_holders_departure_never_counts_them(pool: Pool) -> None:
    partner_id = await activated_partner(pool, OUTBOX, "Departing", certified=False)
    domain = f"departing-{uuid.uuid4().hex[:8]}.example"
    sid, tam = f"sid@{domain}", f"tam@{domain}"
    await person(pool, partner_id, sid, "sales")
    tam_id = await person(pool, partner_id, tam, "technical")
    await passed(pool, sid, "data", "sales", datetime.now(UTC))
    assert await competencies(pool, partner_id) == []  # one role of two: not yet

    exam_received = datetime.now(UTC)
    departed = exam_received + timedelta(milliseconds=5)
    async with pool.acquire() as conn, conn.transaction():
        await leave(conn, OUTBOX, SMALL, partner_id, tam_id, departed, at=departed, by=BY)
    await passed(pool, tam, "data", "technical", exam_received)

    # Tam passed while still a member, so the certification is theirs on record; but Tam has
    # left, and the partner's competencies are as of now, not as of the exam's request.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM certifications WHERE partner_id = $1 AND person = $2",
            partner_id,
            tam,
        )
        == 1
    )
    assert await competencies(pool, partner_id) == []

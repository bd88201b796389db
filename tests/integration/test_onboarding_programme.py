"""Onboarding's programme as a real process on real Kafka + Postgres: enablement announced for
attribution's health score, attribution's health kept; the programme year (notices, review,
probation with a plan, expulsion, appeal); partner account managers."""

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

from shared.events import Envelope
from shared.events.programme import PartnerEnablementMeasured
from shared.topics import PARTNER_HEALTH, PARTNER_PROGRAMME
from tests.support import kafka
from tests.support.factories import partner_health_scored
from tests.support.infra import Infra
from tests.support.onboarding import SMALL_PROGRAM, active_partner
from tests.support.polling import eventually
from tests.support.processes import ADMIN, service_processes
from tests.support.tokens import auth

pytestmark = pytest.mark.integration

PROGRAM: dict[str, Any] = {**SMALL_PROGRAM, "version": "programme-year-1"}


@pytest.fixture(scope="module")
async def onboarding(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config = Path(tmp_path_factory.mktemp("programme")) / "program.json"
    config.write_text(json.dumps(PROGRAM))
    env = {
        "ONBOARDING_CONFIG_FILE": str(config),
        # Tests drive the programme through the admin endpoints with an explicit as_of.
        "ONBOARDING_REQUALIFICATION_PERIOD_SECONDS": "86400",
    }
    async with service_processes(infra, "onboarding", env=env) as urls:
        yield urls[0]


async def test_enablement_is_announced_when_it_moves_and_health_scores_are_kept(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, f"signals-{run}.example", ADMIN)
        at = datetime.now(UTC)

        async def announce(as_of: datetime) -> dict[str, str]:
            answer = await client.post(
                f"{onboarding}/admin/enablement/announce",
                headers=ADMIN,
                json={"as_of": as_of.isoformat(), "partner_ids": [pid]},
            )
            assert answer.status_code == 200, answer.text
            announced: dict[str, str] = answer.json()["announced"]
            return announced

        assert await announce(at) == {pid: "0.0"}  # the first measurement
        assert await announce(at + timedelta(hours=1)) == {}  # unmoved, the same day
        assert await announce(at + timedelta(days=1)) == {pid: "0.0"}  # daily
        # A person certified and engaging moves the score: announced at once.
        person = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ADMIN,
            json={"email": f"ada@signals-{run}.example", "role": "sales"},
        )
        assert person.status_code == 201, person.text
        certified = await client.post(
            f"{onboarding}/partners/{pid}/certifications",
            headers=ADMIN,
            json={
                "person_email": f"ada@signals-{run}.example",
                "role": "sales",
                "track": "data",
                "issued_at": (at - timedelta(days=1)).isoformat(),
                "expires_at": (at + timedelta(days=300)).isoformat(),
            },
        )
        assert certified.status_code == 201, certified.text
        moved = await announce(at + timedelta(days=1, hours=1))
        assert moved == {pid: "25.0"}  # certified 1/1 at weight 0.25
        # A partner's people cannot make the announcement happen.
        me = auth(pid)
        refused = await client.post(f"{onboarding}/admin/enablement/announce", headers=me)
        assert refused.status_code == 403

        # Attribution's health scores: the newest day is kept, a late older one ignored.
        newer = partner_health_scored(partner_id=pid, day=at.date(), score=Decimal("71.5"))
        older = partner_health_scored(
            partner_id=pid, day=at.date() - timedelta(days=3), score=Decimal("12.0")
        )
        await kafka.publish(
            infra, PARTNER_HEALTH, [newer, older], subject=pid, source="attribution"
        )

        async def kept() -> Any:
            return await admin_db.fetchrow(
                "SELECT score, day FROM onboarding.partner_health WHERE partner_id = $1", pid
            )

        row = await eventually(kept)
        assert (row["score"], row["day"]) == (Decimal("71.5"), at.date())

    rows = await admin_db.fetch(
        "SELECT value FROM onboarding.outbox WHERE topic = $1 AND message_key = $2 "
        "ORDER BY position",
        PARTNER_PROGRAMME.name,
        pid,
    )
    measured = [
        Envelope[PartnerEnablementMeasured].model_validate_json(r["value"]).data for r in rows
    ]
    assert [(m.score, m.people, m.certified_share) for m in measured] == [
        (Decimal("0.0"), 0, None),
        (Decimal("0.0"), 0, None),
        (Decimal("25.0"), 1, Decimal("1.0000")),
    ]

"""Partner voice reaches the health score through real Kafka: programme's survey answers on
programme.voice.v1 are kept by attribution (a redelivered one counts once) and a falling NPS
moves the partner's health inputs, score, reasons and stored history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topics import PROGRAMME_VOICE
from tests.support.factories import survey_answered
from tests.support.infra import Infra
from tests.support.kafka import announce_partners, publish, send_envelopes
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration


service = service_fixture("attribution")


async def test_a_falling_nps_is_a_health_penalty_with_its_reason(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    pid = f"p-voice-{uuid.uuid4().hex[:8]}"
    await announce_partners(infra, pid)
    now = datetime.now(UTC)
    # The quarter before: three promoters (NPS 100). The last quarter: a promoter and two
    # detractors (NPS -33.3): a fall of 133 points and a detractor majority.
    before = [
        survey_answered(
            partner_id=pid, score=10, category="promoter", answered_at=now - timedelta(days=120 + i)
        )
        for i in range(3)
    ]
    last = [
        survey_answered(
            partner_id=pid, score=score, category=kind, answered_at=now - timedelta(days=10)
        )
        for score, kind in ((9, "promoter"), (3, "detractor"), (5, "detractor"))
    ]
    envelopes = await publish(
        infra, PROGRAMME_VOICE, before + last, subject=pid, source="programme"
    )
    # A redelivery of one answer is counted once.
    await send_envelopes(infra, PROGRAMME_VOICE.name, pid, envelopes[-1])

    async with httpx.AsyncClient(base_url=service, timeout=30) as client:

        async def health() -> dict[str, Any]:
            answer = await client.get(f"/partners/{pid}/health", headers=auth(pid))
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        async def heard() -> dict[str, Any] | None:
            body = await health()
            voice = body["inputs"]["voice"]
            settled = (
                voice["last_quarter"]["answers"] == 3 and voice["quarter_before"]["answers"] == 3
            )
            return body if settled else None

        scored = await eventually(heard)
        assert scored["inputs"]["voice"]["last_quarter"] == {
            "answers": 3,
            "promoters": 1,
            "passives": 0,
            "detractors": 2,
            "nps": "-33.3",
        }
        assert scored["inputs"]["voice"]["quarter_before"]["nps"] == "100.0"
        assert scored["components"]["voice_penalty"] == "10"
        assert scored["components"]["penalty"] == "10"
        assert any(
            r.startswith("voice trend negative: NPS fell 133.3 points") for r in scored["reasons"]
        )

        # The daily run stores the day with the voice penalty among its reasons (a run scores
        # only partners attribution knows: those partners.lifecycle.v1 announced).
        async def known() -> bool:
            held = await admin_db.fetchval(
                "SELECT count(*) FROM attribution.partner_access WHERE partner_id = $1", pid
            )
            return bool(held == 1)

        await eventually(known, what=f"{pid} in attribution.partner_access")
        run = await client.post(
            "/admin/health/run",
            headers=ADMIN,
            json={"as_of": now.isoformat(), "partner_ids": [pid]},
        )
        assert run.status_code == 200, run.text
        assert run.json()["done"] == {pid: ["scored", "announced"]}
        history = (await client.get(f"/partners/{pid}/health/history", headers=ADMIN)).json()
        [day] = history["days"]
        assert day["components"]["penalty"] == "10.00"
        assert any(r.startswith("voice trend negative") for r in day["reasons"])

    stored = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.voice_answers WHERE partner_id = $1", pid
    )
    assert stored == 6

"""The next tier on a real onboarding process (Kafka + Postgres): a partner's credits and
certifications become what it still lacks for the tier above, to the cent, and by when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.onboarding import (
    active_partner,
    attribute_revenue,
    certify,
    onboarding_fixture,
)
from tests.support.polling import eventually
from tests.support.processes import ADMIN
from tests.support.tokens import auth

pytestmark = pytest.mark.integration


onboarding = onboarding_fixture("next-tier")


async def test_next_tier_names_the_revenue_and_certifications_still_missing(
    infra: Infra, onboarding: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(
            client, onboarding, f"next-{uuid.uuid4().hex[:8]}.example", ADMIN
        )
        at = datetime.now(UTC)
        await attribute_revenue(infra, pid, "400.10", at)
        expires = at + timedelta(days=45)
        await certify(
            client,
            onboarding,
            pid,
            f"ada@{pid.replace('_', '-')}.example",
            "sales",
            "data",
            at - timedelta(days=1),
            expires,
        )

        async def counted() -> dict[str, Any] | None:
            answer = await client.get(f"{onboarding}/partners/{pid}/next-tier", headers=auth(pid))
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body if Decimal(body["attributed_revenue"]) > 0 else None

        found = await eventually(counted, 30, what="the credit counted in the next tier")
        other = await client.get(
            f"{onboarding}/partners/{pid}/next-tier", headers=auth(f"{pid}-other")
        )
    assert other.status_code == 404, other.text
    assert (found["tier"], found["next_tier"]) == ("registered", "silver")
    assert Decimal(found["attributed_revenue"]) == Decimal("400.10")
    assert Decimal(found["revenue_needed"]) == Decimal(1000)
    assert Decimal(found["revenue_short"]) == Decimal("599.90")
    assert found["currency"] == "USD"
    assert [(g["competency"], g["missing"]) for g in found["gaps"]] == [("data", 1), ("ai", 2)]
    assert found["gaps"][0]["reason"] == "data: 1 more technical certified person"
    assert found["unmet"] == [
        f"attributed revenue {found['attributed_revenue']} is below the silver minimum 1000",
        "0 competencies held (none), silver needs 1",
    ]
    assert found["lapses"] == []  # no competency held, none to lapse
    leaving = found["revenue_leaving"]
    assert leaving["on"] == (at.date() + timedelta(days=365)).isoformat()
    assert Decimal(leaving["amount"]) == Decimal("400.10")

"""The programme's partner projection on a real programme process, fed through real Kafka by
the programme's events as onboarding and attribution send them: account managers (the newest
assignment wins, a stale one changes nothing), annual reviews and appeals, health scores (the
newest day wins). A manager's book is a filter of the KPIs and a list of its own, and a
partner's plan shows its manager, tier and health now."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.events.programme import (
    AccountManagerAssigned,
    RequalificationAppealDecided,
    RequalificationDecided,
    RequalificationOutcome,
)
from shared.topics import PARTNER_HEALTH, PARTNER_LIFECYCLE, PARTNER_PROGRAMME
from tests.support import factories as f
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, tzinfo=UTC)
PLAN = {
    "currency": "USD",
    "goals": {
        "sourced_revenue": "1000.00",
        "certifications": 1,
        "new_logos": 1,
        "co_marketing_campaigns": 1,
    },
}


programme = service_fixture("programme")


def assigned(partner_id: str, manager: str, at: datetime) -> AccountManagerAssigned:
    return AccountManagerAssigned(
        partner_id=partner_id, manager=manager, assigned_by="cm@vendor.example", assigned_at=at
    )


async def tell(infra: Infra, partner_id: str, topic: Any, events: list[Any], source: str) -> None:
    await publish(infra, topic, events, subject=partner_id, source=source)


async def test_a_managers_book_filters_kpis_and_plans_show_the_partner_now(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:8]
    gsi, msp, other = (f"p-book-{name}-{run}" for name in ("gsi", "msp", "other"))
    ann, bob = f"ann-{run}@vendor.example", f"bob-{run}@vendor.example"
    for partner, kind in ((gsi, "gsi"), (msp, "msp"), (other, "gsi")):
        state = f.partner_state_changed(
            partner_id=partner, partner_type=kind, tier="gold", changed_at=AT
        )
        await tell(infra, partner, PARTNER_LIFECYCLE, [state], "onboarding")
    review = RequalificationDecided(
        review_id=f"rv-{run}",
        partner_id=gsi,
        review_on=date(2026, 6, 1),
        basis="annual",
        outcome=RequalificationOutcome.PROBATION,
        tier_before="gold",
        tier_after="gold",
        reasons=("attributed revenue 200 under the minimum 1000",),
        plan=("attributed revenue of at least 1000 (now 200)",),
        probation_until=date(2026, 8, 30),
        decided_at=AT + timedelta(days=92),
    )
    appeal = RequalificationAppealDecided(
        appeal_id=f"ap-{run}",
        review_id=review.review_id,
        partner_id=gsi,
        upheld=True,
        note="the revenue was booked late",
        decided_by="cm@vendor.example",
        decided_at=AT + timedelta(days=95),
    )
    await tell(
        infra, gsi, PARTNER_PROGRAMME, [assigned(gsi, ann, AT), review, appeal], "onboarding"
    )
    # msp moves from ann to bob; a stale assignment to ann arriving after it changes nothing.
    moves = [assigned(msp, ann, AT), assigned(msp, bob, AT + timedelta(days=2))]
    stale = [assigned(msp, ann, AT + timedelta(days=1))]
    await tell(infra, msp, PARTNER_PROGRAMME, moves + stale, "onboarding")
    await tell(infra, other, PARTNER_PROGRAMME, [assigned(other, bob, AT)], "onboarding")
    # Health: the newest day wins, an older day read late does not.
    newest = f.partner_health_scored(partner_id=gsi, day=date(2026, 6, 2), score=Decimal("71.5"))
    older = f.partner_health_scored(partner_id=gsi, day=date(2026, 6, 1), score=Decimal("40.0"))
    await tell(infra, gsi, PARTNER_HEALTH, [newest, older], "attribution")

    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:

        async def book_of(manager: str, **params: str) -> list[dict[str, Any]]:
            answer = await client.get(f"/managers/{manager}/partners", params=params, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            partners: list[dict[str, Any]] = answer.json()["partners"]
            return partners

        async def settled() -> bool:
            ann_book = await book_of(ann)
            bob_book = await book_of(bob)
            return (
                [p["partner_id"] for p in ann_book] == [gsi]
                and sorted(p["partner_id"] for p in bob_book) == sorted([msp, other])
                and ann_book[0]["health"] is not None
                and ann_book[0]["requalification"] is not None
                and ann_book[0]["requalification"]["appeal_upheld"] is not None
                and all(p["tier"] for p in bob_book)
            )

        await eventually(settled, 30, what="programme to hear the programme's events")
        [mine] = await book_of(ann)
        assert (mine["tier"], mine["partner_type"], mine["status"]) == ("gold", "gsi", "active")
        assert mine["health"] == {"score": "71.5", "previous_score": None, "day": "2026-06-02"}
        standing = mine["requalification"]
        assert (standing["outcome"], standing["standing"], standing["probation_until"]) == (
            "probation",
            "probation reversed on appeal",
            "2026-08-30",
        )
        # The book cut by the partner's type now.
        assert [p["partner_id"] for p in await book_of(bob, partner_type="msp")] == [msp]
        assert await book_of(f"nobody-{run}@vendor.example") == []
        # Onboarding records a manager in lower case; a route takes any case for it.
        assert [p["partner_id"] for p in await book_of(ann.upper())] == [gsi]
        # A page at a time, by partner id, with the count of them all.
        pages, after = [], None
        while True:
            paged = {"limit": 1, **({"after": after} if after else {})}
            answer = await client.get(f"/managers/{bob}/partners", params=paged, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            assert answer.json()["total"] == 2
            pages.append([p["partner_id"] for p in answer.json()["partners"]])
            after = answer.json()["next_after"]
            if after is None:
                break
        assert pages == [[p] for p in sorted([msp, other])]

        # The KPIs of a manager's book: bob's two partners, ann's one, a stranger's none.
        async def kpis(**params: Any) -> dict[str, Any]:
            answer = await client.get("/kpis", params=params, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            report: dict[str, Any] = answer.json()
            return report

        assert (await kpis(manager=bob))["partners"]["active"] == 2
        assert (await kpis(manager=bob.upper()))["partners"]["active"] == 2
        ann_kpis = await kpis(manager=ann)
        assert (ann_kpis["partners"]["active"], ann_kpis["filters"]["manager"]) == (1, ann)
        # Both filters: the partners asked for that are in the book.
        both = await kpis(manager=bob, partner_id=[gsi, msp])
        assert (both["partners"]["active"], both["filters"]["partner_ids"]) == (1, [msp])
        assert (await kpis(manager=f"nobody-{run}@vendor.example"))["partners"]["active"] == 0

        # A plan shows the partner now: manager, tier, health.
        plan = await client.put(f"/partners/{gsi}/plans/2026", headers=ADMIN, json=PLAN)
        assert plan.status_code == 200, plan.text
        shown = plan.json()["standing"]
        assert (shown["account_manager"], shown["tier"], shown["health"]["score"]) == (
            ann,
            "gold",
            "71.5",
        )
        # A partner's people see their own standing, never another's; channel managers only
        # read a book.
        assert (await client.get(f"/partners/{gsi}/standing", headers=auth(gsi))).status_code == 200
        hidden = await client.get(f"/partners/{gsi}/standing", headers=auth(msp))
        assert hidden.status_code == 404
        unknown = await client.get(f"/partners/p-unknown-{run}/standing", headers=ADMIN)
        assert unknown.status_code == 404
        refused = await client.get(f"/managers/{ann}/partners", headers=auth(gsi))
        assert refused.status_code == 403
        bad_type = await client.get(
            f"/managers/{ann}/partners", params={"partner_type": "pirate"}, headers=ADMIN
        )
        assert bad_type.status_code == 422

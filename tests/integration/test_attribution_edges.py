"""Attribution's edges as an outside probe found them, on the real process, Kafka and Postgres:
a CRM link is created only with a reference its confirm and remove routes can address; a health
run over named partners is bounded, scores each once and publishes nothing for a partner
attribution does not know; a deal closing at either end of the calendar is settled by the rules,
not dead-lettered with an OverflowError."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from shared.events.crm import CrmSource
from shared.events.opportunities import DealStateChanged
from shared.topics import DEAL_OPPORTUNITIES, PARTNER_HEALTH, PARTNER_LIFECYCLE
from tests.support.attribution import CrmDeal, approved_registration, closed_won
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import ADMIN, service_fixture

pytestmark = pytest.mark.integration


service = service_fixture("attribution")


# -- CRM links: created only with a reference the confirm and remove routes can address --------

# Hostile but addressable: each travels percent-encoded as one path segment and arrives exactly.
ADDRESSABLE = ["sp ace", "100%", "%2F", "a?b#c", "a\\b", "a;b=c", "...", ".hidden", "Zürich ①"]


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("a/b", "must not contain '/'"),
        ("/", "must not contain '/'"),
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
    ],
)
async def test_a_link_its_routes_could_never_address_is_refused_at_creation(
    service: str, admin_db: asyncpg.Connection, reference: str, reason: str
) -> None:
    partner = f"p-edges-{uuid.uuid4().hex[:8]}"
    body = {"source": "salesforce", "external_id": reference, "partner_id": partner}
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        refused = await client.post("/crm-links", headers=ADMIN, json=body)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "external_id"]
    assert reason in error["msg"]
    stored = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.crm_links WHERE partner_id = $1", partner
    )
    assert stored == 0


@pytest.mark.parametrize("reference", ADDRESSABLE)
async def test_every_link_created_can_be_confirmed_and_removed(
    service: str, reference: str
) -> None:
    body = {"source": "hubspot", "external_id": reference, "partner_id": "p-edges"}
    path = f"/crm-links/hubspot/{quote(reference, safe='')}"
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        proposed = await client.post("/crm-links", headers=ADMIN, json=body)
        assert proposed.status_code == 201, proposed.text
        confirmed = await client.post(
            f"{path}/confirm", headers=ADMIN, json={"partner_id": "p-edges"}
        )
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["link"]["external_id"] == reference
        removed = await client.post(f"{path}/remove", headers=ADMIN)
        assert removed.status_code == 200, removed.text
        again = await client.post(f"{path}/remove", headers=ADMIN)
        assert again.status_code == 404  # gone: the route reached the link both times


# -- health runs over named partners ---------------------------------------------------------


async def known_to_attribution(infra: Infra, admin_db: asyncpg.Connection, partner: str) -> None:
    """Onboarding announces the partner; attribution's partner projection holds it."""
    lifecycle = [partner_state_changed(partner_id=partner)]
    await publish(infra, PARTNER_LIFECYCLE, lifecycle, subject=partner, source="onboarding")

    async def projected() -> bool:
        held = await admin_db.fetchval(
            "SELECT count(*) FROM attribution.partner_access WHERE partner_id = $1", partner
        )
        return bool(held == 1)

    await eventually(projected, what=f"{partner} in attribution.partner_access")


async def test_a_health_run_scores_each_partner_named_once_and_no_unknown_one(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    known, unknown = f"p-run-{run}", f"p-nonexistent-{run}"
    await known_to_attribution(infra, admin_db, known)
    as_of = datetime.now(UTC) + timedelta(days=45)
    named = [known, unknown, known, unknown]
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        answer = await client.post(
            "/admin/health/run",
            headers=ADMIN,
            json={"as_of": as_of.isoformat(), "partner_ids": named},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["announced"] == {known: "0.0"}
        assert answer.json()["done"] == {known: ["scored", "announced"], unknown: ["not_found"]}
        too_many = await client.post(
            "/admin/health/run", headers=ADMIN, json={"partner_ids": [known] * 101}
        )
        assert too_many.status_code == 422, too_many.text
        [error] = too_many.json()["detail"]
        assert (error["loc"], error["type"]) == (["body", "partner_ids"], "too_long")

    published = await admin_db.fetch(
        "SELECT message_key FROM attribution.outbox WHERE topic = $1 AND message_key = ANY($2)",
        PARTNER_HEALTH.name,
        [known, unknown],
    )
    assert [r["message_key"] for r in published] == [known]
    stored = await admin_db.fetch(
        "SELECT partner_id, day FROM attribution.health_scores WHERE partner_id = ANY($1)",
        [known, unknown],
    )
    assert [(r["partner_id"], r["day"]) for r in stored] == [(known, as_of.date())]


# -- deals closing at the ends of the calendar -------------------------------------------------


async def settled(admin_db: asyncpg.Connection, deal_key: str) -> tuple[str, Any] | None:
    """The deal's active credits once it holds some, or the reason it was dead-lettered."""
    reason = await admin_db.fetchval(
        "SELECT headers->>'dlq.reason' FROM attribution.outbox "
        "WHERE topic = 'attribution.dlq.v1' AND message_key = $1",
        deal_key,
    )
    if reason is not None:
        return ("dead-lettered", reason)
    credits = await admin_db.fetch(
        """SELECT partner_id, kind, close_date FROM attribution.credits
           WHERE deal_key = $1 AND reversed_at IS NULL""",
        deal_key,
    )
    return ("credited", [tuple(c) for c in credits]) if credits else None


async def test_deals_at_the_ends_of_the_calendar_are_settled_without_an_overflow(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """An open deal may carry 9999-12-31 as "close date unknown" and is credited once won on a
    real day; a deal won on the calendar's last or first day is parked saying why (such a
    credit's date is Postgres' infinity: programme's KPIs answered 500 on it)."""
    run = uuid.uuid4().hex[:8]
    partner = f"p-calendar-{run}"
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        body = {"source": "salesforce", "external_id": partner, "partner_id": partner}
        assert (await client.post("/crm-links", headers=ADMIN, json=body)).status_code == 201
        path = f"/crm-links/salesforce/{partner}/confirm"
        confirmed = await client.post(path, headers=ADMIN, json={"partner_id": partner})
        assert confirmed.status_code == 200, confirmed.text
    placeholder, last, first = (
        CrmDeal(f"{name}-{run}", CrmSource.SALESFORCE) for name in ("open", "last", "first")
    )
    registration = approved_registration(f"reg-{run}", partner, days_ago=40)
    now = datetime.now(UTC)
    today = now.date()
    snapshots: list[tuple[CrmDeal, DealStateChanged]] = [
        (
            placeholder,
            placeholder.state(1, partner_ref=partner, close_date=date.max, changed_at=now),
        ),
        (
            placeholder,
            placeholder.state(
                2,
                registrations=(registration,),
                changed_at=now,
                **closed_won("500", "USD", partner, close_date=today),
            ),
        ),
        (
            last,
            last.state(1, changed_at=now, **closed_won("300", "USD", partner, close_date=date.max)),
        ),
        (
            first,
            first.state(
                1, changed_at=now, **closed_won("300", "USD", partner, close_date=date.min)
            ),
        ),
    ]
    for deal, snapshot in snapshots:
        await publish(infra, DEAL_OPPORTUNITIES, [snapshot], subject=deal.key, source="deals")

    outcome = await eventually(lambda: settled(admin_db, placeholder.key), what=placeholder.key)
    assert outcome == ("credited", [(partner, "sourced", today)])
    for deal, close in ((last, date.max), (first, date.min)):
        outcome = await eventually(lambda d=deal: settled(admin_db, d.key), what=deal.key)
        assert outcome is not None
        state, reason = outcome
        assert state == "dead-lettered", outcome
        assert f"close date {close} is not one a credit can carry" in reason, outcome

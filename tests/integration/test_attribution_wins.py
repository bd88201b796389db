"""What an outside probe found about won deals, on the real process, Kafka and Postgres: a
touchpoint stamped after the win takes no credit, even on the close day; a partner expelled
before the win gets none (its share withheld, parked for channel managers, the others' shares
unchanged); a won deal whose amount the CRM cleared holds no credit until it has one again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events.crm import CrmSource
from shared.events.opportunities import DealStateChanged
from shared.events.partners import PartnerChange, PartnerStatus
from shared.inputs import DEAL_KEY_MAX
from shared.topics import ATTRIBUTION_CREDITS, DEAL_OPPORTUNITIES, PARTNER_LIFECYCLE
from tests.support.attribution import CrmDeal, approved_registration, closed_won, parked_pages
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.outbox import event_json
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration


service = service_fixture("attribution")


async def active_credits(admin_db: asyncpg.Connection, deal_key: str) -> list[tuple[str, Decimal]]:
    rows = await admin_db.fetch(
        """SELECT partner_id, amount FROM attribution.credits
           WHERE deal_key = $1 AND reversed_at IS NULL ORDER BY partner_id""",
        deal_key,
    )
    return [(r["partner_id"], r["amount"]) for r in rows]


async def publish_deal(infra: Infra, deal: CrmDeal, *snapshots: DealStateChanged) -> None:
    await publish(infra, DEAL_OPPORTUNITIES, list(snapshots), subject=deal.key, source="deals")


def won_for(amount: str | None, won_at: datetime) -> dict[str, Any]:
    """A snapshot's fields: won on `won_at`'s day for `amount` (None: the CRM cleared it), no
    CRM partner named."""
    fields = closed_won(amount or "0", "USD", "", close_date=won_at.date())
    return fields | {"amount": None if amount is None else Decimal(amount), "partner_ref": None}


def touch(deal: CrmDeal, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "deal_key": deal.key,
        "kind": kind,
        "occurred_at": at.isoformat(),
        "source": "probe-app",
        **fields,
    }


async def test_a_touchpoint_after_the_win_takes_no_credit_even_on_the_close_day(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The probe: the sourcing partner, once the deal was won, reported an implementation and a
    technical validation stamped after the win (same day) and took the last touch from the
    co-selling partner (10000/10000 -> 12000/8000). Now a linked partner's report after the win
    waits for a manager, stamped after the win or before it; a manager's report stamped before
    the win still counts."""
    run = uuid.uuid4().hex[:8]
    sourcer, co_seller, late = (f"{p}-{run}" for p in ("src", "cosell", "late"))
    deal = CrmDeal(f"win-{run}", CrmSource.SALESFORCE)
    created_at = datetime.now(UTC) - timedelta(days=30)
    registration = approved_registration(f"reg-{run}", sourcer, days_ago=20)
    opened = deal.state(
        1, registrations=(registration,), created_at=created_at, changed_at=datetime.now(UTC)
    )
    await publish_deal(infra, deal, opened)
    meeting_at = datetime.now(UTC) - timedelta(minutes=1)
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        meeting = await client.post(
            "/touchpoints",
            headers=ADMIN,
            json=touch(deal, "co_sell_meeting", meeting_at, partner_id=co_seller),
        )
        assert meeting.status_code == 201, meeting.text
        won_at = datetime.now(UTC)
        won = deal.state(
            2,
            registrations=(registration,),
            created_at=created_at,
            changed_at=won_at + timedelta(milliseconds=200),
            ingested_at=won_at,
            **won_for("20000", won_at),
        )
        await publish_deal(infra, deal, won)
        credits = await eventually(lambda: active_credits(admin_db, deal.key))
        assert credits == [(co_seller, Decimal("10000.00")), (sourcer, Decimal("10000.00"))]

        after = won_at + timedelta(seconds=1)  # same day (or the next, past midnight)
        for kind in ("implementation", "technical_validation"):
            grab = await client.post(
                "/touchpoints", headers=auth(sourcer), json=touch(deal, kind, after)
            )
            assert grab.status_code == 201, grab.text
            assert grab.json()["counted"] is False
            assert grab.json()["settlement"]["issued"] == []
            explanation = grab.json()["settlement"]["explanation"]
            assert "not counted: reported after the deal was won, it waits" in explanation
        assert await active_credits(admin_db, deal.key) == credits
        # Found in review: stamped just before the win, a linked partner's report after it
        # counted and took its co-seller's share; it waits for a manager now.
        before = won_at - timedelta(seconds=1)
        backdated = await client.post(
            "/touchpoints", headers=auth(sourcer), json=touch(deal, "referral", before)
        )
        assert backdated.status_code == 201, backdated.text
        assert backdated.json()["counted"] is False
        waiting = await client.get(
            "/touchpoints/waiting", headers=ADMIN, params={"deal_key": deal.key}
        )
        assert backdated.json()["touchpoint_id"] in {t["touchpoint_id"] for t in waiting.json()}
        assert await active_credits(admin_db, deal.key) == credits

        # reported after the win by a manager, and it happened before it: the last touch
        referral = await client.post(
            "/touchpoints",
            headers=ADMIN,
            json=touch(deal, "referral", before, partner_id=late),
        )
        assert referral.status_code == 201, referral.text
        assert referral.json()["counted"] is True
    # position-based over three touchpoints: first 40%, middle 20%, last 40%
    assert await active_credits(admin_db, deal.key) == [
        (co_seller, Decimal("4000.00")),
        (late, Decimal("8000.00")),
        (sourcer, Decimal("8000.00")),
    ]


async def partner_status(
    infra: Infra,
    admin_db: asyncpg.Connection,
    partner: str,
    status: PartnerStatus,
    at: datetime,
    version: int,
) -> None:
    """Onboarding announces the partner's status (from `at`); attribution's partner projection
    holds it."""
    change = PartnerChange.EXPELLED if status is PartnerStatus.EXPELLED else PartnerChange.UPDATED
    event = partner_state_changed(
        partner_id=partner, status=status, changed_at=at, version=version, change=change
    )
    await publish(infra, PARTNER_LIFECYCLE, [event], subject=partner, source="onboarding")

    async def projected() -> bool:
        held = await admin_db.fetchval(
            "SELECT version FROM attribution.partner_access WHERE partner_id = $1", partner
        )
        return bool(held == version)

    await eventually(projected, what=f"{partner} {status.value} in attribution.partner_access")


async def issued_partner_versions(admin_db: asyncpg.Connection, deal_key: str) -> list[int]:
    """The `partner_version` of each credit attribution announced on the deal, in order."""
    rows = await admin_db.fetch(
        """SELECT value, value_codec FROM attribution.outbox
           WHERE topic = $1 AND message_key = $2 ORDER BY position""",
        ATTRIBUTION_CREDITS.name,
        deal_key,
    )
    events = [event_json(row) for row in rows]
    return [e["data"]["partner_version"] for e in events if e["type"] == "credit.issued.v1"]


async def credits_ever_issued_to(admin_db: asyncpg.Connection, partner: str) -> int:
    """Credits issued to the partner, reversed or not (each one was announced)."""
    count = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.credits WHERE partner_id = $1", partner
    )
    return int(count)


async def test_a_partner_expelled_before_the_win_gets_no_credit_and_its_share_is_withheld(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The probe: an expelled partner's linked deal closed won and attribution credited it
    20000.00 (counted in the KPIs and its revenue) although incentives books nothing. Now its
    share is withheld with the reason, the co-seller keeps exactly the share the model gives it,
    and a partner expelled only after a win keeps what it earned there."""
    run = uuid.uuid4().hex[:8]
    expelled, co_seller = f"expelled-{run}", f"cosell-{run}"
    now = datetime.now(UTC)
    await partner_status(
        infra, admin_db, expelled, PartnerStatus.ACTIVE, now - timedelta(days=90), 1
    )
    await partner_status(
        infra, admin_db, co_seller, PartnerStatus.ACTIVE, now - timedelta(days=90), 1
    )
    await partner_status(
        infra, admin_db, expelled, PartnerStatus.EXPELLED, now - timedelta(minutes=5), 2
    )
    deal = CrmDeal(f"exp-{run}", CrmSource.SALESFORCE)
    created_at = now - timedelta(days=30)
    registration = approved_registration(f"reg-{run}", expelled, days_ago=20)
    opened = deal.state(1, registrations=(registration,), created_at=created_at, changed_at=now)
    await publish_deal(infra, deal, opened)
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        meeting = await client.post(
            "/touchpoints",
            headers=ADMIN,
            json=touch(deal, "co_sell_meeting", now - timedelta(days=2), partner_id=co_seller),
        )
        assert meeting.status_code == 201, meeting.text
        won_at = datetime.now(UTC)
        won = deal.state(
            2,
            registrations=(registration,),
            created_at=created_at,
            changed_at=won_at,
            ingested_at=won_at,
            **won_for("20000", won_at),
        )
        await publish_deal(infra, deal, won)
        credits = await eventually(lambda: active_credits(admin_db, deal.key))
        # position-based over two touchpoints: 50/50; the expelled partner's half withheld
        assert credits == [(co_seller, Decimal("10000.00"))]
        assert await credits_ever_issued_to(admin_db, expelled) == 0
        # The credit names the partner version attribution knew (incentives waits for it).
        assert await issued_partner_versions(admin_db, deal.key) == [1]
        view = (await client.get(f"/deals/{deal.key}/attribution", headers=ADMIN)).json()
        [parked] = view["parked"]
        assert (parked["partner_id"], parked["kind"], parked["amount"]) == (
            expelled,
            "sourced",
            "10000.00",
        )
        assert f"partner {expelled} was expelled (since" in parked["reason"]
        assert f"when the deal was won at {won_at.isoformat()}" in parked["reason"]
        assert "withheld, not given to the deal's other partners" in parked["reason"]
        listed = [row for page in await parked_pages(client) for row in page]
        assert parked in listed
        refused = await client.get("/credits/parked", headers=auth(co_seller))
        assert refused.status_code == 403
        mine = await client.get(f"/deals/{deal.key}/attribution", headers=auth(co_seller))
        assert mine.json()["parked"] == []

        # the co-seller is expelled only after the win: an amount change re-settles the deal
        # and it keeps its (corrected) credit
        await partner_status(
            infra, admin_db, co_seller, PartnerStatus.EXPELLED, datetime.now(UTC), 2
        )
        bigger = deal.state(
            3,
            registrations=(registration,),
            created_at=created_at,
            changed_at=datetime.now(UTC),
            **won_for("30000", won_at),
        )
        await publish_deal(infra, deal, bigger)

        async def corrected() -> list[tuple[str, Decimal]] | None:
            held = await active_credits(admin_db, deal.key)
            return held if held != credits else None

        assert await eventually(corrected) == [(co_seller, Decimal("15000.00"))]
        assert await issued_partner_versions(admin_db, deal.key) == [1, 2]


async def test_a_won_deal_whose_amount_the_crm_cleared_is_parked_until_it_has_one(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The probe: the CRM cleared Amount on a won deal; attribution dead-lettered the snapshot
    and kept the credit at the old amount. Now the snapshot is applied, the credit reversed,
    the deal parked as won without an amount, and credited again when an amount arrives."""
    run = uuid.uuid4().hex[:8]
    partner = f"src-{run}"
    deal = CrmDeal(f"noamt-{run}", CrmSource.SALESFORCE)
    registration = approved_registration(f"reg-{run}", partner, days_ago=20)
    won_at = datetime.now(UTC)

    def revision(number: int, amount: str | None) -> DealStateChanged:
        return deal.state(
            number,
            registrations=(registration,),
            created_at=won_at - timedelta(days=30),
            changed_at=datetime.now(UTC),
            ingested_at=won_at if number == 1 else datetime.now(UTC),
            **won_for(amount, won_at),
        )

    await publish_deal(infra, deal, revision(1, "20000"))
    first = await eventually(lambda: active_credits(admin_db, deal.key))
    assert first == [(partner, Decimal("20000.00"))]

    await publish_deal(infra, deal, revision(2, None))

    async def reversed_and_parked() -> list[Any] | None:
        held = await active_credits(admin_db, deal.key)
        parked = await admin_db.fetch(
            "SELECT partner_id, reason FROM attribution.parked_credits WHERE deal_key = $1",
            deal.key,
        )
        return [tuple(r) for r in parked] if not held and parked else None

    parked = await eventually(reversed_and_parked)
    assert parked == [(None, "won without an amount: no credit until the CRM gives the deal one")]
    reversal = await admin_db.fetchval(
        "SELECT reversal_reason FROM attribution.credits WHERE deal_key = $1", deal.key
    )
    assert reversal.startswith("revision 2: amount 20000 USD -> None USD (won without an amount")
    dead = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.outbox WHERE topic = 'attribution.dlq.v1' "
        "AND message_key = $1",
        deal.key,
    )
    assert dead == 0
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        listed = [row for page in await parked_pages(client) for row in page]
    assert [p["reason"] for p in listed if p["deal_key"] == deal.key] == [parked[0][1]]

    await publish_deal(infra, deal, revision(3, "25000"))

    async def credited_again() -> list[tuple[str, Decimal]] | None:
        held = await active_credits(admin_db, deal.key)
        return held or None

    assert await eventually(credited_again) == [(partner, Decimal("25000.00"))]
    left = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.parked_credits WHERE deal_key = $1", deal.key
    )
    assert left == 0


async def test_parked_credits_page_whole_deals_in_key_order(
    service: str, admin_db: asyncpg.Connection
) -> None:
    """The list grows with every withheld share and every deal won without an amount: it
    comes a page of deals at a time, each deal's rows together on one page."""
    run = uuid.uuid4().hex[:8]
    # Deal 5's key is as long as a HubSpot key may be (two 200-character ids), past 200 itself.
    keys = {deal: f"salesforce:park-{run}-{deal}" for deal in range(1, 5)}
    keys[5] = f"hubspot:{'9' * 200}:park-{run}-5".ljust(DEAL_KEY_MAX, "x")
    rows = [
        (keys[deal], partner, kind)
        for deal, shares in ((1, 3), (2, 1), (3, 2), (4, 1), (5, 3))
        for partner, kind in ([(None, None)] if shares == 1 else [])
        + [(f"p{i}-{run}", "sourced") for i in range(shares if shares > 1 else 0)]
    ]
    await admin_db.executemany(
        """INSERT INTO attribution.parked_credits (deal_key, partner_id, kind, amount, currency,
               reason) VALUES ($1, $2, $3, CASE WHEN $2::text IS NULL THEN NULL ELSE 10 END,
               'USD', 'paging')""",
        rows,
    )
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        pages = await parked_pages(client, limit=2)
        refused = await client.get("/credits/parked", params={"limit": 501}, headers=ADMIN)
        past_the_longest = await client.get(
            "/credits/parked", params={"after": keys[5], "limit": 1}, headers=ADMIN
        )
    assert past_the_longest.status_code == 200, past_the_longest.text
    assert refused.status_code == 422
    keys_by_page = [[row["deal_key"] for row in page] for page in pages]
    assert all(len(set(keys)) <= 2 for keys in keys_by_page)
    every_key = [key for keys in keys_by_page for key in keys]
    in_key_order = await admin_db.fetch(
        "SELECT DISTINCT deal_key FROM attribution.parked_credits WHERE deal_key = ANY($1) "
        "ORDER BY deal_key",
        list(keys.values()),
    )  # the database's collation, whatever it is
    assert [key for key in dict.fromkeys(every_key) if key in keys.values()] == [
        r["deal_key"] for r in in_key_order
    ]
    pages_of_deal: dict[str, set[int]] = {}
    for number, keys in enumerate(keys_by_page):
        for key in keys:
            pages_of_deal.setdefault(key, set()).add(number)
    assert all(len(numbers) == 1 for numbers in pages_of_deal.values())
    ours = [
        (row["deal_key"], row["partner_id"], row["kind"])
        for page in pages
        for row in page
        if row["reason"] == "paging" and run in row["deal_key"]
    ]
    assert ours == sorted(rows, key=lambda r: (r[0], r[1] is not None, r[1] or ""))

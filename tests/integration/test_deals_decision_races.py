"""Deals' decisions on a scratch schema of real Postgres: against a partner's state changing at
the same moment (the two transactions interleaved by hand: what one commits, the other sees),
and judged at the request's own moment, not the database's clock."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.deals.domain.ledger import Principal, PrincipalKind
from services.deals.domain.rules import Decision, RegistrationRequest, RulesOfEngagement
from services.deals.partner_projection import apply_partner_state
from services.deals.registering import register
from shared.db import Connection
from shared.events.partners import PartnerChange, PartnerStatus
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox
from tests.support.deals import deals_pool
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra, waits_for
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
POLICY = RulesOfEngagement()


async def active(conn: Connection, *partners: str) -> None:
    """Deals hears that the partners are active (version 1)."""
    for partner in partners:
        await apply_partner_state(conn, partner_state_changed(partner_id=partner, version=1))


async def registered(conn: Connection, request: RegistrationRequest) -> tuple[str, Decision]:
    """The request decided and stored as its partner's people register it (no CRM link)."""
    outbox = Outbox("deals", source="pollinate/deals")
    principal = Principal(PrincipalKind.PARTNER, request.partner_id)
    return await register(conn, outbox, POLICY, request, None, principal)


async def test_a_partner_expelled_while_its_registration_is_decided_loses_it(
    infra: Infra,
) -> None:
    """Found in review: a registration decided on the partner as active, committed after the
    expulsion had looked for the partner's live registrations (at READ COMMITTED it could not
    see the uncommitted one): an expelled partner kept an approved registration. The decision
    now holds the partner's row, so the expulsion waits for it and closes it."""
    partner = f"p-race-{uuid.uuid4().hex[:8]}"
    request = request_of(partner, f"race-{partner}", datetime.now(UTC))
    expelled = partner_state_changed(
        partner_id=partner,
        status=PartnerStatus.EXPELLED,
        version=2,
        change=PartnerChange.EXPELLED,
        reason="terms breached",
    )
    async with deals_pool(infra) as pool:
        async with pool.acquire() as conn, conn.transaction():
            await active(conn, partner)
        async with pool.acquire() as deciding, pool.acquire() as expelling:
            decision = deciding.transaction()
            await decision.start()
            registration_id, decided = await registered(deciding, request)
            assert decided.status is RegistrationStatus.APPROVED
            deciding_pid = await deciding.fetchval("SELECT pg_backend_pid()")

            async def expel() -> None:
                async with expelling.transaction():
                    await apply_partner_state(expelling, expelled)

            expulsion = asyncio.create_task(expel())

            await eventually(
                lambda: waits_for(pool, deciding_pid),
                what="the expulsion to wait for the decision",
            )
            await decision.commit()
            await expulsion
        status = await pool.fetchval(
            "SELECT status FROM registrations WHERE registration_id = $1", registration_id
        )
    assert status == RegistrationStatus.EXPIRED.value


def request_of(partner: str, customer: str, at: datetime) -> RegistrationRequest:
    return RegistrationRequest(
        partner_id=partner,
        customer_name=f"{customer} Corp",
        customer_domain=f"{customer}.example",
        customer_country="US",
        products=frozenset({"data"}),
        amount=Decimal("1000"),
        currency="USD",
        submitted_at=at,
    )


async def test_a_holder_is_judged_at_the_requests_moment_not_the_databases(infra: Infra) -> None:
    """Found in review: whether an older registration still held its customer was asked of the
    database's clock (`now()`, its transaction's start), while the rules judged by the request's
    moment, taken on the service's host before: across the end of a window, or clocks apart,
    the two disagreed. Here the request comes an hour before the holder's end (its moment was
    taken then), the database's clock an hour after it: the holder still holds the customer,
    and the request meets it (by the database's clock it was dropped unseen, and approved)."""
    run = uuid.uuid4().hex[:8]
    holder, asker, customer = f"p-old-{run}", f"p-new-{run}", f"held-{run}"
    now = datetime.now(UTC)
    async with deals_pool(infra) as pool, pool.acquire() as conn, conn.transaction():
        await active(conn, holder, asker)
        long_ago = now - timedelta(days=POLICY.protection_days + 30)
        held, first = await registered(conn, request_of(holder, customer, long_ago))
        assert first.status is RegistrationStatus.APPROVED
        # Extended until an hour ago (by the database's clock), not yet expired by the job.
        await conn.execute(
            "UPDATE registrations SET expires_at = $2 WHERE registration_id = $1",
            held,
            now - timedelta(hours=1),
        )
        _, later = await registered(conn, request_of(asker, customer, now - timedelta(hours=2)))
    assert later.status is not RegistrationStatus.APPROVED
    assert [c.reference for c in later.conflicts] == [held]


async def test_a_registration_stored_under_the_former_name_key_is_still_met(
    infra: Infra,
) -> None:
    """Names are normalised anew (invisible characters dropped, look-alike capitals read as
    Latin): a registration stored before holds the key the former normalisation gave its name,
    and a request of that name meets it through that key."""
    run = uuid.uuid4().hex[:8]
    holder, asker = f"p-kept-{run}", f"p-later-{run}"
    disguised = f"ac\u200bme{run}"  # the former key split it: "ac"
    now = datetime.now(UTC)
    async with deals_pool(infra) as pool, pool.acquire() as conn, conn.transaction():
        await active(conn, holder, asker)
        earlier = request_of(holder, disguised, now - timedelta(days=1))
        held, first = await registered(conn, earlier)
        assert first.status is RegistrationStatus.APPROVED
        # As a version before stored it, under its former key (and no domain to meet it by).
        await conn.execute(
            """UPDATE registrations SET name_key = $2, customer_domain = NULL
               WHERE registration_id = $1""",
            held,
            earlier.customer.former_name_key,
        )
        later = replace(request_of(asker, disguised, now), customer_domain=None)
        _, decided = await registered(conn, later)
    assert [c.reference for c in decided.conflicts] == [held]

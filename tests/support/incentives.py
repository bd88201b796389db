"""What tests of incentives share: its migrations and, on a real Postgres schema, credits booked
as the ledger consumer books them and a partner's MDF fund read with its invariants checked;
the ledger consumer itself on a scratch schema, fed Kafka records of credits and partner
snapshots; MDF pre-approvals asked, decided and claimed against for a funded partner of a
campaign incentives has heard of; and, in front of a real incentives process, partners
published at a tier and credits as attribution publishes them, down to a partner whose credit
is booked and whose fund is funded; and an incentives process run by programmes of a test's
own."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import ConsumerRecord

from services.incentives import campaign_projection, handlers, mdf_preapprovals, views
from services.incentives.booking import book_credits
from services.incentives.domain.claims import ClaimAsk
from services.incentives.domain.preapprovals import CampaignBudget
from services.incentives.domain.programs import Caps, IncentivePrograms, Mdf
from services.incentives.ledger_events import LedgerAnnouncements
from services.incentives.mdf_preapprovals import PreapprovalPolicy
from shared.consumer import EventConsumer
from shared.db import Pool
from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.crm import Customer
from shared.events.partners import PartnerChange, PartnerStateChanged, PartnerStatus
from shared.events.programme_service import CampaignChanged
from shared.outbox import Outbox
from shared.provisions import Provisions
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support import factories
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.kafka import as_records, publish
from tests.support.polling import eventually
from tests.support.processes import auth, service_processes

D = Decimal
MIGRATIONS = Path(ROOT / "services" / "incentives" / "migrations")
POLICY = PreapprovalPolicy(claim_window_days=30)
# Small caps so a few credits cross them: 1 500.00 earned and 300.00 MDF per partner and period.
PROGRAMS = IncentivePrograms(
    caps=Caps(per_partner_period=D("1500.00")), mdf=Mdf(cap_per_partner_period=D("300.00"))
)


# The outbox checks the producing service by name; its rows land in the scratch schema.
OUTBOX = Outbox("incentives", "pollinate/test")


async def apply_credit(pool: Pool, programs: IncentivePrograms, issued: CreditIssued) -> None:
    """Book a credit as the ledger consumer does (one transaction), recording what it
    announces."""
    cause = Envelope.wrap(issued, source="pollinate/attribution", subject=issued.deal_key)
    async with pool.acquire() as conn, conn.transaction():
        await OUTBOX.publish_many(conn, (await book_credits(conn, programs, [cause])).events)


async def fund_state(pool: Pool, partner: str) -> dict[str, str]:
    async with pool.acquire() as conn:
        fund = (await views.fund(conn, partner)).model_dump(mode="json")
        remaining = await conn.fetchval(
            "SELECT coalesce(sum(remaining), 0) FROM mdf_lots WHERE partner_id = $1", partner
        )
        kept = await conn.fetchval(
            "SELECT lots_remaining FROM mdf_funds WHERE partner_id = $1", partner
        )
        totals = await conn.fetch(
            """SELECT period, earned, accrued, reversed, paid, last_paid_at, entries
               FROM period_totals WHERE partner_id = $1 ORDER BY 1""",
            partner,
        )
        recomputed = await conn.fetch(
            """SELECT period, sum(earned), sum(accrued), sum(reversed), sum(paid), max(paid_at),
                      sum(entries)
               FROM (
                   SELECT period, CASE WHEN entry_type <> 'payout' THEN amount ELSE 0 END AS earned,
                          0 AS accrued,
                          CASE WHEN entry_type = 'reversal' THEN amount ELSE 0 END AS reversed,
                          CASE WHEN entry_type = 'payout' THEN amount ELSE 0 END AS paid,
                          CASE WHEN entry_type = 'payout' THEN created_at END AS paid_at,
                          1 AS entries
                   FROM ledger_entries WHERE partner_id = $1
                   UNION ALL
                   SELECT period, 0, amount, 0, 0, NULL, 0 FROM mdf_entries
                   WHERE partner_id = $1 AND entry_type IN ('accrual', 'reversal')
               ) AS e GROUP BY period ORDER BY period""",
            partner,
        )
    # The invariants, checked at every step.
    assert D(fund["ledger_balance"]) == remaining - D(fund["deficit"])
    assert kept == remaining  # the trigger-kept total the summarised read starts from
    assert [tuple(r) for r in totals] == [tuple(r) for r in recomputed]
    assert totals, "the partner has entries, so period totals"
    return {k: fund[k] for k in ("available", "ledger_balance", "deficit")}


@asynccontextmanager
async def incentives_schema(infra: Infra) -> AsyncIterator[tuple[Pool, str]]:
    """A throw-away incentives schema and role: (pool, role name)."""
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "incentives", MIGRATIONS) as pool,
    ):
        yield pool, f"{scratch.schema}_svc"


GROUPED = LedgerAnnouncements()  # the default: a credit's booking in one event


def scratch_consumer(
    pool: Any,
    name: str,
    programs: IncentivePrograms = PROGRAMS,
    announcements: LedgerAnnouncements = GROUPED,
) -> EventConsumer:
    """An incentives consumer on a scratch schema, provided with what app.py provides its
    handlers; the caller registers them."""
    provisions = Provisions()
    provisions.provide(programs)
    provisions.provide(announcements)
    return EventConsumer(
        name=name,
        service="incentives",
        topics=[],
        pool=pool,
        # The outbox checks the producing service by name; its rows land in the scratch schema.
        outbox=Outbox("incentives", "pollinate/test"),
        backoff_initial_seconds=0.01,
        provisions=provisions,
    )


def ledger_consumer(
    pool: Any,
    programs: IncentivePrograms = PROGRAMS,
    announcements: LedgerAnnouncements = GROUPED,
) -> EventConsumer:
    """The service's ledger consumer (its real handlers, as app.py wires them) on a scratch
    schema."""
    consumer = scratch_consumer(pool, "ledger", programs, announcements)
    consumer.handles_batch(CreditIssued)(handlers.on_credits)
    consumer.handles(CreditReversed)(handlers.on_reversal)
    consumer.handles(PartnerStateChanged)(handlers.on_partner)
    consumer.locks_first(handlers.batch_locks)
    return consumer


async def records_of(infra: Infra, *events: EventPayload) -> list[ConsumerRecord[Any, Any]]:
    """The events as Kafka records, in order (one partition), each in its own envelope."""
    return await as_records(
        infra, [Envelope.wrap(e, source="pollinate/attribution", subject="deal") for e in events]
    )


def credit(
    run: str,
    name: str,
    partner_id: str,
    deal: str,
    amount: str,
    logo: str,
    country: str,
    **fields: Any,
) -> CreditIssued:
    """Credit `name` of this run to `partner_id` on deal `deal` of customer `logo` (a domain of
    the run's own), in `country`."""
    domain = f"{logo}-{run}.example"
    return credit_issued(
        credit_id=f"{name}-{run}",
        partner_id=partner_id,
        deal_key=f"{deal}-{run}",
        amount=amount,
        customer=Customer(name=f"Customer {domain}", domain=domain, country=country),
        **fields,
    )


async def partner_records(
    infra: Infra, *snapshots: PartnerStateChanged
) -> list[ConsumerRecord[Any, Any]]:
    """Partner snapshots as onboarding publishes them on partners.lifecycle.v1."""
    return await as_records(
        infra,
        [Envelope.wrap(s, source="pollinate/onboarding", subject=s.partner_id) for s in snapshots],
    )


def snapshot(partner_id: str, status: PartnerStatus, version: int) -> PartnerStateChanged:
    change = {
        PartnerStatus.ONBOARDING: PartnerChange.ONBOARDING,
        PartnerStatus.ACTIVE: PartnerChange.ACTIVATED,
        PartnerStatus.REJECTED: PartnerChange.REJECTED,
    }[status]
    return partner_state_changed(
        partner_id=partner_id, status=status, tier="gold", version=version, change=change
    )


def budget(amount: str, reference: str = "ref-1", **changes: Any) -> CampaignBudget:
    today = datetime.now(UTC).date()
    fields: dict[str, Any] = {
        "reference": reference,
        "campaign_id": "camp-1",
        "activity_kind": "webinar",
        "description": "joint webinar on AI",
        "starts_on": today,
        "ends_on": today + timedelta(days=10),
        "amount": D(amount),
        "currency": "USD",
    }
    fields.update(changes)
    return CampaignBudget(**fields)


async def funded_partner(pool: Pool, programs: IncentivePrograms, mdf: str) -> str:
    """A gold partner whose fund holds `mdf` (2 % of a credit), one of campaign camp-1's."""
    partner = f"p-{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO partners VALUES ($1, 'gold', 'active', 1, now())", partner)
    await apply_credit(pool, programs, credit_issued(partner_id=partner, amount=str(D(mdf) * 50)))
    await heard_of_campaign(pool, campaign_changed("camp-1", partner))
    return partner


def campaign_changed(campaign_id: str, *partners: str, **changes: Any) -> CampaignChanged:
    """Programme's announcement of a campaign that runs from today for ten days."""
    return factories.campaign_changed(campaign_id=campaign_id, partner_ids=partners, **changes)


async def heard_of_campaign(pool: Pool, change: CampaignChanged) -> None:
    """The campaign as incentives' consumer records it; camp-1 gathers the partners of every
    test of the module."""
    async with pool.acquire() as conn, conn.transaction():
        known = await campaign_projection.campaign(conn, change.campaign_id)
        if known is not None:
            partners = (*sorted(known.partner_ids), *change.partner_ids)
            change = change.model_copy(update={"partner_ids": partners})
        await campaign_projection.record(conn, [change])


async def ask(pool: Pool, programs: IncentivePrograms, partner: str, b: CampaignBudget) -> str:
    async with pool.acquire() as conn, conn.transaction():
        row, _ = await mdf_preapprovals.request(conn, OUTBOX, programs, partner, b)
    return str(row["preapproval_id"])


async def decide(pool: Pool, preapproval_id: str, approve: bool, note: str = "") -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await mdf_preapprovals.decide(
            conn, OUTBOX, POLICY, preapproval_id, approve=approve, note=note
        )


async def claim_on(
    pool: Pool, programs: IncentivePrograms, partner: str, preapproval_id: str, amount: str
) -> str:
    async with pool.acquire() as conn, conn.transaction():
        ask = ClaimAsk(partner, D(amount), "webinar platform", f"INV-{amount}")
        requested = await mdf_preapprovals.request_claim(conn, programs, preapproval_id, ask)
    return requested.claim_id


async def publish_partner(
    infra: Infra, partner_id: str, tier: str = "gold", version: int = 1
) -> None:
    snapshot = partner_state_changed(partner_id=partner_id, tier=tier, version=version)
    await publish(infra, PARTNER_LIFECYCLE, [snapshot], subject=partner_id, source="onboarding")


async def partner_known(admin_db: asyncpg.Connection[Any], partner_id: str, tier: str) -> None:
    async def there() -> bool:
        got = await admin_db.fetchval(
            "SELECT tier FROM incentives.partners WHERE partner_id = $1", partner_id
        )
        return bool(got == tier)

    await eventually(there)


async def partner_at_tier(
    infra: Infra, admin_db: asyncpg.Connection[Any], partner_id: str, tier: str
) -> None:
    """Publish `partner_id` at `tier` as onboarding does and wait until incentives has it:
    partner snapshots and credits are different topics, with no order between them (a credit
    published sooner may earn at the default tier)."""
    await publish_partner(infra, partner_id, tier)
    await partner_known(admin_db, partner_id, tier)


async def publish_credits(infra: Infra, *events: CreditIssued | CreditReversed) -> None:
    """Credits and reversals of one deal, in order, as attribution publishes them."""
    await publish(
        infra, ATTRIBUTION_CREDITS, list(events), subject=events[0].deal_key, source="attribution"
    )


async def earning_partner(
    infra: Infra, admin_db: asyncpg.Connection[Any], client: httpx.AsyncClient
) -> str:
    """A gold partner whose credit of 100 000.00 is booked (balance and MDF fund funded)."""
    partner = f"p-edge-{uuid.uuid4().hex[:10]}"
    await partner_at_tier(infra, admin_db, partner, "gold")
    await publish_credits(infra, credit_issued(partner_id=partner, amount="100000.00"))

    async def funded() -> bool:
        fund = (await client.get(f"/partners/{partner}/mdf", headers=auth(partner))).json()
        return D(fund["available"]) > 0

    await eventually(funded)
    return partner


@asynccontextmanager
async def running_programs(
    infra: Infra, folder: Path, programs: dict[str, Any]
) -> AsyncIterator[str]:
    """An incentives process run by `programs` (written into `folder` as its programmes file);
    yields its URL."""
    path = folder / "programs.json"
    path.write_text(json.dumps(programs))
    env = {"INCENTIVES_PROGRAMS_FILE": str(path)}
    async with service_processes(infra, "incentives", env=env) as [url]:
        yield url

"""Service layer of the incentive ledger: credits in, earnings and clawbacks out.

Loads the facts the pure rules need (partner tier, whether the customer or region is new, what
the partner already earned in the period), books what they decide into the append-only ledger
and writes the events announcing it, all in the consumer's transaction. Per-partner work is
serialised with a transaction-scoped advisory lock (two credits of one partner arrive on
different deal keys, so possibly on two instances at once); the "new logo" check additionally
locks the customer key. Locks are always taken customer first, then partner.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.incentives.domain.earnings import (
    ZERO,
    CreditFacts,
    Earnings,
    EntryType,
    compute_earnings,
    customer_key,
)
from services.incentives.domain.ledger import Entry, reversals_for
from services.incentives.domain.mdf import MdfAccrual, accrue
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.funds import book_accrual, claw_back_accrual, entry_id, now
from shared.db import Connection, advisory_key
from shared.events import InvalidEvent
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.incentives import IncentiveEarned, IncentiveReversed
from shared.events.notifications import PartnerNotification
from shared.events.partners import PartnerStateChanged
from shared.outbox import Outbox
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS

log = logging.getLogger(__name__)


async def lock_partner(conn: Connection, partner_id: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("incentives", "partner", partner_id)
    )


async def apply_partner_state(conn: Connection, event: PartnerStateChanged) -> None:
    """Keep the tier and status used by the rules; an older snapshot never wins."""
    await conn.execute(
        """
        INSERT INTO partners (partner_id, tier, status, version, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (partner_id) DO UPDATE SET tier = EXCLUDED.tier, status = EXCLUDED.status,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        WHERE partners.version < EXCLUDED.version
        """,
        event.partner_id,
        event.tier,
        event.status.value,
        event.version,
        event.changed_at,
    )


@dataclass(frozen=True)
class Context:
    """What the service knows about a (real or hypothetical) credit's surroundings."""

    tier: str
    status: str | None
    customer_key: str | None
    region: str | None
    new_logo: bool
    new_region: bool
    earned_in_period: Decimal
    mdf_accrued_in_period: Decimal


async def load_context(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    partner_id: str,
    deal_key: str,
    domain: str | None,
    name: str | None,
    country: str | None,
    close_date: date,
) -> Context:
    partner = await conn.fetchrow(
        "SELECT tier, status FROM partners WHERE partner_id = $1", partner_id
    )
    key = customer_key(domain, name)
    region = programs.region_of(country)
    new_logo = False
    if key is not None:
        first = await conn.fetchval(
            "SELECT first_deal_key FROM customers WHERE customer_key = $1", key
        )
        # The customer's first deal stays "new logo" for every credit on it (all partners on
        # the deal, and re-issued credits after a correction).
        new_logo = first is None or first == deal_key
    new_region = False
    if region is not None:
        first = await conn.fetchval(
            "SELECT first_deal_key FROM partner_regions WHERE partner_id = $1 AND region = $2",
            partner_id,
            region,
        )
        new_region = first is None or first == deal_key
    period = programs.period_of(close_date)
    earned = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM ledger_entries
           WHERE partner_id = $1 AND period = $2 AND entry_type <> 'payout'""",
        partner_id,
        period,
    )
    accrued = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM mdf_entries
           WHERE partner_id = $1 AND period = $2 AND entry_type IN ('accrual', 'reversal')""",
        partner_id,
        period,
    )
    return Context(
        tier=partner["tier"] if partner else programs.default_tier,
        status=partner["status"] if partner else None,
        customer_key=key,
        region=region,
        new_logo=new_logo,
        new_region=new_region,
        earned_in_period=earned,
        mdf_accrued_in_period=accrued,
    )


def evaluate(
    programs: IncentivePrograms,
    context: Context,
    *,
    credit_id: str,
    partner_id: str,
    kind: str,
    amount: Decimal,
    currency: str,
    products: frozenset[str],
    co_sell: bool,
    close_date: date,
    at: datetime,
) -> tuple[Earnings, MdfAccrual | None]:
    facts = CreditFacts(
        credit_id=credit_id,
        partner_id=partner_id,
        kind=kind,
        amount=amount,
        currency=currency,
        products=products,
        co_sell=co_sell,
        close_date=close_date,
        tier=context.tier,
        partner_status=context.status,
        new_logo=context.new_logo,
        new_region=context.new_region,
    )
    earnings = compute_earnings(programs, facts, context.earned_in_period)
    accrual = accrue(
        programs,
        tier=context.tier,
        kind=kind,
        amount=amount,
        period=earnings.period,
        accrued_in_period=context.mdf_accrued_in_period,
        eligible=context.status not in programs.ineligible_statuses,
        at=at,
    )
    return earnings, accrual


def validate_credit(programs: IncentivePrograms, credit: CreditIssued) -> None:
    if credit.currency != programs.currency:
        raise InvalidEvent(
            f"credit {credit.credit_id} is in {credit.currency}; the incentive programs pay in "
            f"{programs.currency} (attribution credits in the reporting currency)"
        )
    if credit.amount < 0:
        raise InvalidEvent(f"credit {credit.credit_id} has a negative amount {credit.amount}")


async def apply_credit(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    credit: CreditIssued,
    *,
    ingested_at: datetime | None,
) -> str:
    """Book what a credit earns. Returns what happened (for logs and tests)."""
    validate_credit(programs, credit)
    key = customer_key(credit.customer.domain, credit.customer.name)
    if key is not None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", advisory_key("incentives", "customer", key)
        )
    await lock_partner(conn, credit.partner_id)
    if await conn.fetchval("SELECT true FROM credits WHERE credit_id = $1", credit.credit_id):
        log.info("credit already booked", extra={"credit_id": credit.credit_id})
        return "duplicate credit"
    at = now()
    context = await load_context(
        conn,
        programs,
        partner_id=credit.partner_id,
        deal_key=credit.deal_key,
        domain=credit.customer.domain,
        name=credit.customer.name,
        country=credit.customer.country,
        close_date=credit.close_date,
    )
    earnings, accrual = evaluate(
        programs,
        context,
        credit_id=credit.credit_id,
        partner_id=credit.partner_id,
        kind=credit.kind.value,
        amount=credit.amount,
        currency=credit.currency,
        products=frozenset(credit.products),
        co_sell=credit.co_sell,
        close_date=credit.close_date,
        at=at,
    )
    if key is not None:
        await conn.execute(
            """INSERT INTO customers (customer_key, first_deal_key, first_credit_id, first_seen_at)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            key,
            credit.deal_key,
            credit.credit_id,
            at,
        )
    if context.region is not None:
        await conn.execute(
            """INSERT INTO partner_regions (partner_id, region, first_deal_key, first_credit_id)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            credit.partner_id,
            context.region,
            credit.deal_key,
            credit.credit_id,
        )
    await conn.execute(
        """INSERT INTO credits (credit_id, partner_id, deal_key, kind, amount, currency,
               customer_key, region, period, tier, new_logo, new_region, programs_version, notes,
               ingested_at, processed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)""",
        credit.credit_id,
        credit.partner_id,
        credit.deal_key,
        credit.kind.value,
        credit.amount,
        credit.currency,
        key,
        context.region,
        earnings.period,
        context.tier,
        context.new_logo,
        context.new_region,
        programs.version,
        list(earnings.notes),
        ingested_at,
        at,
    )
    for line in earnings.lines:
        line_id = entry_id(credit.credit_id, line.rule)
        await conn.execute(
            """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period,
                   credit_id, deal_key, basis, rate, uncapped_amount, amount, currency, note, tier,
                   programs_version, created_at, ingested_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)""",
            line_id,
            credit.partner_id,
            line.entry_type.value,
            line.rule,
            earnings.period,
            credit.credit_id,
            credit.deal_key,
            line.basis,
            line.rate,
            line.uncapped_amount,
            line.amount,
            programs.currency,
            line.note,
            context.tier,
            programs.version,
            at,
            ingested_at,
        )
        await outbox.publish(
            conn,
            INCENTIVE_LEDGER,
            IncentiveEarned(
                entry_id=line_id,
                partner_id=credit.partner_id,
                entry_type=line.entry_type.value,
                program_rule=line.rule,
                credit_id=credit.credit_id,
                deal_key=credit.deal_key,
                period=earnings.period,
                basis=line.basis,
                rate=line.rate,
                uncapped_amount=line.uncapped_amount,
                amount=line.amount,
                currency=programs.currency,
                note=line.note,
                tier=context.tier,
                programs_version=programs.version,
                earned_at=at,
                ingested_at=ingested_at,
            ),
            subject=credit.partner_id,
            event_id=uuid.UUID(line_id),
        )
    if earnings.total > 0:
        rules = ", ".join(f"{line.rule} {line.amount}" for line in earnings.lines if line.amount)
        await outbox.publish(
            conn,
            PARTNER_NOTIFICATIONS,
            PartnerNotification(
                notification_id=entry_id(credit.credit_id, "earning"),
                partner_id=credit.partner_id,
                recipient=credit.partner_id,
                kind="earning",
                subject=f"You earned {earnings.total} {programs.currency}",
                body=f"Credit {credit.credit_id} on deal {credit.deal_key} earned {rules} "
                f"({earnings.period}).",
                deal_key=credit.deal_key,
                created_at=at,
                ingested_at=ingested_at,
            ),
            subject=credit.partner_id,
        )
    if accrual is not None:
        await book_accrual(
            conn,
            outbox,
            programs,
            accrual,
            partner_id=credit.partner_id,
            credit_id=credit.credit_id,
            deal_key=credit.deal_key,
            period=earnings.period,
            ingested_at=ingested_at,
        )
    parked = await conn.fetchval(
        "DELETE FROM pending_reversals WHERE credit_id = $1 RETURNING reversal", credit.credit_id
    )
    if parked is not None:
        reversal = CreditReversed.model_validate_json(parked)
        await apply_reversal(
            conn, outbox, programs, reversal, ingested_at=reversal.ingested_at or ingested_at
        )
        return "credit booked, then reversed by a reversal that had arrived first"
    return "credit booked"


async def apply_reversal(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    reversal: CreditReversed,
    *,
    ingested_at: datetime | None,
) -> str:
    """Take back exactly the entries the reversed credit produced (looked up, not recomputed)."""
    await lock_partner(conn, reversal.partner_id)
    credit = await conn.fetchrow(
        "SELECT * FROM credits WHERE credit_id = $1 FOR UPDATE", reversal.credit_id
    )
    if credit is None:
        # Cannot happen on one deal key (one partition, in order) unless attribution published
        # a reversal without its credit; keep it and apply it when the credit arrives.
        await conn.execute(
            """INSERT INTO pending_reversals (credit_id, reversal, received_at)
               VALUES ($1, $2::jsonb, $3) ON CONFLICT DO NOTHING""",
            reversal.credit_id,
            reversal.model_dump_json(),
            now(),
        )
        log.warning("reversal before its credit: parked", extra={"credit_id": reversal.credit_id})
        return "parked until the credit arrives"
    problems = []
    if credit["partner_id"] != reversal.partner_id:
        problems.append(f"partner {reversal.partner_id} != credit's {credit['partner_id']}")
    if credit["amount"] != reversal.amount:
        problems.append(f"amount {reversal.amount} != credit's {credit['amount']}")
    if credit["currency"] != reversal.currency:
        problems.append(f"currency {reversal.currency} != credit's {credit['currency']}")
    if problems:
        raise InvalidEvent(
            f"reversal {reversal.reversal_id} does not match credit {reversal.credit_id}: "
            + "; ".join(problems)
        )
    if credit["reversal_id"] is not None:
        log.info(
            "credit already reversed",
            extra={"credit_id": reversal.credit_id, "by": credit["reversal_id"]},
        )
        return "already reversed"
    at = now()
    rows = await conn.fetch(
        """SELECT * FROM ledger_entries WHERE credit_id = $1
           AND entry_type IN ('accrual', 'kicker', 'spiff') ORDER BY seq""",
        reversal.credit_id,
    )
    by_id = {row["entry_id"]: row for row in rows}
    produced = [
        Entry(
            row["entry_id"],
            row["partner_id"],
            EntryType(row["entry_type"]),
            row["rule"],
            row["amount"],
            row["credit_id"],
        )
        for row in rows
    ]
    reason = f"credit {reversal.credit_id} reversed ({reversal.reason})"
    taken_back = ZERO
    for entry in reversals_for(produced, lambda e: entry_id(e.entry_id, "reversal")):
        original = by_id[entry.reverses or ""]
        await conn.execute(
            """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period,
                   credit_id, deal_key, basis, rate, amount, currency, note, tier,
                   programs_version, reverses, reference, created_at, ingested_at)
               VALUES ($1, $2, 'reversal', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   $15, $16, $17)""",
            entry.entry_id,
            entry.partner_id,
            entry.rule,
            original["period"],
            entry.credit_id,
            original["deal_key"],
            original["basis"],
            original["rate"],
            entry.amount,
            original["currency"],
            reason,
            original["tier"],
            original["programs_version"],
            entry.reverses,
            reversal.reversal_id,
            at,
            ingested_at,
        )
        taken_back -= entry.amount
        await outbox.publish(
            conn,
            INCENTIVE_LEDGER,
            reversed_event(
                entry.entry_id, dict(original), "incentive", reversal, reason, at, ingested_at
            ),
            subject=reversal.partner_id,
            event_id=uuid.UUID(entry.entry_id),
        )
    clawed = await claw_back_accrual(
        conn, programs, partner_id=reversal.partner_id, credit_id=reversal.credit_id
    )
    if clawed is not None:
        accrual, _ = clawed
        mdf_reversal_id = entry_id(accrual["entry_id"], "reversal")
        await outbox.publish(
            conn,
            INCENTIVE_LEDGER,
            reversed_event(mdf_reversal_id, accrual, "mdf", reversal, reason, at, ingested_at),
            subject=reversal.partner_id,
            event_id=uuid.UUID(mdf_reversal_id),
        )
    await conn.execute(
        "UPDATE credits SET reversal_id = $2, reversed_at = $3 WHERE credit_id = $1",
        reversal.credit_id,
        reversal.reversal_id,
        at,
    )
    if taken_back > 0:
        await outbox.publish(
            conn,
            PARTNER_NOTIFICATIONS,
            PartnerNotification(
                notification_id=entry_id(reversal.credit_id, "clawback"),
                partner_id=reversal.partner_id,
                recipient=reversal.partner_id,
                kind="clawback",
                subject=f"{taken_back} {credit['currency']} clawed back",
                body=f"Credit {reversal.credit_id} on deal {reversal.deal_key} was reversed "
                f"({reversal.reason}); the {taken_back} {credit['currency']} it earned was "
                "taken back.",
                deal_key=reversal.deal_key,
                created_at=at,
                ingested_at=ingested_at,
            ),
            subject=reversal.partner_id,
        )
    return "reversed"


def reversed_event(
    reversal_entry_id: str,
    original: dict[str, Any],
    ledger: str,
    reversal: CreditReversed,
    reason: str,
    at: datetime,
    ingested_at: datetime | None,
) -> IncentiveReversed:
    return IncentiveReversed(
        entry_id=reversal_entry_id,
        reverses_entry_id=original["entry_id"],
        ledger=ledger,
        partner_id=reversal.partner_id,
        program_rule=original["rule"],
        credit_id=reversal.credit_id,
        reversal_id=reversal.reversal_id,
        deal_key=reversal.deal_key,
        period=original["period"],
        amount=original["amount"],
        currency=original["currency"],
        reason=reason,
        reversed_at=at,
        ingested_at=ingested_at,
    )

"""The revenue totals the KPI report reads (migrations/0010_revenue_totals.sql) are kept by the
database, by triggers on the credits, the reversals and the partner versions, each taking
advisory locks on the partners and credits its rows touch before it reads. A consumer's batch
takes all of them first, together and in order (`lock_keys`, the consumers' `locks_first`), so
two batches never wait on each other in opposite orders."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.db import Connection
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged


async def lock_keys(conn: Connection, events: Iterable[Envelope[Any]]) -> list[int]:
    """The keys the triggers lock for these events' facts: a credit's partner and itself; a
    reversal's credit and that credit's partner as recorded (the trigger locks the partner
    of the credit it finds); a version's partner."""
    names: set[str] = set()
    reversed_credits: list[str] = []
    for event in events:
        fact = event.data
        if isinstance(fact, CreditIssued):
            names |= {f"partner/{fact.partner_id}", f"credit/{fact.credit_id}"}
        elif isinstance(fact, CreditReversed):
            names |= {f"partner/{fact.partner_id}", f"credit/{fact.credit_id}"}
            reversed_credits.append(fact.credit_id)
        elif isinstance(fact, PartnerStateChanged):
            names.add(f"partner/{fact.partner_id}")
    rows = await conn.fetch(
        """SELECT revenue_lock_key(name) AS key FROM unnest($1::text[]) AS name
           UNION
           SELECT revenue_lock_key('partner/' || partner_id) FROM credits
           WHERE credit_id = ANY($2::text[])""",
        sorted(names),
        reversed_credits,
    )
    return [row["key"] for row in rows]

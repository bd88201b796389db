"""Backtest of a proposed policy (POST /admin/policy/backtest): the period's registrations,
loaded with the facts stored when each was decided, replayed through the proposed rules
(services/deals/domain/backtest.py). It reads only, in one read-only snapshot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.deals.domain.backtest import Backtest, Past, replay
from services.deals.domain.rules import (
    OpenOpportunity,
    PartnerView,
    RegistrationRequest,
    RulesOfEngagement,
)
from shared.db import Connection, Pool
from shared.events.registrations import ConflictInfo

# Each registration with its first decision (the ledger's `decided` entry) and the facts its
# inputs kept: the partner and the direct opportunities seen (older decisions: the conflicts),
# and the domain as asked (a key stored before the Public Suffix List may be a bare suffix).
_PERIOD_SQL = """
SELECT r.registration_id, r.partner_id, r.customer_name,
       COALESCE(r.inputs -> 'request' ->> 'customer_domain', r.customer_domain) AS customer_domain,
       r.customer_country,
       r.products, r.amount, r.currency, r.submitted_at, r.expires_at,
       l.status AS decided_status, l.reasons AS decided_reasons,
       r.inputs -> 'partner' AS partner_then, r.inputs -> 'opportunities' AS opportunities_then,
       r.inputs -> 'conflicts_considered' AS considered
FROM registrations r JOIN registration_ledger l
  ON l.registration_id = r.registration_id AND l.what = 'decided'
WHERE r.submitted_at >= $1 AND r.submitted_at < $2
ORDER BY r.submitted_at, r.registration_id
"""


def partner_snapshot(partner: PartnerView | None) -> dict[str, Any] | None:
    """The partner as a decision saw it (kept in its inputs for later replays)."""
    if partner is None:
        return None
    return {
        "partner_id": partner.partner_id,
        "status": partner.status.value,
        "tier": partner.tier,
        "regions": sorted(partner.regions),
        "products": sorted(partner.products),
        "partner_type": partner.partner_type,
    }


def opportunities_snapshot(opportunities: Sequence[OpenOpportunity]) -> list[dict[str, Any]]:
    """The open direct opportunities a decision looked at (kept in its inputs)."""
    return [
        {
            "deal_key": o.deal_key,
            "owner": o.owner,
            "customer_name": o.customer_name,
            "customer_domain": o.customer_domain,
            "created_at": o.created_at.isoformat(),
        }
        for o in opportunities
    ]


def _opportunities(row: Any) -> tuple[OpenOpportunity, ...]:
    if row["opportunities_then"] is not None:
        return tuple(
            OpenOpportunity(
                o["deal_key"],
                o["owner"],
                o["customer_name"],
                o["customer_domain"],
                datetime.fromisoformat(o["created_at"]),
            )
            for o in json.loads(row["opportunities_then"])
        )
    # Decided before the opportunities were kept: the direct conflicts it found, on its own
    # customer as they matched then.
    return tuple(
        OpenOpportunity(
            c.reference, c.party, row["customer_name"], row["customer_domain"], c.registered_at
        )
        for c in (
            ConflictInfo.model_validate(item) for item in json.loads(row["considered"] or "[]")
        )
        if c.kind == "direct_sales"
    )


def _past(row: Any, partners: dict[str, PartnerView], in_period: bool) -> Past:
    then = json.loads(row["partner_then"]) if row["partner_then"] is not None else None
    request = RegistrationRequest(
        partner_id=row["partner_id"],
        customer_name=row["customer_name"],
        customer_domain=row["customer_domain"],
        customer_country=row["customer_country"],
        products=frozenset(row["products"]),
        amount=row["amount"],
        currency=row["currency"],
        submitted_at=row["submitted_at"],
    )
    return Past(
        row["registration_id"],
        request,
        PartnerView.of(then) if then is not None else partners.get(row["partner_id"]),
        _opportunities(row),
        row["decided_status"],
        tuple(row["decided_reasons"]),
        row["expires_at"],
        in_period,
    )


async def _load(
    conn: Connection, since: datetime, until: datetime, lookback: timedelta
) -> list[Past]:
    rows = await conn.fetch(_PERIOD_SQL, since - lookback, until)
    missing = sorted({r["partner_id"] for r in rows if r["partner_then"] is None})
    partners: dict[str, PartnerView] = {}
    if missing:  # decided before partners were kept in the inputs: their current state
        for p in await conn.fetch("SELECT * FROM partners WHERE partner_id = ANY($1)", missing):
            partners[p["partner_id"]] = PartnerView.of(p)
    return [_past(r, partners, r["submitted_at"] >= since) for r in rows]


async def backtest(
    pool: Pool, proposed: RulesOfEngagement, since: datetime, until: datetime
) -> Backtest:
    """Replay the registrations submitted in [since, until) under `proposed` (registrations of
    the protection window before `since` hold customers as they were decided)."""
    lookback = timedelta(days=proposed.protection_days)
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        history = await _load(conn, since.astimezone(UTC), until.astimezone(UTC), lookback)
    return replay(proposed, history)

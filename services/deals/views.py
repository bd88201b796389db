"""Reading registrations and their decision history for the API: partners see their own,
channel managers all; a partner sees of a conflict only its kind
(services/deals/domain/disclosure.py) and of the history only what it was told
(services/deals/domain/ledger.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from services.deals.domain.disclosure import conflicts_seen, inputs_seen, reasons_seen
from services.deals.domain.ledger import entry_seen
from services.deals.domain.partner_standing import extensions_left
from services.deals.domain.rules import Decision, rules_from_mapping
from services.deals.policy import PolicyStore, document_of
from services.deals.repository import Row
from services.deals.schemas import (
    ConflictOut,
    HistoryEntryOut,
    PolicyActivationOut,
    PolicyHistoryOut,
    PolicyOut,
    PolicyVersionOut,
    RegistrationOut,
)
from shared.db import Pool, from_row
from shared.errors import NotFound, Unprocessable
from shared.events.registrations import ConflictInfo, RegistrationStatus
from shared.http import partner_scope
from shared.identity import Caller

# Each registration with the newest entry of its ledger (its current decision), as columns
# prefixed `d_` (one index lookup per registration).
_WITH_DECISION = """
SELECT r.*, d.seq AS d_seq, d.at AS d_at, d.what AS d_what,
       d.previous_status AS d_previous_status, d.status AS d_status,
       d.principal_kind AS d_principal_kind, d.principal AS d_principal,
       d.policy_version AS d_policy_version, d.reasons AS d_reasons,
       d.partner_reasons AS d_partner_reasons, d.evidence AS d_evidence
FROM registrations r
LEFT JOIN LATERAL (
    SELECT * FROM registration_ledger l WHERE l.registration_id = r.registration_id
    ORDER BY l.seq DESC LIMIT 1
) d ON true
"""


def conflicts_out(conflicts: Sequence[ConflictInfo], who: Caller) -> list[ConflictOut]:
    return [
        ConflictOut.model_validate(asdict(c))
        for c in conflicts_seen(conflicts, partner=not who.is_admin)
    ]


def entry_out(row: Row, who: Caller, prefix: str = "") -> HistoryEntryOut:
    entry = {key[len(prefix) :]: v for key, v in dict(row).items() if key.startswith(prefix)}
    seen = entry_seen(entry, json.loads(entry["evidence"]), partner=not who.is_admin)
    return HistoryEntryOut.model_validate(asdict(seen))


def registration_out(row: Row, who: Caller, max_extensions: int) -> RegistrationOut:
    """A registration as `who` may see it, with the extensions the policy in force (its
    `max_extensions`) still allows it."""
    out = {key: value for key, value in dict(row).items() if not key.startswith("d_")}
    out["extensions_left"] = extensions_left(
        max_extensions, row["extensions_used"], RegistrationStatus(row["status"])
    )
    conflicts = [ConflictInfo.model_validate(c) for c in json.loads(out["conflicts"])]
    partner = not who.is_admin  # only channel managers see the evidence
    out["conflicts"] = conflicts_out(conflicts, who)
    out["reasons"] = reasons_seen(
        out["reasons"], out.pop("partner_reasons", None), conflicts, partner=partner
    )
    out["inputs"] = inputs_seen(json.loads(out["inputs"]), partner=partner)
    if row.get("d_seq") is not None:
        out["decision"] = entry_out(row, who, "d_")
    return RegistrationOut.model_validate(out)


# The caller's registrations (a partner: its own), of the statuses asked for, newest first; a
# page starts after the registration a caller names (its place in that order).
REGISTRATIONS_SQL = f"""{_WITH_DECISION}
WHERE ($1::text IS NULL OR r.partner_id = $1)
  AND ($2::text[] IS NULL OR r.status = ANY($2::text[]))
  AND ($3::text IS NULL OR (r.submitted_at, r.registration_id) < (
      SELECT submitted_at, registration_id FROM registrations WHERE registration_id = $3))
ORDER BY r.submitted_at DESC, r.registration_id DESC LIMIT $4"""


async def registrations(
    pool: Pool,
    who: Caller,
    limit: int,
    max_extensions: int,
    statuses: Sequence[RegistrationStatus] | None = None,
    after: str | None = None,
) -> list[RegistrationOut]:
    """The newest registrations the caller may see (at most `limit`, 1..500), only those in
    `statuses` if given, after the registration `after` (422 if the caller cannot see it)."""
    async with pool.acquire() as conn:
        if after is not None and not await conn.fetchval(
            """SELECT true FROM registrations
               WHERE registration_id = $1 AND ($2::text IS NULL OR partner_id = $2)""",
            after,
            who.partner_id,
        ):
            raise Unprocessable(f"after names no registration of yours: {after!r}")
        wanted = None if statuses is None else [status.value for status in statuses]
        rows = await conn.fetch(REGISTRATIONS_SQL, who.partner_id, wanted, after, limit)
    return [registration_out(r, who, max_extensions) for r in rows]


async def review_queue(
    pool: Pool, who: Caller, limit: int, max_extensions: int
) -> list[RegistrationOut]:
    """Registrations waiting for review, soonest deadline first (those without one last)."""
    rows = await pool.fetch(
        f"""{_WITH_DECISION} WHERE r.status = 'pending_review'
            ORDER BY r.review_due_at NULLS LAST, r.submitted_at LIMIT $1""",
        limit,
    )
    return [registration_out(r, who, max_extensions) for r in rows]


async def registration(
    pool: Pool, who: Caller, registration_id: str, max_extensions: int
) -> RegistrationOut:
    """One registration; another partner's is not found, exactly as a missing one."""
    row = await pool.fetchrow(f"{_WITH_DECISION} WHERE r.registration_id = $1", registration_id)
    partner_scope(who, row["partner_id"] if row else None, f"registration {registration_id}")
    assert row is not None
    return registration_out(row, who, max_extensions)


async def history(pool: Pool, who: Caller, registration_id: str) -> list[HistoryEntryOut]:
    """The registration's decision ledger, oldest first; another partner's is not found."""
    async with pool.acquire() as conn:
        partner_id = await conn.fetchval(
            "SELECT partner_id FROM registrations WHERE registration_id = $1", registration_id
        )
        partner_scope(who, partner_id, f"registration {registration_id}")
        rows = await conn.fetch(
            "SELECT * FROM registration_ledger WHERE registration_id = $1 ORDER BY seq",
            registration_id,
        )
    return [entry_out(r, who) for r in rows]


def reasons_for(decision: Decision, who: Caller) -> list[str]:
    """A decision's reasons as the caller may read them."""
    return list(decision.reasons if who.is_admin else decision.partner_reasons)


async def policy_in_force(pool: Pool, store: PolicyStore, at: datetime) -> PolicyOut:
    """The version in force at `at`, with the activations scheduled after it."""
    async with pool.acquire() as conn:
        row = await store.in_force_row(conn, at)
        later = await conn.fetch(
            "SELECT * FROM policy_activations WHERE active_from > $1 ORDER BY active_from, seq",
            at,
        )
    if row is None:
        raise NotFound("no policy version is in force")
    return from_row(
        PolicyOut,
        row,
        document=document_of(rules_from_mapping(json.loads(row["document"]))),
        scheduled=[PolicyActivationOut.model_validate(dict(r)) for r in later],
    )


async def policy_history(pool: Pool, store: PolicyStore) -> PolicyHistoryOut:
    async with pool.acquire() as conn:
        versions, activations = await store.history(conn)
    return PolicyHistoryOut(
        versions=[
            PolicyVersionOut.model_validate({**dict(v), "document": json.loads(v["document"])})
            for v in versions
        ],
        activations=[PolicyActivationOut.model_validate(dict(a)) for a in activations],
    )

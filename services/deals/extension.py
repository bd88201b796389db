"""A partner's request to extend its registration's protection window under policy."""

from __future__ import annotations

import json
from datetime import datetime

from services.deals import repository
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.partner_standing import extend, extension_refusal
from services.deals.domain.rules import RulesOfEngagement, partner_refusal
from services.deals.review import stored_request
from services.deals.status_changes import change_status, entry_for
from shared.clock import now
from shared.db import Connection
from shared.errors import Conflict
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus
from shared.http import partner_scope
from shared.identity import Caller
from shared.outbox import Outbox


async def request_extension(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    who: Caller,
    registration_id: str,
    read_until: datetime | None = None,
) -> tuple[datetime, str]:
    """Extend the caller's registration; returns the new expiry and why. Another partner's
    registration is not found; a refusal under policy is a conflict saying why, and so is one
    while the partner may not register (suspended: its holds stay, unextended)."""
    row = await repository.registration_for_update(conn, registration_id)
    partner_scope(who, row["partner_id"] if row else None, f"registration {registration_id}")
    assert row is not None
    if read_until is not None and row["expires_at"] != read_until:
        # Found in review: a double click (or two people) spent two extensions at once.
        raise Conflict(
            f"registration {registration_id} is protected until"
            f" {row['expires_at'].isoformat() if row['expires_at'] else 'no end'} now, not"
            f" {read_until.isoformat()} as read: it was extended (or ended) since; nothing changed"
        )
    status = await repository.partner_status(conn, row["partner_id"])
    refusal = extension_refusal(
        None if status is None else PartnerStatus(status), policy.statuses_allowed_to_register
    )
    if refusal is not None:
        raise Conflict(refusal)
    partner = await repository.partner_view(conn, row["partner_id"])
    unauthorised = partner_refusal(policy, stored_request(row, json.loads(row["inputs"])), partner)
    if unauthorised is not None:
        raise Conflict(f"{unauthorised} now: a registration it may not hold is not extended")
    new_expiry, why = extend(
        policy, row["expires_at"], row["extensions_used"], RegistrationStatus(row["status"]), now()
    )
    if new_expiry is None:
        raise Conflict(why)
    await repository.count_extension(conn, registration_id)
    entry = entry_for(
        row,
        LedgerWhat.EXTENDED,
        RegistrationStatus.APPROVED,
        Principal.of(who),
        policy.version,
        why,
        evidence={
            "previous_expires_at": row["expires_at"],
            "extensions_used": row["extensions_used"] + 1,
            "max_extensions": policy.max_extensions,
        },
    )
    await change_status(
        conn, outbox, row, entry, new_expiry, threshold=policy.name_similarity_threshold
    )
    return new_expiry, why

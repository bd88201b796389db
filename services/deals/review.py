"""A channel manager's review of a registration pending review."""

from __future__ import annotations

from services.deals import repository
from services.deals.domain.lifecycle import review_outcome
from services.deals.status_changes import change_status
from shared.db import Connection
from shared.errors import NotFound
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox


async def review(
    conn: Connection, outbox: Outbox, registration_id: str, approve: bool, note: str
) -> RegistrationStatus:
    """Approve or reject a registration pending review; returns its new status. 409 for a
    registration that is not pending review."""
    row = await repository.registration_for_update(conn, registration_id)
    if row is None:
        raise NotFound(f"registration {registration_id} not found")
    outcome, reason = review_outcome(RegistrationStatus(row["status"]), approve, note)
    await change_status(conn, outbox, row, outcome, reason)
    return outcome

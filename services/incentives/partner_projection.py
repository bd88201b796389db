"""The partner projection: each partner's tier and status as onboarding last described them,
which the rules use when a credit is booked (an older snapshot never wins), and the credits
held for a partner until its state settles, booked when it does."""

from __future__ import annotations

from services.incentives import repository
from services.incentives.booking import Booked, book_credits, subject_of
from services.incentives.domain.programs import IncentivePrograms
from shared.consumer import TransientError
from shared.db import Connection
from shared.events.partners import PartnerStateChanged


class HeldMeanwhile(TransientError):
    """A credit was held for the partner between reading its held credits and taking its
    locks: the projection runs again, with that credit's locks too."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(f"a credit was held for {partner_id} while its state changed; retrying")


async def project_partner(
    conn: Connection, programs: IncentivePrograms, event: PartnerStateChanged
) -> Booked:
    """Keep the partner's snapshot; once its status no longer makes credits wait, book the
    credits held for it, in the order they arrived (earning, or refused with the reason).

    Holding a credit takes its partner's lock; so does this, with the locks of the held
    credits' customers, in the one ascending order every run of credits takes them in."""
    held = await repository.held_credits(conn, event.partner_id)
    await repository.lock_run(
        conn, [subject_of(programs, credit.data) for credit in held], partners=[event.partner_id]
    )
    await repository.upsert_partner(conn, event)
    status = await repository.partner_status(conn, event.partner_id)
    if programs.hold_reason(status) is not None:
        return Booked()
    released = await repository.release_held_credits(
        conn, event.partner_id, [credit.data.credit_id for credit in held]
    )
    if await repository.holds_any(conn, event.partner_id):
        raise HeldMeanwhile(event.partner_id)
    if not released:
        return Booked()
    return await book_credits(conn, programs, released)

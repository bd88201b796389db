"""The partner projection: each partner's tier and status as onboarding last described them,
which the rules use when a credit is booked (an older snapshot never wins), and the credits
held for a partner until its state settles, booked when it does.

A held credit that cannot be booked is the credit's failure, not the partner's: it is
dead-lettered with its reason (as it would have been, had it arrived after its partner) and
the partner's state and its other credits are applied. Before, one such credit (an amount of
1E+999999 held before the contract bounded amounts) made every later state of its partner fail
and be dead-lettered in its place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from services.incentives import repository
from services.incentives.booking import Booked, book_credits, subject_of
from services.incentives.domain.evaluation import refusal
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.repository import HeldCredit
from shared.consumer import TRANSIENT_ERRORS, TransientError
from shared.db import Connection
from shared.dead_lettering import describe_failure
from shared.events import InvalidEvent
from shared.events.partners import PartnerStateChanged
from shared.topics import ATTRIBUTION_CREDITS

log = logging.getLogger(__name__)

# Dead-letters a kept event: (its topic, its envelope as stored, why): HandlerContext's.
DeadLetterKept = Callable[[str, bytes, str], Awaitable[None]]


class HeldMeanwhile(TransientError):
    """A credit was held for the partner between reading its held credits and taking its
    locks: the projection runs again, with that credit's locks too."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(f"a credit was held for {partner_id} while its state changed; retrying")


async def project_partner(
    conn: Connection,
    programs: IncentivePrograms,
    event: PartnerStateChanged,
    dead_letter: DeadLetterKept | None = None,
) -> Booked:
    """Keep the partner's snapshot; once its status no longer makes credits wait, book the
    credits held for it, in the order they arrived (earning, or refused with the reason); one
    that cannot be booked goes to `dead_letter` (without one: the partner's event fails).

    Holding a credit takes its partner's lock; so does this, with the locks of the held
    credits' customers, in the one ascending order every run of credits takes them in."""
    held = await repository.held_credits(conn, event.partner_id)
    readable = [credit.event.data for credit in held if credit.event is not None]
    await repository.lock_run(
        conn, [subject_of(programs, credit) for credit in readable], partners=[event.partner_id]
    )
    await repository.upsert_partner(conn, event)
    status = await repository.partner_status(conn, event.partner_id)
    if programs.hold_reason(status) is not None:
        return Booked()
    released = await repository.release_held_credits(
        conn, event.partner_id, [credit.credit_id for credit in held]
    )
    if await repository.holds_any(conn, event.partner_id):
        raise HeldMeanwhile(event.partner_id)
    if not released:
        return Booked()
    return await _book_released(conn, programs, released, dead_letter)


async def _book_released(
    conn: Connection,
    programs: IncentivePrograms,
    released: Sequence[HeldCredit],
    dead_letter: DeadLetterKept | None,
) -> Booked:
    """Book the released credits as one run; if that fails, one at a time, each in a
    savepoint, dead-lettering those that fail (a run books what the same credits book one at
    a time, so the others book what they would have)."""
    if all(_unbookable(programs, credit) is None for credit in released):
        try:
            async with conn.transaction():
                return await book_credits(conn, programs, [c.event for c in released if c.event])
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.info("held credits failed as a run; booking them one at a time", exc_info=True)
    booked = Booked()
    for credit in released:
        why = _unbookable(programs, credit)
        if why is None and credit.event is not None:
            try:
                async with conn.transaction():
                    one = await book_credits(conn, programs, [credit.event])
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:
                why = f"booking failed: {describe_failure(error)}"
            else:
                booked.outcomes += one.outcomes
                booked.events += one.events
                continue
        reason = f"held credit {credit.credit_id} not booked when its partner settled: {why}"
        if dead_letter is None:
            raise InvalidEvent(reason)
        await dead_letter(ATTRIBUTION_CREDITS.name, credit.value, reason)
    return booked


def _unbookable(programs: IncentivePrograms, credit: HeldCredit) -> str | None:
    """Why a released credit cannot be booked before trying (None: try it)."""
    if credit.event is None:
        return credit.unreadable
    data = credit.event.data
    return refusal(programs, credit_id=data.credit_id, amount=data.amount, currency=data.currency)

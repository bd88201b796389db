"""The programme year, run on the schedule and on a channel manager's demand (`as_of` drives
time): each partner in the programme is told ahead of its annual review, reviewed on the day,
and its probation decided at its deadline, each partner in its own transaction. Decisions go
through the lifecycle (a demotion, an expulsion are partner versions as any other), are
recorded with their reasons, told to the partner and announced on partners.programme.v1.
Appeals: filed by the partner (or a channel manager for it), decided by a channel manager;
upheld reverses the decision."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from services.onboarding import programme_repository as store
from services.onboarding import repository
from services.onboarding.announcements import (
    announce_programme_fact,
    record_step,
    record_version,
)
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import (
    IN_PROGRAM,
    Change,
    appeal_restores,
    check_appeal_reversal,
)
from services.onboarding.domain.programme_year import (
    APPEALABLE,
    Decision,
    Standing,
    check_appealable,
    next_review,
    notice_due,
    review,
)
from services.onboarding.domain.tiers import derive_competencies, revenue_in_window
from services.onboarding.partner_runs import each_partner
from services.onboarding.repository import SERVICE, Row, new_id
from shared.db import Connection, Pool, from_row
from shared.errors import Conflict, NotFound
from shared.events.notifications import NotificationKind
from shared.events.partners import PartnerStatus as S
from shared.events.programme import RequalificationAppealDecided, RequalificationDecided
from shared.events.programme import RequalificationOutcome as Outcome
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent


async def run_programme_year(
    pool: Pool,
    outbox: Outbox,
    config: OnboardingConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
    *,
    by: str = SERVICE,
) -> dict[str, list[str]]:
    """Notices, reviews and probation deadlines due as of `as_of`, per partner that had one;
    the changes are recorded as `by`'s (the scheduled job's, or the channel manager who asked)."""
    ids = partner_ids
    if ids is None:
        ids = await store.partners_with_status(pool, {s.value for s in IN_PROGRAM})

    async def year_of(conn: Connection, partner_id: str) -> list[str]:
        return await _year_of(conn, outbox, config, partner_id, as_of, by)

    return await each_partner(pool, ids, "programme year", year_of)


async def _year_of(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    as_of: datetime,
    by: str,
) -> list[str]:
    row = await repository.lock_partner(conn, partner_id)
    activated = await store.activated_on(conn, partner_id)
    if S(row["status"]) not in IN_PROGRAM or activated is None:
        return []
    # Only this membership's reviews count: a partner activated again (re-onboarded after an
    # expulsion) starts a new programme year.
    reviews = [r for r in await store.reviews_of(conn, partner_id) if r["decided_at"] >= activated]
    annual = [r for r in reviews if r["basis"] == "annual"]
    last = annual[-1] if annual else None
    today = as_of.date()
    if last is not None and _open_probation(last, reviews):
        if today < last["probation_until"]:
            return []
        decision = await _decide(conn, config, row, as_of, probation_ends=True)
        await _record(
            conn, outbox, config, row, decision, last["probation_until"], "probation_end", as_of, by
        )
        return [f"probation_end:{decision.outcome.value}"]
    review_on = next_review(
        config.programme_year, activated.date(), last["review_on"] if last else None
    )
    if today >= review_on:
        decision = await _decide(conn, config, row, as_of, probation_ends=False)
        await _record(conn, outbox, config, row, decision, review_on, "annual", as_of, by)
        return [f"review:{decision.outcome.value}"]
    sent = await store.notices_sent(conn, partner_id, review_on)
    days = notice_due(config.programme_year.notice_days, review_on, today, sent)
    if days is None or not await store.insert_notice(conn, partner_id, review_on, days, as_of):
        return []
    await outbox.publish_many(conn, [_notice(config, row, review_on, days, as_of)])
    return [f"notice:{days}"]


def _open_probation(last: Row, reviews: list[Row]) -> bool:
    return (
        last["outcome"] == Outcome.PROBATION.value
        and last["reversed_at"] is None
        and not any(
            r["basis"] == "probation_end" and r["review_on"] == last["probation_until"]
            for r in reviews
        )
    )


async def _decide(
    conn: Connection, config: OnboardingConfig, row: Row, as_of: datetime, *, probation_ends: bool
) -> Decision:
    partner_id = row["partner_id"]
    days = (await repository.revenue_days(conn, config, [partner_id], as_of))[partner_id]
    held = (await repository.certifications_of(conn, [partner_id]))[0][partner_id]
    standing = from_row(
        Standing,
        row,
        status=S(row["status"]),
        revenue=revenue_in_window(config, days, as_of),
        competencies=derive_competencies(config, held, as_of),
        valid_certifications=await store.valid_certifications(conn, partner_id, as_of),
        health=await store.health_of(conn, partner_id),
    )
    return review(config, standing, as_of, probation_ends=probation_ends)


async def _record(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    decision: Decision,
    review_on: date,
    kind: str,
    at: datetime,
    by: str,
) -> None:
    """The decision recorded, its lifecycle consequences (as `by`'s), the partner told, the
    fact announced."""
    review_id = new_id("rev")
    appeal_until = (
        at + timedelta(days=config.programme_year.appeal_days)
        if decision.outcome in APPEALABLE
        else None
    )
    reason = f"annual review {review_on.isoformat()}: {decision.outcome.value}; " + "; ".join(
        decision.reasons
    )
    if decision.outcome is Outcome.EXPELLED and appeal_until is not None:
        # The expulsion's own notice says it (found in review: the decision's message saying
        # so is held with everything else for a partner without access, so an expelled
        # partner was never told it could appeal, and the window passed unseen).
        reason += (
            f"; you may appeal to your channel manager until {appeal_until.date().isoformat()}"
        )
    await _consequences(conn, outbox, row, decision, reason, at, by)
    await store.insert_review(
        conn,
        {
            "review_id": review_id,
            "partner_id": row["partner_id"],
            "review_on": review_on,
            "basis": kind,
            "outcome": decision.outcome.value,
            "status_before": row["status"],
            "grace_until_before": row["grace_until"],
            "status_after": decision.status.value,
            "tier_before": row["tier"],
            "tier_after": decision.tier,
            "reasons": list(decision.reasons),
            "plan": list(decision.plan),
            "probation_until": decision.probation_until,
            "appeal_until": appeal_until,
            "decided_at": at,
        },
    )
    fact = RequalificationDecided(
        review_id=review_id,
        partner_id=row["partner_id"],
        review_on=review_on,
        basis=kind,
        outcome=decision.outcome,
        tier_before=row["tier"],
        tier_after=decision.tier,
        reasons=decision.reasons,
        plan=decision.plan,
        probation_until=decision.probation_until,
        appeal_until=appeal_until,
        decided_at=at,
    )
    await announce_programme_fact(
        conn,
        outbox,
        fact,
        row["partner_id"],
        NotificationKind.REQUALIFICATION,
        about=f"{row['partner_id']}/review/{review_id}",
        subject=f"{row['company_name']}: annual review {review_on.isoformat()}, "
        f"{decision.outcome.value.replace('_', ' ')}",
        told=_told(row, decision, review_on, appeal_until),
        at=at,
    )


async def _consequences(
    conn: Connection,
    outbox: Outbox,
    row: Row,
    decision: Decision,
    reason: str,
    at: datetime,
    by: str,
) -> None:
    """A decision's tier and status consequences, as partner versions through the lifecycle."""
    if decision.outcome is Outcome.EXPELLED:
        await record_step(
            conn,
            outbox,
            row,
            S.EXPELLED,
            Change.EXPELLED,
            by=by,
            reason=reason,
            at=at,
            grace_until=None,
        )
    elif decision.tier != row["tier"]:
        await record_version(
            conn, outbox, row, Change.DEMOTED, by=by, reason=reason, at=at, tier=decision.tier
        )
    elif decision.outcome is Outcome.PROBATION:
        await record_version(conn, outbox, row, Change.UPDATED, by=by, reason=reason, at=at)


def _told(row: Row, decision: Decision, review_on: date, appeal_until: datetime | None) -> str:
    lines = [
        f"Your annual review of {review_on.isoformat()}: {decision.outcome.value}.",
        *(f"- {reason}" for reason in decision.reasons),
    ]
    if decision.probation_until is not None:
        lines.append(f"Your plan, to meet by {decision.probation_until.isoformat()}:")
        lines.extend(f"- {target}" for target in decision.plan)
    if decision.tier != row["tier"]:
        lines.append(f"Tier: {row['tier']} -> {decision.tier}.")
    if appeal_until is not None:
        lines.append(
            f"You may appeal to your channel manager until {appeal_until.date().isoformat()}."
        )
    return "\n".join(lines)


def _notice(
    config: OnboardingConfig, row: Row, review_on: date, days: int, at: datetime
) -> OutgoingEvent:
    minimum = config.programme_year.minimum
    wanted = [f"attributed revenue of at least {minimum.min_revenue}"]
    if minimum.min_certifications:
        wanted.append(f"at least {minimum.min_certifications} valid certifications")
    if minimum.min_health is not None:
        wanted.append(f"a health score of at least {minimum.min_health}")
    if minimum.agreement_required:
        wanted.append("a signed partner agreement valid past the review")
    return notify(
        row["partner_id"],
        NotificationKind.REQUALIFICATION,
        about=f"{row['partner_id']}/year/{review_on.isoformat()}/{days}d",
        subject=f"{row['company_name']}: annual review on {review_on.isoformat()} "
        f"({days} days' notice)",
        body=(
            f"On {review_on.isoformat()} your partnership is reviewed against the {row['tier']} "
            "bar and the programme minimum: " + "; ".join(wanted) + ". Below the minimum, a "
            "probation with a plan follows; below the tier's bar, a demotion."
        ),
        created_at=at,
    )


# -- appeals ---------------------------------------------------------------------------------


async def file_appeal(
    pool: Pool, review_id: str, grounds: str, *, partner_scope: str | None, by: str, at: datetime
) -> Row:
    """An appeal of a review's decision, within its window (`partner_scope`: the partner a
    partner's person acts for; another partner's review is not found)."""
    async with pool.acquire() as conn, conn.transaction():
        review_row = await store.lock_review(conn, review_id)
        if review_row is None or partner_scope not in (None, review_row["partner_id"]):
            raise NotFound(f"review {review_id} not found")
        appealed = await store.appeal_of_review(conn, review_id)
        check_appealable(
            Outcome(review_row["outcome"]),
            review_row["appeal_until"] or at,
            review_row["reversed_at"] is not None,
            appealed is not None,
            at,
        )
        return await store.insert_appeal(conn, new_id("apl"), review_row, grounds, by, at)


async def decide_appeal(
    pool: Pool, outbox: Outbox, appeal_id: str, *, upheld: bool, note: str, by: str, at: datetime
) -> Row:
    """A channel manager's decision; upheld reverses the review's outcome (the tier and status
    before it, through the lifecycle)."""
    async with pool.acquire() as conn, conn.transaction():
        appeal = await store.lock_appeal(conn, appeal_id)
        if appeal is None:
            raise NotFound(f"appeal {appeal_id} not found")
        if appeal["decided_at"] is not None:
            raise Conflict(f"appeal {appeal_id} was decided on {appeal['decided_at'].date()}")
        review_row = await store.lock_review(conn, appeal["review_id"])
        assert review_row is not None
        if upheld:
            await _reverse(conn, outbox, review_row, note, by, at)
        decided = await store.decide_appeal(conn, appeal_id, upheld, note, by, at)
        fact = RequalificationAppealDecided(
            appeal_id=appeal_id,
            review_id=review_row["review_id"],
            partner_id=review_row["partner_id"],
            upheld=upheld,
            note=note,
            decided_by=by,
            decided_at=at,
        )
        verdict = "upheld: the decision is reversed" if upheld else "rejected: the decision stands"
        await announce_programme_fact(
            conn,
            outbox,
            fact,
            review_row["partner_id"],
            NotificationKind.REQUALIFICATION,
            about=f"{review_row['partner_id']}/appeal/{appeal_id}",
            subject=f"Your appeal of the review of {review_row['review_on']}: {verdict}",
            told=note,
            at=at,
        )
        return decided


async def _reverse(
    conn: Connection, outbox: Outbox, review_row: Row, note: str, by: str, at: datetime
) -> None:
    row = await repository.lock_partner(conn, review_row["partner_id"])
    if (row["status"], row["tier"]) != (review_row["status_after"], review_row["tier_after"]):
        raise Conflict(
            f"partner {row['partner_id']} has moved since the review ({row['status']}, "
            f"{row['tier']}): decide its standing by hand"
        )
    reason = f"appeal upheld, the review of {review_row['review_on']} is reversed: {note}"
    fields: dict[str, Any] = {"tier": review_row["tier_before"]}
    outcome = Outcome(review_row["outcome"])
    if outcome is Outcome.EXPELLED:
        target, grace_until = appeal_restores(
            S(review_row["status_before"]),
            review_row["grace_until_before"],
            review_row["decided_at"],
            at,
        )
        check_appeal_reversal(row["partner_id"], S(row["status"]), target)
        await record_version(
            conn,
            outbox,
            row,
            Change.REINSTATED,
            by=by,
            reason=reason,
            at=at,
            status=target.value,
            grace_until=grace_until,
            **fields,
        )
    else:
        change = Change.TIER_CHANGED if row["tier"] != review_row["tier_before"] else Change.UPDATED
        await record_version(conn, outbox, row, change, by=by, reason=reason, at=at, **fields)
    await store.reverse_review(conn, review_row["review_id"], at)

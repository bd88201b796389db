"""Partner voice: satisfaction surveys sent to partners through their notifications, answered
once per survey and person (each answer announced for health signals), and the partner
advisory council's members and meetings."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from services.programme import repository, views
from services.programme.domain.voice import (
    DEFAULT_QUESTION,
    category,
    check_closing,
    check_open,
)
from shared.audit import record_action
from shared.db import Connection
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.notifications import NotificationKindV4
from shared.events.programme_service import SurveyAnswered
from shared.identity import Caller
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PROGRAMME_VOICE


async def send_survey(
    conn: Connection,
    outbox: Outbox,
    who: Caller,
    question: str | None,
    tiers: list[str],
    types: list[str],
    closes_at: datetime,
    at: datetime,
) -> tuple[uuid.UUID, int]:
    """The survey and, in the same transaction, one notification per partner asked (its
    people see it in their inbox, stream, webhooks and e-mail). Returns its id and how many
    partners were asked; an audience with no active partner is refused."""
    check_closing(closes_at, at)
    partners = await views.audience(conn, tiers, types)
    if not partners:
        raise Unprocessable("no active partner is in the survey's audience")
    survey_id = uuid.uuid4()
    asked = question or DEFAULT_QUESTION
    await repository.insert_survey(
        conn, survey_id, asked, tiers, types, closes_at, partners, who.subject, at
    )
    await outbox.publish_many(
        conn,
        [
            notify(
                partner_id,
                NotificationKindV4.SURVEY,
                about=f"survey/{survey_id}",
                subject="Your view of the partner programme",
                body=f"{asked}\nAnswer by {closes_at.date().isoformat()}: survey {survey_id}.",
                created_at=at,
            )
            for partner_id in partners
        ],
    )
    await record_action(conn, who, "survey.send", str(survey_id))
    return survey_id, len(partners)


async def answer(
    conn: Connection,
    outbox: Outbox,
    who: Caller,
    survey_id: uuid.UUID,
    score: int,
    comment: str,
    at: datetime,
) -> uuid.UUID:
    """A partner's person answers (once per survey and person; the answer is announced with
    its score and category, never the comment or the person)."""
    partner_id = who.partner_id
    if partner_id is None:
        raise Unprocessable("only a partner's people answer a survey")
    survey = await views.survey_for(conn, survey_id, partner_id)
    if survey is None:
        raise NotFound(f"survey {survey_id} not found")
    check_open(survey["closes_at"], at)
    version = await views.latest_version(conn, partner_id)
    tier = version["tier"] if version is not None else None
    partner_type = version["partner_type"] if version is not None else None
    answer_id = uuid.uuid4()
    stored = await repository.insert_answer(
        conn,
        repository.AnswerRow(
            answer_id, survey_id, partner_id, who.subject, score, comment, tier, partner_type, at
        ),
    )
    if not stored:
        raise Conflict("you have already answered this survey")
    announced = SurveyAnswered(
        answer_id=str(answer_id),
        survey_id=str(survey_id),
        partner_id=partner_id,
        score=score,
        category=category(score).value,
        tier=tier,
        partner_type=partner_type,
        answered_at=at,
    )
    await outbox.publish_many(conn, [OutgoingEvent(PROGRAMME_VOICE, announced, partner_id)])
    await record_action(conn, who, "survey.answer", str(survey_id))
    return answer_id


async def seat_member(
    conn: Connection,
    who: Caller,
    partner_id: str,
    representative: str,
    role: str,
    joined_on: date,
    left_on: date | None,
    at: datetime,
) -> None:
    """A partner's seat on the advisory council (its representative and role; `left_on` when
    it stepped down)."""
    if await views.latest_version(conn, partner_id) is None:
        raise NotFound(f"partner {partner_id} not found")
    await repository.seat_member(
        conn, partner_id, representative, role, joined_on, left_on, who.subject, at
    )
    await record_action(conn, who, "council.member", partner_id)


async def record_meeting(
    conn: Connection,
    who: Caller,
    held_on: date,
    attendees: list[str],
    agenda: str,
    notes: str,
    decisions: list[dict[str, str | None]],
    at: datetime,
) -> uuid.UUID:
    """A council meeting: only members seated on that day attend."""
    seated = await repository.seated_members(conn, attendees, held_on)
    strangers = sorted(set(attendees) - seated)
    if strangers:
        raise Unprocessable(f"not council members on {held_on.isoformat()}: {', '.join(strangers)}")
    meeting_id = uuid.uuid4()
    await repository.insert_meeting(
        conn, meeting_id, held_on, sorted(set(attendees)), agenda, notes, decisions, who.subject, at
    )
    await record_action(conn, who, "council.meeting", str(meeting_id))
    return meeting_id

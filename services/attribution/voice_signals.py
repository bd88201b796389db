"""Partner voice kept for the health score: the survey answers programme announced
(programme.survey_answered.v1), each once, and a partner's last two quarters of them read back
as the voice signal's inputs (domain/voice.py judges them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from services.attribution.domain.voice import VoiceInputs, VoicePolicy, voice_inputs
from shared.db import Connection
from shared.events.programme_service import SurveyAnswered


async def record_answers(conn: Connection, answers: Sequence[SurveyAnswered]) -> None:
    """Keep each answer once (the inbox drops a redelivered event; the answer id drops the
    same answer announced twice), one statement."""
    await conn.execute(
        """
        INSERT INTO voice_answers (answer_id, survey_id, partner_id, score, answered_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[],
                             $5::timestamptz[])
        ON CONFLICT (answer_id) DO NOTHING
        """,
        [a.answer_id for a in answers],
        [a.survey_id for a in answers],
        [a.partner_id for a in answers],
        [a.score for a in answers],
        [a.answered_at for a in answers],
    )


async def partners_voice(
    conn: Connection, policy: VoicePolicy, partner_ids: Sequence[str], day: date
) -> dict[str, VoiceInputs]:
    """Each partner's answers of the two quarters ending with `day` (UTC days), counted."""
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    start = end - timedelta(days=2 * policy.quarter_days)
    answers: dict[str, list[tuple[date, int]]] = {partner_id: [] for partner_id in partner_ids}
    for r in await conn.fetch(
        """SELECT partner_id, answered_at, score FROM voice_answers
           WHERE partner_id = ANY($1::text[]) AND answered_at >= $2 AND answered_at < $3
           ORDER BY partner_id, answered_at, answer_id""",
        list(answers),
        start,
        end,
    ):
        answers[r["partner_id"]].append((r["answered_at"].astimezone(UTC).date(), r["score"]))
    return {partner_id: voice_inputs(policy, day, given) for partner_id, given in answers.items()}

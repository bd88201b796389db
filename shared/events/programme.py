"""Partner voice produced by programme (topic programme.voice.v1, key: partner id).

Every answer to a satisfaction survey, so a health signal can follow a partner's mood: the
score and its NPS category, never the comment or the person who answered."""

from __future__ import annotations

from pydantic import Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("programme.survey_answered.v1")
class SurveyAnswered(EventPayload):
    answer_id: str
    survey_id: str
    partner_id: str
    score: int = Field(ge=0, le=10, description="how likely the person is to recommend (0-10)")
    category: str = Field(description="promoter (9-10) | passive (7-8) | detractor (0-6)")
    tier: str | None = Field(description="the partner's tier when it answered, if known")
    partner_type: str | None = None
    answered_at: UtcDatetime

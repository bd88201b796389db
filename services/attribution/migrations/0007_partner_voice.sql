-- Partner voice as consumed from programme.voice.v1 (programme.survey_answered.v1): each answer
-- once (its id), with the score and when it was given; never the comment or the person (the
-- event carries neither). The health score reads a partner's last two quarters of answers.
CREATE TABLE voice_answers (
    answer_id    text PRIMARY KEY,
    survey_id    text NOT NULL,
    partner_id   text NOT NULL,
    score        smallint NOT NULL CHECK (score BETWEEN 0 AND 10),
    answered_at  timestamptz NOT NULL
);
CREATE INDEX voice_answers_partner ON voice_answers (partner_id, answered_at);

-- A survey's answers are read a page at a time in the order they came
-- (`GET /surveys/{id}/answers?after=&limit=`): each page from this index, not a sort of all of
-- the survey's answers.
CREATE INDEX survey_answers_by_survey ON survey_answers (survey_id, answered_at, answer_id);

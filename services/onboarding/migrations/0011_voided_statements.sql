-- Voided statements (xAPI voiding: a later statement with the verb `voided` names one by its
-- id). A voided statement stays stored but does nothing: the certification it gave is voided
-- too (and stops counting); one voided before it arrives is never applied.
CREATE TABLE xapi_voided (
    statement_id  uuid PRIMARY KEY,          -- the statement voided (perhaps not stored yet)
    voided_by     uuid NOT NULL,             -- the voiding statement
    voided_at     timestamptz NOT NULL
);
ALTER TABLE certifications ADD COLUMN voided_at timestamptz;
CREATE INDEX certifications_by_statement ON certifications (statement_id)
    WHERE statement_id IS NOT NULL;

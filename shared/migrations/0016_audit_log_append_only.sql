-- The audit trail is append-only by the table's own rule, as the ledgers are: a trigger refuses
-- UPDATE, DELETE and TRUNCATE (the owner role cannot be denied these by REVOKE, and the
-- runtime role was granted them on every table). Found in review: anyone holding a service's
-- DATABASE_URL could delete the rows that named them, without a trace. It is kept for good.
-- The function serves every append-only table of the schema (onboarding's partner history).
CREATE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change();

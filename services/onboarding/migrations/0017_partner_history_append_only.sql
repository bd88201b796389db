-- A partner's history (every version: who changed what, why, when) is append-only by the
-- table's own rule, as the audit trail and the ledgers are.
CREATE FUNCTION refuse_partner_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the history % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER partner_history_append_only BEFORE UPDATE OR DELETE ON partner_history
    FOR EACH ROW EXECUTE FUNCTION refuse_partner_history_change();
CREATE TRIGGER partner_history_no_truncate BEFORE TRUNCATE ON partner_history
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_partner_history_change();

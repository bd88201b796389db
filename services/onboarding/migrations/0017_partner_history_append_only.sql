-- A partner's history (every version: who changed what, why, when) is append-only by the
-- table's own rule, as the audit trail and the ledgers are (the platform's function, shared
-- migration 0016).
CREATE TRIGGER partner_history_append_only BEFORE UPDATE OR DELETE ON partner_history
    FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change();
CREATE TRIGGER partner_history_no_truncate BEFORE TRUNCATE ON partner_history
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change();

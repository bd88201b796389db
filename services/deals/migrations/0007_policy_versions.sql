-- The rules of engagement as a versioned document: a version is proposed once (its document
-- never edited in place) and activated at a time; the version in force at a moment is the one
-- of the latest activation at or before it. Both tables are append-only (a trigger refuses
-- UPDATE, DELETE and TRUNCATE): a rollback is a new activation of an older version.
CREATE TABLE policy_versions (
    version      text PRIMARY KEY,
    document     jsonb NOT NULL,
    note         text NOT NULL DEFAULT '',
    proposed_by  text NOT NULL,
    proposed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE policy_activations (
    seq           bigserial PRIMARY KEY,
    version       text NOT NULL REFERENCES policy_versions (version),
    active_from   timestamptz NOT NULL,
    activated_by  text NOT NULL,
    activated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX policy_activations_by_time ON policy_activations (active_from DESC, seq DESC);

CREATE FUNCTION refuse_policy_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_policy_change();
CREATE TRIGGER policy_versions_no_truncate BEFORE TRUNCATE ON policy_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_policy_change();
CREATE TRIGGER policy_activations_append_only BEFORE UPDATE OR DELETE ON policy_activations
    FOR EACH ROW EXECUTE FUNCTION refuse_policy_change();
CREATE TRIGGER policy_activations_no_truncate BEFORE TRUNCATE ON policy_activations
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_policy_change();

-- Each partner's account manager (the vendor's person who owns the relationship), and every
-- assignment with who made it: the audit trail of who managed a partner when.
ALTER TABLE partners ADD COLUMN account_manager text;

CREATE TABLE account_manager_assignments (
    partner_id   text NOT NULL REFERENCES partners,
    manager      text NOT NULL,
    previous     text,
    note         text NOT NULL DEFAULT '',
    assigned_by  text NOT NULL,
    assigned_at  timestamptz NOT NULL,
    PRIMARY KEY (partner_id, assigned_at)
);

-- What was last published per quarter on programme.kpis.v1 (a fingerprint of its figures):
-- a snapshot goes out only when a figure changed, and one instance at a time decides (the
-- quarter's row is locked while it does).
CREATE TABLE kpi_snapshots (
    quarter      text PRIMARY KEY,
    fingerprint  text        NOT NULL,
    published_at timestamptz NOT NULL
);

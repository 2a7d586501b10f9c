-- One row per housekeeping job: which replica holds it, until when (µs). A replica runs the job
-- only while it holds the lease, so purges run on one replica at a time.
CREATE TABLE maintenance_leases (
    name   VARCHAR(64)  NOT NULL PRIMARY KEY,
    holder VARCHAR(128) NOT NULL,
    until  BIGINT       NOT NULL
);
-- Purges find old sessions and audit events by these.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at);

DROP INDEX sessions_revoked_at_idx ON sessions;
DROP TABLE maintenance_leases;

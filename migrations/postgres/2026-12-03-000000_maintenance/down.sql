DROP INDEX sessions_revoked_at_idx;
DROP TABLE maintenance_leases;

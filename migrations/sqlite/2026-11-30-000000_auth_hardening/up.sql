-- Credential versions (a password change ends every session opened with the old password, even
-- one opened by a login that raced the change) and the previous refresh-token hash (only a token
-- really issued for a session counts as reuse; the reuse grace accepts it once more).
ALTER TABLE users ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN previous_refresh_hash VARCHAR(64);
ALTER TABLE sessions ADD COLUMN rotated_at BIGINT;

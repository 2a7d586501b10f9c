-- Email changes and their revert links: the address a change replaced (and whether it was
-- verified) keeps receiving reset links for 7 days while the new one is unverified, and the link
-- mailed to it (stored as SHA-256 only) undoes the change once. Written in the transaction of the
-- update that changes the address. Same shape in migrations/postgres and migrations/mysql.
-- Timestamps: microseconds since the Unix epoch.
CREATE TABLE email_changes (
    id                VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id           VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_email         VARCHAR(254) NOT NULL,
    old_verified      BOOLEAN NOT NULL,
    new_email         VARCHAR(254) NOT NULL,
    revert_token_hash VARCHAR(64) NOT NULL UNIQUE,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    reverted_at       BIGINT
);
CREATE INDEX email_changes_user_idx ON email_changes (user_id, created_at);
CREATE INDEX email_changes_expires_at_idx ON email_changes (expires_at);

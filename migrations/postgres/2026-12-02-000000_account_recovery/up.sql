-- Mailed single-use tokens (password reset, email verification), stored as SHA-256 only, and the
-- transactional outbox: a mail row is written in the same transaction as its token and a
-- delivery worker leases it (SELECT ... FOR UPDATE SKIP LOCKED, then lease_until / leased_by)
-- until SMTP took it. Same shape in migrations/sqlite and migrations/mysql. Timestamps: microseconds since the Unix epoch.
CREATE TABLE account_tokens (
    id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id            VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose            VARCHAR(16) NOT NULL CHECK (purpose IN ('reset', 'verify')),
    token_hash         VARCHAR(64) NOT NULL UNIQUE,
    email              VARCHAR(254) NOT NULL,
    credential_version INTEGER NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    used_at            BIGINT
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose, created_at);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);

CREATE TABLE outbox (
    id              VARCHAR(36) NOT NULL PRIMARY KEY,
    recipient       VARCHAR(254) NOT NULL,
    subject         VARCHAR(255) NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_by       VARCHAR(64),
    lease_until     BIGINT,
    sent_at         BIGINT,
    failed_at       BIGINT,
    last_error      VARCHAR(500),
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox (sent_at, failed_at, next_attempt_at);
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

-- Mailed single-use tokens (password reset, email verification), stored as SHA-256 only, and the
-- transactional outbox: a mail row is written in the same transaction as its token and a
-- delivery worker leases it (SELECT ... FOR UPDATE SKIP LOCKED, then lease_until / leased_by)
-- until SMTP took it. Same shape in migrations/sqlite and migrations/postgres.
CREATE TABLE account_tokens (
    id                 VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id            VARCHAR(36)  NOT NULL,
    purpose            VARCHAR(16)  NOT NULL,
    token_hash         VARCHAR(64)  NOT NULL,
    email              VARCHAR(254) NOT NULL,
    credential_version INT          NOT NULL,
    created_at         BIGINT       NOT NULL,
    expires_at         BIGINT       NOT NULL,
    used_at            BIGINT,
    CONSTRAINT account_tokens_purpose_check CHECK (purpose IN ('reset', 'verify')),
    UNIQUE INDEX account_tokens_hash_key (token_hash),
    INDEX account_tokens_user_idx (user_id, purpose, created_at),
    INDEX account_tokens_expires_at_idx (expires_at),
    CONSTRAINT account_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE outbox (
    id              VARCHAR(36)  NOT NULL PRIMARY KEY,
    recipient       VARCHAR(254) NOT NULL,
    subject         VARCHAR(255) NOT NULL,
    text_body       TEXT         NOT NULL,
    html_body       TEXT         NOT NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    next_attempt_at BIGINT       NOT NULL,
    leased_by       VARCHAR(64),
    lease_until     BIGINT,
    sent_at         BIGINT,
    failed_at       BIGINT,
    last_error      VARCHAR(500),
    created_at      BIGINT       NOT NULL,
    INDEX outbox_due_idx (sent_at, failed_at, next_attempt_at),
    INDEX outbox_created_at_idx (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

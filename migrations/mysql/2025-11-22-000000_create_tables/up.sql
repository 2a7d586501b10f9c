-- arcana schema (MySQL / MariaDB). Same shape in migrations/sqlite and migrations/postgres.
-- ids: UUID text; timestamps: BIGINT microseconds since the Unix epoch (UTC).
-- username_key / email_key = lower(username) / lower(email) while the user is not deleted and
-- NULL once soft-deleted: their UNIQUE indexes enforce case-insensitive uniqueness, and soft
-- delete frees both names (NULLs never collide).
-- utf8mb4_bin: byte-order sorting and comparisons as in SQLite (BINARY) and PostgreSQL
-- (COLLATE "C"); case-insensitivity comes from the *_key columns, not from the collation.
-- Index sizes: VARCHAR(255) utf8mb4 = 1020 bytes, (email, id) = 1160 bytes, all below InnoDB's
-- 3072-byte limit for the DYNAMIC row format (the default since MySQL 5.7 / MariaDB 10.2).
CREATE TABLE users (
    id                 VARCHAR(36)  NOT NULL PRIMARY KEY,
    username           VARCHAR(80)  NOT NULL,
    username_key       VARCHAR(255),
    email              VARCHAR(254) NOT NULL,
    email_key          VARCHAR(255),
    password_hash      VARCHAR(255) NOT NULL,
    first_name         VARCHAR(50),
    last_name          VARCHAR(50),
    phone              VARCHAR(20),
    avatar_url         VARCHAR(255),
    role               VARCHAR(16)  NOT NULL DEFAULT 'user',
    status             VARCHAR(16)  NOT NULL DEFAULT 'active',
    is_verified        BOOLEAN      NOT NULL DEFAULT FALSE,
    failed_login_count INT          NOT NULL DEFAULT 0,
    locked_until       BIGINT,
    created_at         BIGINT       NOT NULL,
    updated_at         BIGINT       NOT NULL,
    last_login_at      BIGINT,
    CONSTRAINT users_role_check CHECK (role IN ('guest', 'user', 'admin')),
    CONSTRAINT users_status_check CHECK (status IN ('active', 'inactive', 'suspended', 'deleted')),
    UNIQUE INDEX users_username_key (username_key),
    UNIQUE INDEX users_email_key (email_key),
    INDEX users_created_at_idx (created_at, id),
    INDEX users_username_idx (username, id),
    INDEX users_email_idx (email, id),
    INDEX users_last_login_at_idx (last_login_at, id),
    INDEX users_role_status_idx (role, status),
    INDEX users_status_created_at_idx (status, created_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

-- One row per refresh-token family; access tokens carry its id as `sid`.
CREATE TABLE sessions (
    id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id            VARCHAR(36) NOT NULL,
    refresh_token_hash VARCHAR(64) NOT NULL,
    generation         INT         NOT NULL DEFAULT 0,
    user_agent         TEXT,
    ip                 VARCHAR(64),
    created_at         BIGINT      NOT NULL,
    last_used_at       BIGINT      NOT NULL,
    expires_at         BIGINT      NOT NULL,
    revoked_at         BIGINT,
    revoked_reason     VARCHAR(32),
    INDEX sessions_user_idx (user_id, revoked_at),
    INDEX sessions_expires_at_idx (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE audit_events (
    id         VARCHAR(36)  NOT NULL PRIMARY KEY,
    at         BIGINT       NOT NULL,
    actor_id   VARCHAR(36),
    subject_id VARCHAR(36),
    action     VARCHAR(100) NOT NULL,
    outcome    VARCHAR(100) NOT NULL,
    ip         VARCHAR(64),
    request_id VARCHAR(128),
    details    TEXT,
    INDEX audit_events_subject_idx (subject_id, at),
    INDEX audit_events_at_idx (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

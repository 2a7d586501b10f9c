-- arcana schema (SQLite). Same shape in migrations/postgres and migrations/mysql.
-- ids: UUID text; timestamps: BIGINT microseconds since the Unix epoch (UTC).
-- username_key / email_key = lower(username) / lower(email) while the user is not deleted and
-- NULL once soft-deleted: their UNIQUE indexes enforce case-insensitive uniqueness, and soft
-- delete frees both names (NULLs never collide).
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
    role               VARCHAR(16)  NOT NULL DEFAULT 'user'
        CONSTRAINT users_role_check CHECK (role IN ('guest', 'user', 'admin')),
    status             VARCHAR(16)  NOT NULL DEFAULT 'active'
        CONSTRAINT users_status_check CHECK (status IN ('active', 'inactive', 'suspended', 'deleted')),
    is_verified        BOOLEAN      NOT NULL DEFAULT FALSE,
    failed_login_count INTEGER      NOT NULL DEFAULT 0,
    locked_until       BIGINT,
    created_at         BIGINT       NOT NULL,
    updated_at         BIGINT       NOT NULL,
    last_login_at      BIGINT
);

CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email_key);
-- list sorting and keyset pagination: (sort column, id)
CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_username_idx ON users (username, id);
CREATE INDEX users_email_idx ON users (email, id);
CREATE INDEX users_last_login_at_idx ON users (last_login_at, id);
-- role/status filters, count_active_admins, the last-admin guard
CREATE INDEX users_role_status_idx ON users (role, status);
CREATE INDEX users_status_created_at_idx ON users (status, created_at, id);

-- One row per refresh-token family; access tokens carry its id as `sid`.
CREATE TABLE sessions (
    id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id            VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash VARCHAR(64) NOT NULL,
    generation         INTEGER     NOT NULL DEFAULT 0,
    user_agent         TEXT,
    ip                 VARCHAR(64),
    created_at         BIGINT      NOT NULL,
    last_used_at       BIGINT      NOT NULL,
    expires_at         BIGINT      NOT NULL,
    revoked_at         BIGINT,
    revoked_reason     VARCHAR(32)
);

CREATE INDEX sessions_user_idx ON sessions (user_id, revoked_at);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE audit_events (
    id         VARCHAR(36)  NOT NULL PRIMARY KEY,
    at         BIGINT       NOT NULL,
    actor_id   VARCHAR(36),
    subject_id VARCHAR(36),
    action     VARCHAR(100) NOT NULL,
    outcome    VARCHAR(100) NOT NULL,
    ip         VARCHAR(64),
    request_id VARCHAR(128),
    details    TEXT
);

CREATE INDEX audit_events_subject_idx ON audit_events (subject_id, at);
CREATE INDEX audit_events_at_idx ON audit_events (at);

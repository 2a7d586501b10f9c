-- Personal access tokens: bearer credentials a user makes for scripts and CI jobs. token_hash is
-- the hex SHA-256 of the whole token (the token itself is shown once and never stored); scopes
-- the space-separated scopes it is narrowed to; credential_version the owner's when it was made
-- (a password change or reset kills it, as it ends sessions). Timestamps are microseconds since
-- the epoch; last_used_at is written at most once a minute per token.
CREATE TABLE access_tokens (
    id                  VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                VARCHAR(64)  NOT NULL,
    token_hash          VARCHAR(64)  NOT NULL UNIQUE,
    scopes              VARCHAR(255) NOT NULL,
    credential_version  INTEGER      NOT NULL,
    created_at          BIGINT       NOT NULL,
    expires_at          BIGINT       NOT NULL,
    last_used_at        BIGINT,
    revoked_at          BIGINT
);
CREATE INDEX access_tokens_user_idx ON access_tokens (user_id);

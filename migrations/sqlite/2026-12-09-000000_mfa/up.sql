-- Second factors. mfa_totp: one TOTP secret per account, encrypted by the service layer
-- (secret_enc; the repository never holds the key), pending until confirmed_at is set by a first
-- code; last_step is the newest RFC 6238 time step accepted (an equal or older one is a replay).
-- mfa_recovery_codes: single-use codes, stored as their SHA-256 (hex), spent when used_at is set.
-- mfa_challenges: the pending second step of a login (its mfa_token, as SHA-256), bound to the
-- account, the client network and the credential version the password was checked against;
-- single use (used_at). Timestamps are microseconds since the epoch.
CREATE TABLE mfa_totp (
    user_id             VARCHAR(36)  NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_enc          TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    confirmed_at        BIGINT,
    last_step           BIGINT
);

CREATE TABLE mfa_recovery_codes (
    user_id             VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash           VARCHAR(64)  NOT NULL,
    created_at          BIGINT       NOT NULL,
    used_at             BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash          VARCHAR(64)  NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network             VARCHAR(64)  NOT NULL,
    credential_version  INTEGER      NOT NULL,
    created_at          BIGINT       NOT NULL,
    expires_at          BIGINT       NOT NULL,
    used_at             BIGINT
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expiry_idx ON mfa_challenges (expires_at);

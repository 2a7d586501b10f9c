-- Second factors. mfa_totp: one TOTP secret per account, encrypted by the service layer
-- (secret_enc; the repository never holds the key), pending until confirmed_at is set by a first
-- code; last_step is the newest RFC 6238 time step accepted (an equal or older one is a replay).
-- mfa_recovery_codes: single-use codes, stored as their SHA-256 (hex), spent when used_at is set.
-- mfa_challenges: the pending second step of a login (its mfa_token, as SHA-256), bound to the
-- account, the client network and the credential version the password was checked against;
-- single use (used_at). Timestamps are microseconds since the epoch.
CREATE TABLE mfa_totp (
    user_id             VARCHAR(36)  NOT NULL PRIMARY KEY,
    secret_enc          TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    confirmed_at        BIGINT,
    last_step           BIGINT,
    CONSTRAINT mfa_totp_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE mfa_recovery_codes (
    user_id             VARCHAR(36)  NOT NULL,
    code_hash           VARCHAR(64)  NOT NULL,
    created_at          BIGINT       NOT NULL,
    used_at             BIGINT,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT mfa_recovery_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE mfa_challenges (
    token_hash          VARCHAR(64)  NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36)  NOT NULL,
    network             VARCHAR(64)  NOT NULL,
    credential_version  INTEGER      NOT NULL,
    created_at          BIGINT       NOT NULL,
    expires_at          BIGINT       NOT NULL,
    used_at             BIGINT,
    INDEX mfa_challenges_user_idx (user_id),
    INDEX mfa_challenges_expiry_idx (expires_at),
    CONSTRAINT mfa_challenges_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

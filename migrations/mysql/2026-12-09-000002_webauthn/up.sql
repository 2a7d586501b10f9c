-- Passkeys. webauthn_credentials: the WebAuthn credentials (passkeys) of an account, by their
-- credential id (base64url, unique across accounts), with the owner's name for each; credential is
-- the relying-party library's record of it as JSON (public key, signature counter, backup flags:
-- public material only). webauthn_ceremonies: a registration or authentication in flight, so that
-- any replica finishes what another started; state is the library's state of it (its challenge)
-- as JSON, kind what it is for (registration, second_factor, passwordless: no user_id); single
-- use (used_at) until expires_at. Timestamps are microseconds since the epoch.
CREATE TABLE webauthn_credentials (
    id                  VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36)  NOT NULL,
    credential_id       VARCHAR(255) NOT NULL,
    name                VARCHAR(64)  NOT NULL,
    credential          TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    last_used_at        BIGINT,
    UNIQUE KEY webauthn_credentials_credential_id_key (credential_id),
    INDEX webauthn_credentials_user_idx (user_id),
    CONSTRAINT webauthn_credentials_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE webauthn_ceremonies (
    id                  VARCHAR(36)  NOT NULL PRIMARY KEY,
    kind                VARCHAR(16)  NOT NULL,
    user_id             VARCHAR(36),
    state               TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    expires_at          BIGINT       NOT NULL,
    used_at             BIGINT,
    INDEX webauthn_ceremonies_expiry_idx (expires_at),
    CONSTRAINT webauthn_ceremonies_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

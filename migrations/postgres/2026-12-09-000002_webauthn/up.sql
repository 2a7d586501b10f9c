-- Passkeys. webauthn_credentials: the WebAuthn credentials (passkeys) of an account, by their
-- credential id (base64url, unique across accounts), with the owner's name for each; credential is
-- the relying-party library's record of it as JSON (public key, signature counter, backup flags:
-- public material only). webauthn_ceremonies: a registration or authentication in flight, so that
-- any replica finishes what another started; state is the library's state of it (its challenge)
-- as JSON, kind what it is for (registration, second_factor, passwordless: no user_id); single
-- use (used_at) until expires_at. Timestamps are microseconds since the epoch.
CREATE TABLE webauthn_credentials (
    id                  VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id       VARCHAR(255) NOT NULL UNIQUE,
    name                VARCHAR(64)  NOT NULL,
    credential          TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    last_used_at        BIGINT
);
CREATE INDEX webauthn_credentials_user_idx ON webauthn_credentials (user_id);

CREATE TABLE webauthn_ceremonies (
    id                  VARCHAR(36)  NOT NULL PRIMARY KEY,
    kind                VARCHAR(16)  NOT NULL,
    user_id             VARCHAR(36)  REFERENCES users (id) ON DELETE CASCADE,
    state               TEXT         NOT NULL,
    created_at          BIGINT       NOT NULL,
    expires_at          BIGINT       NOT NULL,
    used_at             BIGINT
);
CREATE INDEX webauthn_ceremonies_expiry_idx ON webauthn_ceremonies (expires_at);

-- The OpenID Connect authorization code flow. oidc_codes: single-use codes, stored as their
-- SHA-256 (hex), with what they were issued for; session_id is the token session opened when
-- the code was spent (revoked if it is presented again). oidc_grants: what a token session was
-- issued for (client, scopes, the SSO session behind it). oidc_consents: the scopes a user
-- allowed a client. Scopes are space-separated; timestamps are microseconds since the epoch.
CREATE TABLE oidc_codes (
    code_hash       VARCHAR(64)  NOT NULL PRIMARY KEY,
    client_id       VARCHAR(36)  NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    user_id         VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sso_session_id  VARCHAR(36)  NOT NULL,
    redirect_uri    TEXT         NOT NULL,
    scopes          VARCHAR(200) NOT NULL,
    nonce           VARCHAR(512),
    code_challenge  VARCHAR(128),
    auth_time       BIGINT       NOT NULL,
    created_at      BIGINT       NOT NULL,
    expires_at      BIGINT       NOT NULL,
    used_at         BIGINT,
    session_id      VARCHAR(36)
);
CREATE INDEX oidc_codes_expiry_idx ON oidc_codes (expires_at);

CREATE TABLE oidc_grants (
    session_id      VARCHAR(36)  NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    client_id       VARCHAR(36)  NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    sso_session_id  VARCHAR(36)  NOT NULL,
    scopes          VARCHAR(200) NOT NULL,
    auth_time       BIGINT       NOT NULL
);
CREATE INDEX oidc_grants_client_idx ON oidc_grants (client_id);
CREATE INDEX oidc_grants_sso_idx ON oidc_grants (sso_session_id);

CREATE TABLE oidc_consents (
    user_id         VARCHAR(36)  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id       VARCHAR(36)  NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    scopes          VARCHAR(200) NOT NULL,
    granted_at      BIGINT       NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX oidc_consents_client_idx ON oidc_consents (client_id);

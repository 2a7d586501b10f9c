-- The OpenID Connect authorization code flow. oidc_codes: single-use codes, stored as their
-- SHA-256 (hex), with what they were issued for; session_id is the token session opened when
-- the code was spent (revoked if it is presented again). oidc_grants: what a token session was
-- issued for (client, scopes, the SSO session behind it). oidc_consents: the scopes a user
-- allowed a client. Scopes are space-separated; timestamps are microseconds since the epoch.
CREATE TABLE oidc_codes (
    code_hash       VARCHAR(64)  NOT NULL PRIMARY KEY,
    client_id       VARCHAR(36)  NOT NULL,
    user_id         VARCHAR(36)  NOT NULL,
    sso_session_id  VARCHAR(36)  NOT NULL,
    redirect_uri    TEXT         NOT NULL,
    scopes          VARCHAR(200) NOT NULL,
    nonce           VARCHAR(512),
    code_challenge  VARCHAR(128),
    auth_time       BIGINT       NOT NULL,
    created_at      BIGINT       NOT NULL,
    expires_at      BIGINT       NOT NULL,
    used_at         BIGINT,
    session_id      VARCHAR(36),
    INDEX oidc_codes_expiry_idx (expires_at),
    CONSTRAINT oidc_codes_client_fk FOREIGN KEY (client_id) REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    CONSTRAINT oidc_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE oidc_grants (
    session_id      VARCHAR(36)  NOT NULL PRIMARY KEY,
    client_id       VARCHAR(36)  NOT NULL,
    sso_session_id  VARCHAR(36)  NOT NULL,
    scopes          VARCHAR(200) NOT NULL,
    auth_time       BIGINT       NOT NULL,
    INDEX oidc_grants_client_idx (client_id),
    INDEX oidc_grants_sso_idx (sso_session_id),
    CONSTRAINT oidc_grants_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
    CONSTRAINT oidc_grants_client_fk FOREIGN KEY (client_id) REFERENCES oidc_clients (client_id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

CREATE TABLE oidc_consents (
    user_id         VARCHAR(36)  NOT NULL,
    client_id       VARCHAR(36)  NOT NULL,
    scopes          VARCHAR(200) NOT NULL,
    granted_at      BIGINT       NOT NULL,
    PRIMARY KEY (user_id, client_id),
    INDEX oidc_consents_client_idx (client_id),
    CONSTRAINT oidc_consents_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT oidc_consents_client_fk FOREIGN KEY (client_id) REFERENCES oidc_clients (client_id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

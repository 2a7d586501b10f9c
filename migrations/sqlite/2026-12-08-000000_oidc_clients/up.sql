-- OpenID Connect relying parties. redirect_uris and post_logout_redirect_uris: JSON arrays of
-- exact URIs; allowed_scopes: space-separated; secret_hash: SHA-256 (hex) of the client secret,
-- NULL for a public client. Timestamps: microseconds since the Unix epoch.
CREATE TABLE oidc_clients (
    client_id                    VARCHAR(36)  NOT NULL PRIMARY KEY,
    name                         VARCHAR(100) NOT NULL,
    redirect_uris                TEXT         NOT NULL,
    post_logout_redirect_uris    TEXT         NOT NULL,
    is_public                    BOOLEAN      NOT NULL,
    allowed_scopes               VARCHAR(200) NOT NULL,
    require_consent              BOOLEAN      NOT NULL,
    id_token_alg                 VARCHAR(10)  NOT NULL,
    secret_hash                  VARCHAR(64),
    created_at                   BIGINT       NOT NULL,
    updated_at                   BIGINT       NOT NULL
)
;

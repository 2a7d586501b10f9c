-- Service accounts: principals administrators make for other services, with a role and scopes,
-- no password. Their client id is `sa_` and the id's hex digits; secret_hash is the hex SHA-256
-- of the secret, previous_secret_hash that of the secret the last rotation replaced, which works
-- until previous_secret_expires_at. Timestamps are microseconds since the epoch.
CREATE TABLE service_accounts (
    id                          VARCHAR(36)  NOT NULL PRIMARY KEY,
    name                        VARCHAR(64)  NOT NULL,
    role                        VARCHAR(16)  NOT NULL,
    scopes                      VARCHAR(255) NOT NULL,
    secret_hash                 VARCHAR(64)  NOT NULL,
    previous_secret_hash        VARCHAR(64),
    previous_secret_expires_at  BIGINT,
    created_at                  BIGINT       NOT NULL,
    secret_rotated_at           BIGINT       NOT NULL
)
;

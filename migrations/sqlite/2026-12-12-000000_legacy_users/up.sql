-- Users imported from arcana-cloud-python (`arcana import`): the Python id each arcana user came
-- from, kept for the operator (SELECT legacy_id, user_id FROM legacy_users) and for the next
-- run. row_digest and password_digest are SHA-256 of the source row and of its password hash at
-- the last import: a later run tells an unchanged row from one changed in the source since, and
-- replaces an arcana password only when the source password changed (never the hash of a user
-- who has since logged in and been rehashed). Timestamps are microseconds since the epoch.
CREATE TABLE legacy_users (
    legacy_id       BIGINT      NOT NULL PRIMARY KEY,
    user_id         VARCHAR(36) NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    row_digest      VARCHAR(64) NOT NULL,
    password_digest VARCHAR(64) NOT NULL,
    imported_at     BIGINT      NOT NULL,
    updated_at      BIGINT      NOT NULL
);

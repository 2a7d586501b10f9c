-- Email changes and their revert links: the address a change replaced (and whether it was
-- verified) keeps receiving reset links for 7 days while the new one is unverified, and the link
-- mailed to it (stored as SHA-256 only) undoes the change once. Written in the transaction of the
-- update that changes the address. Same shape in migrations/sqlite and migrations/postgres.
CREATE TABLE email_changes (
    id                VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id           VARCHAR(36)  NOT NULL,
    old_email         VARCHAR(254) NOT NULL,
    old_verified      BOOLEAN      NOT NULL,
    new_email         VARCHAR(254) NOT NULL,
    revert_token_hash VARCHAR(64)  NOT NULL,
    created_at        BIGINT       NOT NULL,
    expires_at        BIGINT       NOT NULL,
    reverted_at       BIGINT,
    UNIQUE INDEX email_changes_hash_key (revert_token_hash),
    INDEX email_changes_user_idx (user_id, created_at),
    INDEX email_changes_expires_at_idx (expires_at),
    CONSTRAINT email_changes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin ROW_FORMAT = DYNAMIC;

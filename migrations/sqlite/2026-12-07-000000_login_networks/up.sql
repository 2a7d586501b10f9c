-- Login failures per (account, client network: IPv4 /24, IPv6 /64): a network that guesses wrong
-- is locked on its own, never the owner elsewhere; the account-wide count in users.failed_login_count
-- only slows logins down. last_success_at marks a network the owner signed in from (30 days
-- "known": not slowed). Written under the user row's lock by the login-attempt reservation.
-- Timestamps: microseconds since the Unix epoch.
CREATE TABLE login_networks (
    user_id         VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network         VARCHAR(64) NOT NULL,
    failed_count    INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    last_failure_at BIGINT,
    last_success_at BIGINT,
    PRIMARY KEY (user_id, network)
);
CREATE INDEX login_networks_failure_idx ON login_networks (last_failure_at);

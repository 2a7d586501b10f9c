-- Webhook endpoints: where lifecycle events are POSTed. events is the comma-separated filter,
-- secret_enc the signing secret sealed with the data key (it must be read back to sign), and
-- disabled_reason why delivery stopped (an admin, or three days of failures). Timestamps are
-- microseconds since the epoch.
CREATE TABLE webhooks (
    id               VARCHAR(36)   NOT NULL PRIMARY KEY,
    url              VARCHAR(2048) NOT NULL,
    description      VARCHAR(500)  NOT NULL,
    events           VARCHAR(1000) NOT NULL,
    secret_enc       VARCHAR(255)  NOT NULL,
    enabled          BOOLEAN       NOT NULL,
    disabled_reason  VARCHAR(500),
    created_at       BIGINT        NOT NULL,
    updated_at       BIGINT        NOT NULL
);

-- One event for one endpoint: written in the transaction of the change it reports (the
-- transactional outbox), then leased, POSTed and settled. message_id is the webhook-id header
-- (one per event: the same on every attempt and every endpoint). ordering_key is the user the
-- event is about ('' for none) and seq that user's event counter (users.event_seq, taken under
-- the row's lock, so in commit order): an event is sent only once every earlier one of its user
-- to the same endpoint was (webhook_deliveries_order_idx finds the earlier pending one by a
-- seek, however many were delivered). status: pending, delivered or failed (given up after
-- three days).
-- response_excerpt holds at most 1 KiB of the receiver's answer.
CREATE TABLE webhook_deliveries (
    id                VARCHAR(36)   NOT NULL PRIMARY KEY,
    webhook_id        VARCHAR(36)   NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id        VARCHAR(40)   NOT NULL,
    event_type        VARCHAR(64)   NOT NULL,
    payload           TEXT          NOT NULL,
    ordering_key      VARCHAR(36)   NOT NULL,
    seq               BIGINT        NOT NULL,
    status            VARCHAR(16)   NOT NULL,
    attempts          INTEGER       NOT NULL,
    next_attempt_at   BIGINT        NOT NULL,
    first_attempt_at  BIGINT,
    leased_by         VARCHAR(64),
    lease_until       BIGINT,
    last_error        VARCHAR(500),
    last_status       INTEGER,
    response_excerpt  TEXT,
    created_at        BIGINT        NOT NULL,
    delivered_at      BIGINT

);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (webhook_id, ordering_key, status, seq);
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, created_at, id);

-- Each user's event counter: bumped (under the row's lock) by every event about the user that
-- an endpoint takes, so deliveries of one user go out in the order their changes committed.
ALTER TABLE users ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;

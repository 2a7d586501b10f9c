-- The expiry of the link a queued mail carries: a mail still undelivered by then is given up and
-- its body erased instead of sending a dead (or, for a reset, dangerous) link late. NULL: no link.
-- Timestamps: microseconds since the Unix epoch.
ALTER TABLE outbox ADD COLUMN expires_at BIGINT;

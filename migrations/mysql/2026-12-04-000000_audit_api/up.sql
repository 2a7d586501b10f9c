-- The audit API filters by user: events where they acted (this index) or were acted upon
-- (audit_events_subject_idx), newest first.
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, at);

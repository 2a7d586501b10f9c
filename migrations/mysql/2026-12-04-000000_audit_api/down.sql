DROP INDEX audit_events_actor_idx ON audit_events;

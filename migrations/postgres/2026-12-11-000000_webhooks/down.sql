ALTER TABLE users DROP COLUMN event_seq;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;

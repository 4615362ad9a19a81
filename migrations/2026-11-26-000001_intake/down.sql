DROP TABLE sys.idempotency_keys;
DROP TABLE sys.outbox_attempts;
DROP TABLE sys.outbox;
DROP TABLE cons.ticket_history;
DROP TABLE cons.tickets;
DROP TABLE cons.clients;
DROP TABLE dict.languages;
DROP TABLE dict.sources;
DROP TABLE dict.ticket_statuses;
DROP TABLE dict.consultation_types;
DROP SCHEMA log;
DROP SCHEMA dict;
DROP SCHEMA cons;
-- sys stays: it holds the migrations table.

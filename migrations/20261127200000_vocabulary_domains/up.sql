-- Closed vocabularies become domains instead of per-table CHECK constraints. PostgreSQL
-- compiles a table's CHECK constraints from their stored text at the start of every
-- statement that writes the table; a domain's check is compiled once per session and
-- cached. On the hot paths (ticket intake, the relay's outbox updates, webhook receipt)
-- that compilation was a tenth of PostgreSQL's time. The admitted values do not change;
-- a schema test keeps them equal to the domain enums and the dict tables.

CREATE DOMAIN cons.ticket_status AS text
    CHECK (VALUE IN ('new', 'open', 'pending', 'resolved', 'cancelled'));
CREATE DOMAIN cons.consultation_type AS text CHECK (VALUE IN ('accounting', 'tech_support'));
CREATE DOMAIN cons.ticket_source AS text CHECK (VALUE IN ('site', 'telegram', 'call_center'));
CREATE DOMAIN cons.lang AS text CHECK (VALUE IN ('ru', 'uz'));
CREATE DOMAIN cons.importance AS smallint CHECK (VALUE BETWEEN 1 AND 3);
CREATE DOMAIN cons.sync_state AS text
    CHECK (VALUE IN ('pending', 'delivered', 'failed', 'dead', 'not_applicable'));
CREATE DOMAIN cons.chatwoot_status AS text CHECK (VALUE IN ('open', 'pending', 'snoozed', 'resolved'));
CREATE DOMAIN cons.onec_status AS text CHECK (VALUE IN ('open', 'pending', 'resolved', 'cancelled'));
CREATE DOMAIN cons.change_source AS text CHECK (VALUE IN ('api', 'chatwoot', 'onec', 'operator'));
CREATE DOMAIN cons.peer AS text CHECK (VALUE IN ('chatwoot', 'onec'));
CREATE DOMAIN sys.outbox_status AS text CHECK (VALUE IN ('pending', 'in_flight', 'delivered', 'dead'));
CREATE DOMAIN sys.attempt_outcome AS text CHECK (VALUE IN ('delivered', 'retry', 'dead'));
CREATE DOMAIN log.inbox_status AS text
    CHECK (VALUE IN ('pending', 'applied', 'unchanged', 'stale', 'ignored', 'failed'));

ALTER TABLE cons.tickets
    DROP CONSTRAINT tickets_status_check,
    DROP CONSTRAINT tickets_consultation_type_check,
    DROP CONSTRAINT tickets_source_check,
    DROP CONSTRAINT tickets_lang_check,
    DROP CONSTRAINT tickets_importance_check,
    DROP CONSTRAINT tickets_sync_chatwoot_check,
    DROP CONSTRAINT tickets_sync_onec_check,
    DROP CONSTRAINT tickets_chatwoot_status_check,
    DROP CONSTRAINT tickets_onec_status_check;
-- The partial index's predicate names the column: it is rebuilt with the new type.
ALTER TABLE cons.tickets
    ALTER COLUMN status TYPE cons.ticket_status,
    ALTER COLUMN consultation_type TYPE cons.consultation_type,
    ALTER COLUMN source TYPE cons.ticket_source,
    ALTER COLUMN lang TYPE cons.lang,
    ALTER COLUMN importance TYPE cons.importance,
    ALTER COLUMN sync_chatwoot TYPE cons.sync_state,
    ALTER COLUMN sync_onec TYPE cons.sync_state,
    ALTER COLUMN chatwoot_status TYPE cons.chatwoot_status,
    ALTER COLUMN onec_status TYPE cons.onec_status;

ALTER TABLE cons.ticket_history DROP CONSTRAINT ticket_history_source_check;
ALTER TABLE cons.ticket_history ALTER COLUMN source TYPE cons.change_source;

-- The outbox keeps its row rules (lease and delivery columns agree with the status) as
-- table constraints: they relate columns, which a domain cannot.
ALTER TABLE sys.outbox
    DROP CONSTRAINT outbox_target_check,
    DROP CONSTRAINT outbox_status_check;
ALTER TABLE sys.outbox
    ALTER COLUMN target TYPE cons.peer,
    ALTER COLUMN status TYPE sys.outbox_status;

ALTER TABLE sys.outbox_attempts DROP CONSTRAINT outbox_attempts_outcome_check;
ALTER TABLE sys.outbox_attempts ALTER COLUMN outcome TYPE sys.attempt_outcome;

ALTER TABLE log.webhook_inbox
    DROP CONSTRAINT webhook_inbox_source_check,
    DROP CONSTRAINT webhook_inbox_status_check;
ALTER TABLE log.webhook_inbox
    ALTER COLUMN source TYPE cons.peer,
    ALTER COLUMN status TYPE log.inbox_status;

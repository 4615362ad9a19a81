ALTER TABLE log.webhook_inbox
    ALTER COLUMN source TYPE text,
    ALTER COLUMN status TYPE text;
ALTER TABLE log.webhook_inbox
    ADD CONSTRAINT webhook_inbox_source_check CHECK (source IN ('chatwoot', 'onec')),
    ADD CONSTRAINT webhook_inbox_status_check
        CHECK (status IN ('pending', 'applied', 'unchanged', 'stale', 'ignored', 'failed'));

ALTER TABLE sys.outbox_attempts ALTER COLUMN outcome TYPE text;
ALTER TABLE sys.outbox_attempts
    ADD CONSTRAINT outbox_attempts_outcome_check CHECK (outcome IN ('delivered', 'retry', 'dead'));

ALTER TABLE sys.outbox
    ALTER COLUMN target TYPE text,
    ALTER COLUMN status TYPE text;
ALTER TABLE sys.outbox
    ADD CONSTRAINT outbox_target_check CHECK (target IN ('chatwoot', 'onec')),
    ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'in_flight', 'delivered', 'dead'));

ALTER TABLE cons.ticket_history ALTER COLUMN source TYPE text;
ALTER TABLE cons.ticket_history
    ADD CONSTRAINT ticket_history_source_check CHECK (source IN ('api', 'chatwoot', 'onec', 'operator'));

ALTER TABLE cons.tickets
    ALTER COLUMN status TYPE text,
    ALTER COLUMN consultation_type TYPE text,
    ALTER COLUMN source TYPE text,
    ALTER COLUMN lang TYPE text,
    ALTER COLUMN importance TYPE smallint,
    ALTER COLUMN sync_chatwoot TYPE text,
    ALTER COLUMN sync_onec TYPE text,
    ALTER COLUMN chatwoot_status TYPE text,
    ALTER COLUMN onec_status TYPE text;
ALTER TABLE cons.tickets
    ADD CONSTRAINT tickets_status_check CHECK (status IN ('new', 'open', 'pending', 'resolved', 'cancelled')),
    ADD CONSTRAINT tickets_consultation_type_check CHECK (consultation_type IN ('accounting', 'tech_support')),
    ADD CONSTRAINT tickets_source_check CHECK (source IN ('site', 'telegram', 'call_center')),
    ADD CONSTRAINT tickets_lang_check CHECK (lang IN ('ru', 'uz')),
    ADD CONSTRAINT tickets_importance_check CHECK (importance BETWEEN 1 AND 3),
    ADD CONSTRAINT tickets_sync_chatwoot_check
        CHECK (sync_chatwoot IN ('pending', 'delivered', 'failed', 'dead', 'not_applicable')),
    ADD CONSTRAINT tickets_sync_onec_check
        CHECK (sync_onec IN ('pending', 'delivered', 'failed', 'dead', 'not_applicable')),
    ADD CONSTRAINT tickets_chatwoot_status_check
        CHECK (chatwoot_status IN ('open', 'pending', 'snoozed', 'resolved')),
    ADD CONSTRAINT tickets_onec_status_check CHECK (onec_status IN ('open', 'pending', 'resolved', 'cancelled'));

DROP DOMAIN log.inbox_status;
DROP DOMAIN sys.attempt_outcome;
DROP DOMAIN sys.outbox_status;
DROP DOMAIN cons.peer;
DROP DOMAIN cons.change_source;
DROP DOMAIN cons.onec_status;
DROP DOMAIN cons.chatwoot_status;
DROP DOMAIN cons.sync_state;
DROP DOMAIN cons.importance;
DROP DOMAIN cons.lang;
DROP DOMAIN cons.ticket_source;
DROP DOMAIN cons.consultation_type;
DROP DOMAIN cons.ticket_status;

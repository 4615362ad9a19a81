-- Ticket intake: the four schemas, reference data, clients, tickets, their history,
-- the transactional outbox and idempotency keys.

CREATE SCHEMA IF NOT EXISTS cons;  -- business data
CREATE SCHEMA IF NOT EXISTS dict;  -- reference data, seeded here
CREATE SCHEMA IF NOT EXISTS sys;   -- outbox, idempotency keys, the migrations table
CREATE SCHEMA IF NOT EXISTS log;   -- received webhooks (their tables come with inbound sync)

-- dict ---------------------------------------------------------------------------------
-- The hot tables check these values with CHECK constraints instead of foreign keys: a
-- foreign key would take a FOR KEY SHARE lock on the same few dict rows in every ticket
-- insert and turn concurrent inserts into multixact contention. A schema test keeps the
-- CHECK lists, these rows and the domain enums equal.

CREATE TABLE dict.consultation_types (
    code        text PRIMARY KEY,
    name_ru     text NOT NULL,
    name_uz     text NOT NULL,
    to_chatwoot boolean NOT NULL,
    to_onec     boolean NOT NULL
);
INSERT INTO dict.consultation_types VALUES
    ('accounting',   'Консультация по учёту',  'Buxgalteriya boʻyicha maslahat', true, true),
    ('tech_support', 'Техническая поддержка', 'Texnik yordam',                  true, false);

CREATE TABLE dict.ticket_statuses (
    code        text PRIMARY KEY,
    is_terminal boolean NOT NULL,
    name_ru     text NOT NULL,
    name_uz     text NOT NULL
);
INSERT INTO dict.ticket_statuses VALUES
    ('new',       false, 'Новая',       'Yangi'),
    ('open',      false, 'В работе',    'Jarayonda'),
    ('pending',   false, 'В очереди',   'Navbatda'),
    ('resolved',  true,  'Завершена',   'Yakunlangan'),
    ('cancelled', true,  'Отменена',    'Bekor qilingan');

CREATE TABLE dict.sources (
    code    text PRIMARY KEY,
    name_ru text NOT NULL
);
INSERT INTO dict.sources VALUES
    ('site', 'Сайт'), ('telegram', 'Telegram Mini App'), ('call_center', 'Колл-центр');

CREATE TABLE dict.languages (
    code    text PRIMARY KEY,
    name_ru text NOT NULL
);
INSERT INTO dict.languages VALUES ('ru', 'Русский'), ('uz', 'Узбекский');

-- cons ---------------------------------------------------------------------------------

CREATE TABLE cons.clients (
    client_id             uuid PRIMARY KEY,                -- UUIDv7, ours, never changes
    name                  text NOT NULL,
    -- Natural keys: unique, so two concurrent requests for one new client cannot both
    -- create it (the loser's INSERT … ON CONFLICT finds the winner's row).
    phone_number          text UNIQUE CHECK (phone_number ~ '^\+[1-9][0-9]{7,14}$'),
    email                 text UNIQUE CHECK (email = lower(email)),
    org_inn               text UNIQUE CHECK (org_inn ~ '^([0-9]{9}|[0-9]{14})$'),
    code_abonent          text,
    company_name          text,
    -- External ids, filled in by the relay.
    chatwoot_contact_id   bigint UNIQUE,
    onec_counterparty_key uuid UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cons.tickets (
    cons_id                  uuid PRIMARY KEY,             -- UUIDv7: time-ordered, so it is also the list cursor
    client_id                uuid NOT NULL REFERENCES cons.clients (client_id),
    status                   text NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'open', 'pending', 'resolved', 'cancelled')),
    consultation_type        text NOT NULL CHECK (consultation_type IN ('accounting', 'tech_support')),
    source                   text NOT NULL CHECK (source IN ('site', 'telegram', 'call_center')),
    lang                     text NOT NULL CHECK (lang IN ('ru', 'uz')),
    topic                    text,
    comment                  text,
    importance               smallint CHECK (importance BETWEEN 1 AND 3),
    scheduled_at             timestamptz,
    -- External ids, each unique where set (partial indexes below keep NULLs out of them).
    chatwoot_conversation_id bigint,
    onec_ref_key             uuid,
    onec_number              text,
    -- Delivery state per peer as the API reports it; written by the relay in the same
    -- transaction that completes an outbox entry.
    sync_chatwoot            text NOT NULL
        CHECK (sync_chatwoot IN ('pending', 'delivered', 'failed', 'dead', 'not_applicable')),
    sync_onec                text NOT NULL
        CHECK (sync_onec IN ('pending', 'delivered', 'failed', 'dead', 'not_applicable')),
    created_by               text NOT NULL,                -- the caller: "service:<name>" or "client:<id>"
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
-- Serves the client's ticket list (newest first, keyset on cons_id) and the foreign key.
CREATE INDEX tickets_client_id_idx ON cons.tickets (client_id, cons_id DESC);
CREATE UNIQUE INDEX tickets_chatwoot_conversation_id_key ON cons.tickets (chatwoot_conversation_id)
    WHERE chatwoot_conversation_id IS NOT NULL;
CREATE UNIQUE INDEX tickets_onec_ref_key_key ON cons.tickets (onec_ref_key) WHERE onec_ref_key IS NOT NULL;
CREATE UNIQUE INDEX tickets_onec_number_key ON cons.tickets (onec_number) WHERE onec_number IS NOT NULL;

CREATE TABLE cons.ticket_history (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cons_id   uuid NOT NULL REFERENCES cons.tickets (cons_id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    field     text NOT NULL,
    old_value text,
    new_value text,
    source    text NOT NULL CHECK (source IN ('api', 'chatwoot', 'onec', 'operator')),
    actor     text NOT NULL                                -- who, within the source
);
CREATE INDEX ticket_history_cons_id_idx ON cons.ticket_history (cons_id, id);

-- sys ----------------------------------------------------------------------------------

-- One row per effect a peer must see. The row is the queue: the relay selects by status
-- and due time (never by an id cursor: ids are assigned at insert, not at commit).
CREATE TABLE sys.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cons_id          uuid NOT NULL REFERENCES cons.tickets (cons_id),  -- ordering key, with target
    target           text NOT NULL CHECK (target IN ('chatwoot', 'onec')),
    kind             text NOT NULL,                        -- stable name of the effect, e.g. ticket.create
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),  -- due time while pending
    -- The lease of the relay worker that claimed the row (status in_flight). Completion
    -- updates match lease_token, so a worker whose lease expired cannot overwrite a newer
    -- claim; an expired lease makes the row claimable again.
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CHECK ((status = 'in_flight') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- "What is due" stays cheap however many delivered rows the table holds: only live rows
-- are in these indexes.
CREATE INDEX outbox_due_idx ON sys.outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_lease_idx ON sys.outbox (lease_expires_at) WHERE status = 'in_flight';
CREATE INDEX outbox_dead_idx ON sys.outbox (id) WHERE status = 'dead';
-- The foreign key, and per-(ticket, target) ordering: an entry is only due when no older
-- entry of its ticket and target is still undelivered.
CREATE INDEX outbox_cons_id_idx ON sys.outbox (cons_id, target, id);
-- The outbox churns: vacuum it long before the default 20 % of dead tuples.
ALTER TABLE sys.outbox SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

-- Every delivery attempt and its outcome, for `consctl outbox show`.
CREATE TABLE sys.outbox_attempts (
    outbox_id   bigint NOT NULL REFERENCES sys.outbox (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    http_status smallint,
    error       text,
    PRIMARY KEY (outbox_id, attempt)
);

-- Idempotency-Key of POST requests, scoped to the caller. Written in the same statement
-- as the ticket, so a key exists exactly when its ticket does; the first answer is
-- rebuilt from the ticket's creation facts, which never change.
CREATE TABLE sys.idempotency_keys (
    principal      text NOT NULL,
    operation      text NOT NULL,
    key            text NOT NULL,
    request_sha256 bytea NOT NULL,
    cons_id        uuid NOT NULL REFERENCES cons.tickets (cons_id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, operation, key)
);
CREATE INDEX idempotency_keys_cons_id_idx ON sys.idempotency_keys (cons_id);
CREATE INDEX idempotency_keys_created_at_idx ON sys.idempotency_keys (created_at);

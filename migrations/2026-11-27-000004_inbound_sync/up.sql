-- Inbound sync: what each peer last showed us about a ticket (so an echo of our own
-- change, a duplicate or a reordered older state changes nothing), the received
-- webhooks as a transactional inbox, and the 1C polling watermark.

ALTER TABLE cons.tickets
    -- Canonical facts that came back from the peers.
    ADD COLUMN ended_at                timestamptz,
    ADD COLUMN last_activity_at        timestamptz,
    ADD COLUMN chatwoot_assignee_id    bigint,
    ADD COLUMN chatwoot_team_id        bigint,
    ADD COLUMN onec_manager_key        uuid,
    -- What Chatwoot holds, as last observed or written by us. A webhook is a change made
    -- in Chatwoot only where it differs from these; equal values are echoes or duplicates.
    ADD COLUMN chatwoot_status         text CHECK (chatwoot_status IN ('open', 'pending', 'snoozed', 'resolved')),
    ADD COLUMN chatwoot_scheduled_at   timestamptz,
    -- The conversation's own `updated_at` of the newest state applied: an older one is stale.
    ADD COLUMN chatwoot_seen_at        timestamptz,
    -- The same for 1C: the status its document implies, its scheduled date, end, and the
    -- (ДатаИзменения, DataVersion) of the newest version applied.
    ADD COLUMN onec_status             text CHECK (onec_status IN ('open', 'pending', 'resolved', 'cancelled')),
    ADD COLUMN onec_scheduled_at       timestamptz,
    ADD COLUMN onec_seen_at            timestamptz,
    ADD COLUMN onec_data_version       text;

-- Reconciliation walks the tickets still open or closed recently, in id order.
CREATE INDEX tickets_reconcile_idx ON cons.tickets (cons_id)
    WHERE status IN ('new', 'open', 'pending') OR ended_at IS NOT NULL;

-- Every accepted webhook delivery, written before the sender gets its 200 and applied by
-- the relay. The dedup key is the content's digest for Chatwoot (it has no event id, and
-- its delivery header differs per target) and the event id for 1C.
CREATE TABLE log.webhook_inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL CHECK (source IN ('chatwoot', 'onec')),
    event        text NOT NULL,
    dedup_key    text NOT NULL,
    delivery_id  text,
    body         jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'applied', 'unchanged', 'stale', 'ignored', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    processed_at timestamptz,
    note         text,
    UNIQUE (source, dedup_key)
);
CREATE INDEX webhook_inbox_pending_idx ON log.webhook_inbox (id) WHERE status = 'pending';
CREATE INDEX webhook_inbox_received_at_idx ON log.webhook_inbox (received_at);

-- Small named values the relay keeps between runs (the 1C polling watermark).
CREATE TABLE sys.sync_cursors (
    name       text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

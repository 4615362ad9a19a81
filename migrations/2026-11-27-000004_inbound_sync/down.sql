DROP TABLE sys.sync_cursors;
DROP TABLE log.webhook_inbox;
DROP INDEX cons.tickets_reconcile_idx;
ALTER TABLE cons.tickets
    DROP COLUMN ended_at, DROP COLUMN last_activity_at, DROP COLUMN chatwoot_assignee_id,
    DROP COLUMN chatwoot_team_id, DROP COLUMN onec_manager_key, DROP COLUMN chatwoot_status,
    DROP COLUMN chatwoot_scheduled_at, DROP COLUMN chatwoot_seen_at, DROP COLUMN onec_status,
    DROP COLUMN onec_scheduled_at, DROP COLUMN onec_seen_at, DROP COLUMN onec_data_version;

-- Wake the relay when outbox entries are committed. Statement-level, so a create that
-- inserts two entries sends one notification; identical notifications of one transaction
-- are folded into one by PostgreSQL.
CREATE FUNCTION sys.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON sys.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION sys.outbox_notify();

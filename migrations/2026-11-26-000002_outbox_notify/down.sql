DROP TRIGGER outbox_notify ON sys.outbox;
DROP FUNCTION sys.outbox_notify();

-- The outbox no longer notifies from a trigger. NOTIFY makes PostgreSQL serialise the
-- commits of every notifying transaction behind one lock held through the WAL flush; in
-- the ticket-creating statement that halved intake (bench-intake: 2,136 vs 4,161
-- requests/s). Writers now wake the relay after they commit, with a separate,
-- asynchronously committed NOTIFY that coalesces bursts (docs/decisions/0006).
DROP TRIGGER outbox_notify ON sys.outbox;
DROP FUNCTION sys.outbox_notify();

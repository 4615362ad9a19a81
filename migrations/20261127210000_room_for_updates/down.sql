ALTER TABLE sys.outbox RESET (fillfactor);
ALTER TABLE cons.tickets RESET (fillfactor);

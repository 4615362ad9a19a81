-- Tickets and outbox entries are updated in place many times (sync state, external ids,
-- every claim and outcome). With full pages each new row version goes to another page,
-- and no update of a ticket's unindexed columns can be a HOT update (one that adds no
-- index entries). A fifth of each new page is kept free for them.
ALTER TABLE cons.tickets SET (fillfactor = 80);
ALTER TABLE sys.outbox SET (fillfactor = 80);

-- An account is live (its messages follow the routes to carriers) or in sandbox mode (the
-- simulator delivers them, whatever the routes say). Accounts made before this keep following
-- the routes; a live account's message that no route matches fails with `no_route` instead of
-- being "delivered" by the simulator. New accounts start in sandbox mode unless configured.
ALTER TABLE accounts ADD COLUMN live INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET live = 1;

-- The running server rebuilds its router when the routing directory changes; an account's
-- mode is part of it.
CREATE TRIGGER accounts_inserted_routing AFTER INSERT ON accounts
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER accounts_mode_changed AFTER UPDATE OF live ON accounts
BEGIN UPDATE routing_version SET version = version + 1; END;

-- Fair sharing: the dispatcher finds the accounts with due messages by one seek per account
-- (however long one account's backlog is) and gives each an equal share of every claim.
CREATE INDEX messages_queued_by_account ON messages(account_id, next_attempt_at)
    WHERE status = 'queued';

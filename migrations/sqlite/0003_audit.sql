-- The audit trail: one row per state-changing use case (who, what, on what, from where, how it
-- ended), written in the same transaction as the change. Append-only: nothing updates or
-- deletes these rows. Targets are ids, never phone numbers or message text. No secondary
-- index: every send writes a row here, and reads are rare (an index comes with the first
-- query that needs one).

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    account_id  TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    client_ip   TEXT,
    outcome     TEXT NOT NULL
) STRICT;

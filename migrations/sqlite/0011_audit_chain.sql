-- The audit trail becomes a hash chain: each row's `hash` is SHA-256 over the previous row's
-- hash and a length-prefixed encoding of every column of the row (store/audit.rs spells the
-- encoding). SQL cannot compute it, so the rows written before this migration are chained in
-- Rust by the migration's hook, in the same transaction (store/mod.rs): every row carries a
-- hash, and a row without one is a finding for `rampart verify`.
--
-- Checkpoints: every `audit.checkpoint_every` rows, and at a clean shutdown, the writer signs
-- (Ed25519) the sequence number and hash of the newest row, in the transaction that wrote it.
--
-- The index serves `GET /v1/audit-events` for one account: it grows at its end within each
-- account, one row per audited change (a send request writes one, not one per message).

ALTER TABLE audit_events ADD COLUMN hash BLOB;

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        BLOB NOT NULL,
    at          INTEGER NOT NULL,
    signature   BLOB NOT NULL
) STRICT;

CREATE INDEX audit_events_by_account ON audit_events (account_id, seq);

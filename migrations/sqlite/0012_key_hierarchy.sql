-- The key hierarchy: master key -> key-encryption keys -> data keys (per account, rotated),
-- the API-key hash key and the blind-index root key.
--
-- A key-encryption key is random and stored once per master key that wraps it, named by that
-- master key's fingerprint (a keyed hash of it). Changing the master key adds wraps under the
-- new one before the old ones go, so a crash in between leaves a directory that either key
-- opens.
CREATE TABLE keks (
    id          INTEGER NOT NULL,
    master_fp   BLOB NOT NULL,
    wrapped     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (id, master_fp)
) STRICT, WITHOUT ROWID;

-- Data keys gain an owner, a purpose, the key-encryption key that wraps them (NULL: the one
-- earlier releases derived from the master key; the next start re-wraps them), a count of
-- encryptions (for rotation well before AES-GCM's 2^32 random-nonce bound) and the time they
-- were retired (their material is then erased: nothing may still need them).
ALTER TABLE data_keys ADD COLUMN account_id TEXT;
ALTER TABLE data_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'data'
    CHECK (purpose IN ('data', 'api-key-hash', 'index-root', 'legacy-index'));
ALTER TABLE data_keys ADD COLUMN kek_id INTEGER;
ALTER TABLE data_keys ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE data_keys ADD COLUMN retired_at INTEGER;

-- Accounts that existed before per-account blind indexes keep the instance-wide index their
-- rows were tagged with; accounts made from now on get one of their own.
ALTER TABLE accounts ADD COLUMN legacy_index INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET legacy_index = 1;

-- A deleted account: its data keys are destroyed (its sealed rows unreadable at once), its
-- keys, members and numbers gone; its rows are purged after. The row stays, so its id is
-- never reused and the audit trail keeps naming it.
ALTER TABLE accounts ADD COLUMN deleted_at INTEGER;

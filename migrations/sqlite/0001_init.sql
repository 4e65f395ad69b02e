-- Accounts, API keys, data keys, messages and the delivery bookkeeping.
-- Times are milliseconds since the Unix epoch. Phone numbers and bodies are stored only
-- encrypted (`*_sealed`), with a keyed blind index (`to_index`) for lookups.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    hash          BLOB NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX api_keys_by_account ON api_keys(account_id, created_at);

CREATE TABLE data_keys (
    id          INTEGER PRIMARY KEY,
    wrapped     BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- `seq` keeps inserts appending to the table's B-tree; `id` is the public, unguessable name.
CREATE TABLE messages (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    to_index         BLOB NOT NULL,
    to_sealed        BLOB NOT NULL,
    sender           TEXT NOT NULL,
    body_sealed      BLOB NOT NULL,
    encoding         TEXT NOT NULL,
    segments         INTEGER NOT NULL,
    status           TEXT NOT NULL,
    client_ref       TEXT,
    send_at          INTEGER,
    valid_until      INTEGER,
    next_attempt_at  INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    connector        TEXT,
    error_code       TEXT,
    error_detail     TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    completed_at     INTEGER
) STRICT;
-- Every index here grows at its end (keys follow time), so a commit dirties a few pages at the
-- tail instead of one random page per row; that is what keeps durable intake fast. The
-- recipient filter scans this index (to_index is carried in it) rather than owning a randomly
-- ordered index of its own.
CREATE INDEX messages_by_account ON messages(account_id, seq, to_index);
CREATE INDEX messages_due ON messages(next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_in_flight ON messages(status) WHERE status IN ('sending', 'sent');

CREATE TABLE idempotency_keys (
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    message_ids   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) STRICT, WITHOUT ROWID;

-- One row per segment handed to a carrier: the carrier's id for it and its receipt state.
CREATE TABLE message_parts (
    connector    TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    part         INTEGER NOT NULL,
    state        TEXT NOT NULL,
    error_code   TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (connector, provider_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX message_parts_by_message ON message_parts(message_id);

-- Receipts that arrived before we recorded the carrier id they refer to.
CREATE TABLE early_receipts (
    connector    TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    state        TEXT NOT NULL,
    error_code   TEXT,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (connector, provider_id)
) STRICT, WITHOUT ROWID;

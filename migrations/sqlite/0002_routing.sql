-- The routing directory (connectors, routes, our numbers) and inbound messages.
-- The CLI edits the directory while the server runs; every change bumps `routing_version`
-- (by trigger, so no writer can forget), and the server rebuilds its router when it moves.

CREATE TABLE connectors (
    name             TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('smpp')),
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    system_id        TEXT NOT NULL,
    -- Encrypted with the keyring, bound to `connector-password:<name>`.
    password_sealed  BLOB NOT NULL,
    tls              INTEGER NOT NULL DEFAULT 0,
    tls_ca_file      TEXT,
    window_size      INTEGER NOT NULL,
    max_rate         INTEGER,
    -- Further tunables as a JSON object (see delivery::smpp::SmppOptions).
    options          TEXT NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Destinations starting with `prefix` (E.164 with `+`; '' matches all) go to `connector`
-- (a row of `connectors`, or the built-in 'sandbox'). Longest prefix wins, then lowest priority.
CREATE TABLE routes (
    prefix      TEXT NOT NULL,
    connector   TEXT NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (prefix, connector)
) STRICT, WITHOUT ROWID;

-- Our own numbers (E.164 long codes with `+`, or short codes as digits) and who owns them.
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX numbers_by_account ON numbers(account_id, number);

-- Messages from handsets to our numbers. The sender and the body are stored only encrypted,
-- with a blind index on the sender (same domain as `messages.to_index`) for filtering.
CREATE TABLE inbound_messages (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    from_sealed  BLOB NOT NULL,
    from_index   BLOB NOT NULL,
    to_number    TEXT NOT NULL,
    body_sealed  BLOB NOT NULL,
    connector    TEXT NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX inbound_by_account ON inbound_messages(account_id, id);
CREATE INDEX inbound_by_sender ON inbound_messages(account_id, from_index);

CREATE TABLE routing_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
) STRICT;
INSERT INTO routing_version (id, version) VALUES (1, 0);

CREATE TRIGGER connectors_inserted AFTER INSERT ON connectors
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER connectors_updated AFTER UPDATE ON connectors
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER connectors_deleted AFTER DELETE ON connectors
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER routes_inserted AFTER INSERT ON routes
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER routes_updated AFTER UPDATE ON routes
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER routes_deleted AFTER DELETE ON routes
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER numbers_inserted AFTER INSERT ON numbers
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER numbers_updated AFTER UPDATE ON numbers
BEGIN UPDATE routing_version SET version = version + 1; END;
CREATE TRIGGER numbers_deleted AFTER DELETE ON numbers
BEGIN UPDATE routing_version SET version = version + 1; END;

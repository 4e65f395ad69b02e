-- Opt-outs: numbers that asked (STOP) or were put on the list (API, CLI, import) to get no
-- more messages from an account, or from one of its senders. The number is kept as its
-- account's blind-index tag (for the send-time check) and sealed (for export), never in clear.
CREATE TABLE opt_outs (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    phone_index    BLOB NOT NULL,
    -- The sender (our number) the opt-out is limited to; '' for the whole account.
    sender         TEXT NOT NULL DEFAULT '',
    number_sealed  BLOB NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('keyword', 'api', 'import')),
    created_at     INTEGER NOT NULL,
    UNIQUE (account_id, phone_index, sender)
) STRICT;

-- Each account's opt-out settings; no row means the defaults (on, whole account, stock texts).
CREATE TABLE opt_out_settings (
    account_id  TEXT PRIMARY KEY,
    enabled     INTEGER NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('account', 'per_sender')),
    help_text   TEXT,
    stop_text   TEXT,
    start_text  TEXT,
    updated_at  INTEGER NOT NULL
) STRICT;

-- Every change to `opt_outs` bumps the version (by trigger, so no writer can forget); the
-- running server reloads its copy when it moves, so CLI changes apply within a second.
CREATE TABLE opt_outs_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
) STRICT;
INSERT INTO opt_outs_version (id, version) VALUES (1, 0);

CREATE TRIGGER opt_outs_inserted AFTER INSERT ON opt_outs
BEGIN UPDATE opt_outs_version SET version = version + 1; END;
CREATE TRIGGER opt_outs_updated AFTER UPDATE ON opt_outs
BEGIN UPDATE opt_outs_version SET version = version + 1; END;
CREATE TRIGGER opt_outs_deleted AFTER DELETE ON opt_outs
BEGIN UPDATE opt_outs_version SET version = version + 1; END;

-- SMS pumping defence: destination prefixes (numbers without their last digits, a range, not
-- a person's number) blocked for an account after a burst, until `until`; and each account's
-- safe list of prefixes that are never blocked. The running server follows both through
-- `pumping_version`, so the CLI's changes apply within a second.
CREATE TABLE pumping_blocks (
    account_id  TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    until       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, prefix)
) STRICT;

CREATE TABLE pumping_safe_prefixes (
    account_id  TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, prefix)
) STRICT;

CREATE TABLE pumping_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
) STRICT;
INSERT INTO pumping_version (id, version) VALUES (1, 0);

CREATE TRIGGER pumping_blocks_inserted AFTER INSERT ON pumping_blocks
BEGIN UPDATE pumping_version SET version = version + 1; END;
CREATE TRIGGER pumping_blocks_updated AFTER UPDATE ON pumping_blocks
BEGIN UPDATE pumping_version SET version = version + 1; END;
CREATE TRIGGER pumping_blocks_deleted AFTER DELETE ON pumping_blocks
BEGIN UPDATE pumping_version SET version = version + 1; END;
CREATE TRIGGER pumping_safe_inserted AFTER INSERT ON pumping_safe_prefixes
BEGIN UPDATE pumping_version SET version = version + 1; END;
CREATE TRIGGER pumping_safe_deleted AFTER DELETE ON pumping_safe_prefixes
BEGIN UPDATE pumping_version SET version = version + 1; END;

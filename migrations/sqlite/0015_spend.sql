-- Spend, credit and refunds. Amounts are integers in micro-units of the instance's currency
-- (1 EUR = 1 000 000): SMS prices have fractions of a cent, and floats never hold money.

-- Accounts that pay for what they send (prepaid); an account without a row is unbilled.
CREATE TABLE billing_accounts (
    account_id TEXT PRIMARY KEY NOT NULL,
    -- What the account may still spend: credits less reservations, charges and refunds.
    balance INTEGER NOT NULL DEFAULT 0,
    -- Under this balance one `billing.low_balance` audit event is recorded (0: never).
    low_balance_threshold INTEGER NOT NULL DEFAULT 0,
    -- Set once the event is recorded, cleared by a credit that lifts the balance above it.
    low_balance_alerted INTEGER NOT NULL DEFAULT 0,
    daily_cap INTEGER,
    monthly_cap INTEGER,
    -- Spend reserved in the current UTC day and month (`2026-12-04`, `2026-12`).
    day_key TEXT NOT NULL DEFAULT '',
    day_spent INTEGER NOT NULL DEFAULT 0,
    month_key TEXT NOT NULL DEFAULT '',
    month_spent INTEGER NOT NULL DEFAULT 0,
    enabled_at INTEGER NOT NULL
);

-- Every movement of a balance; the sum of an account's amounts is its balance.
CREATE TABLE billing_ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    -- credit, reservation, charge, release, refund
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    message_id TEXT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    note TEXT
);
CREATE INDEX billing_ledger_by_account ON billing_ledger (account_id, seq);

-- Money held for a message until it reaches a final state.
CREATE TABLE billing_reservations (
    message_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    amount INTEGER NOT NULL
) WITHOUT ROWID;

-- Delivered messages' charges, kept for refunds.
CREATE TABLE billing_charges (
    message_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    charged_at INTEGER NOT NULL,
    refunded_at INTEGER
) WITHOUT ROWID;

-- The price of one segment by destination prefix (`+44`, `+4477`); the longest prefix wins.
CREATE TABLE billing_prices (
    prefix TEXT PRIMARY KEY NOT NULL,
    price_per_segment INTEGER NOT NULL
) WITHOUT ROWID;

-- Bumped whenever prices or billed accounts change: a running server polls it each second
-- and reloads what it holds in memory.
CREATE TABLE billing_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO billing_version (id, version) VALUES (1, 0);

-- Settlement rides on the status change itself, so it lands in the same transaction whatever
-- makes a message final (a receipt, a refusal, expiry at claim, a cancel). For an unbilled
-- message it costs one probe of an empty primary key.
CREATE TRIGGER billing_charge_on_delivery AFTER UPDATE OF status ON messages
WHEN NEW.status = 'delivered' AND OLD.status <> 'delivered'
BEGIN
    INSERT INTO billing_charges (message_id, account_id, amount, charged_at)
        SELECT message_id, account_id, amount, NEW.updated_at
        FROM billing_reservations WHERE message_id = NEW.id;
    -- The money left the balance at reservation: the charge moves nothing, it makes it final.
    INSERT INTO billing_ledger (account_id, kind, amount, balance_after, message_id, at, actor)
        SELECT r.account_id, 'charge', 0, b.balance, r.message_id, NEW.updated_at, 'delivery'
        FROM billing_reservations r JOIN billing_accounts b ON b.account_id = r.account_id
        WHERE r.message_id = NEW.id;
    DELETE FROM billing_reservations WHERE message_id = NEW.id;
END;

CREATE TRIGGER billing_release_on_failure AFTER UPDATE OF status ON messages
WHEN NEW.status IN ('undelivered', 'failed', 'expired', 'canceled')
    AND OLD.status NOT IN ('delivered', 'undelivered', 'failed', 'expired', 'canceled')
BEGIN
    UPDATE billing_accounts
        SET balance = balance + (SELECT amount FROM billing_reservations WHERE message_id = NEW.id)
        WHERE account_id = (SELECT account_id FROM billing_reservations WHERE message_id = NEW.id);
    INSERT INTO billing_ledger (account_id, kind, amount, balance_after, message_id, at, actor)
        SELECT r.account_id, 'release', r.amount, b.balance, r.message_id, NEW.updated_at, 'delivery'
        FROM billing_reservations r JOIN billing_accounts b ON b.account_id = r.account_id
        WHERE r.message_id = NEW.id;
    DELETE FROM billing_reservations WHERE message_id = NEW.id;
END;

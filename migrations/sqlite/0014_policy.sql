-- Each account's policy document (docs/policy.md), as JSON with its version, and every
-- version ever set, so a refusal can be traced to the rules in force at the time.
CREATE TABLE account_policies (
    account_id TEXT PRIMARY KEY REFERENCES accounts(id),
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE account_policy_history (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, version)
) WITHOUT ROWID;
-- Why a message is sent (transactional, marketing, otp); NULL for rows written before.
ALTER TABLE messages ADD COLUMN category TEXT;

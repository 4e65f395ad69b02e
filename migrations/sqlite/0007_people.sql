-- People: operators of the instance and members of accounts, their sign-in factors, sessions
-- and one-time challenges. Passwords are Argon2id PHC strings; every code, token and recovery
-- code is kept only as a keyed hash; TOTP secrets, passkeys and phone numbers only sealed.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    -- Trimmed and lowercased; the sign-in name.
    email                TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    -- operator-admin, operator-viewer, or NULL for a person who is only a member of accounts.
    operator_role        TEXT,
    password_hash        TEXT,
    password_changed_at  INTEGER,
    -- Consecutive failed sign-ins; at 100 the user is locked until a reset or an operator.
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_at            INTEGER,
    disabled_at          INTEGER,
    -- The verified phone number codes are sent to, sealed.
    phone_sealed         BLOB,
    created_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE memberships (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_id)
) STRICT;
CREATE INDEX memberships_by_user ON memberships(user_id);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users(id),
    hash              BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    -- The last time the person proved who they are (sign-in or step-up).
    authenticated_at  INTEGER NOT NULL,
    -- Absolute end, whatever the activity.
    expires_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    client_ip         TEXT,
    user_agent        TEXT
) STRICT;
CREATE INDEX sessions_by_user ON sessions(user_id);

-- Second factors: `totp` (secret sealed) and `passkey` (credential sealed).
CREATE TABLE factors (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id),
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    secret_sealed  BLOB NOT NULL,
    -- TOTP: the last time step accepted; an older or equal step is a replay.
    last_step      INTEGER,
    -- NULL while enrolment waits for its first code.
    confirmed_at   INTEGER,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX factors_by_user ON factors(user_id);

CREATE TABLE recovery_codes (
    user_id  TEXT NOT NULL REFERENCES users(id),
    hash     BLOB NOT NULL,
    used_at  INTEGER,
    PRIMARY KEY (user_id, hash)
) STRICT;

-- One-time challenges: invitation, reset and setup links, codes sent by SMS, sign-ins waiting
-- for their second factor, passkey ceremonies. Each is used once, expires, and counts wrong
-- answers.
CREATE TABLE challenges (
    id            TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    user_id       TEXT,
    account_id    TEXT,
    role          TEXT,
    hash          BLOB NOT NULL,
    state_sealed  BLOB,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
) STRICT;
CREATE INDEX challenges_by_user ON challenges(user_id, purpose);

CREATE TABLE password_history (
    user_id     TEXT NOT NULL REFERENCES users(id),
    hash        TEXT NOT NULL,
    changed_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX password_history_by_user ON password_history(user_id, changed_at);

-- Account policies for people: two factors required, SMS allowed as a factor, and the
-- optional rotation NIST SP 800-63B advises against but some organisations must have.
ALTER TABLE accounts ADD COLUMN require_2fa INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN allow_sms_factor INTEGER NOT NULL DEFAULT 1;
ALTER TABLE accounts ADD COLUMN password_max_age_days INTEGER;
ALTER TABLE accounts ADD COLUMN password_history INTEGER NOT NULL DEFAULT 0;

-- Keys belong to a person or to an operator (no account) and may be made by another key.
CREATE TABLE api_keys_v2 (
    id            TEXT PRIMARY KEY,
    account_id    TEXT REFERENCES accounts(id),
    name          TEXT NOT NULL,
    hash          BLOB NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    allowed_ips   TEXT NOT NULL DEFAULT '',
    user_id       TEXT REFERENCES users(id),
    parent_id     TEXT
) STRICT;
INSERT INTO api_keys_v2 (id, account_id, name, hash, scopes, created_at, expires_at, revoked_at,
                         last_used_at, allowed_ips)
    SELECT id, account_id, name, hash, scopes, created_at, expires_at, revoked_at, last_used_at,
           allowed_ips FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v2 RENAME TO api_keys;
CREATE INDEX api_keys_by_account ON api_keys(account_id, created_at);
CREATE INDEX api_keys_by_parent ON api_keys(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX api_keys_by_user ON api_keys(user_id) WHERE user_id IS NOT NULL;

-- An account's rate limits (JSON `{"api_key": {"per_second", "burst"}, "account": {...}}`;
-- empty: the level above): the operator's (`rate_limits`, else the server's), and the
-- account admins' within them (`member_rate_limits`).
ALTER TABLE accounts ADD COLUMN rate_limits TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN member_rate_limits TEXT NOT NULL DEFAULT '';

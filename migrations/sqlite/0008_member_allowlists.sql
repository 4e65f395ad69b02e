-- An account's own allowlist, set by its admins within the operator's (`allowed_ips`). A
-- request must pass both; empty: no further rule.
ALTER TABLE accounts ADD COLUMN member_allowed_ips TEXT NOT NULL DEFAULT '';

-- IP allowlists: per API key and per account, as networks separated by spaces (empty: any
-- address). A request must pass both.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';

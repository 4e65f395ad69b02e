-- Early receipts are trimmed by age (all connectors) and by count (per connector, oldest
-- first); these indexes keep both trims to a range scan.
CREATE INDEX early_receipts_by_age ON early_receipts (received_at);
CREATE INDEX early_receipts_by_connector_age ON early_receipts (connector, received_at);

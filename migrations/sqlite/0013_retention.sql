-- Retention per account: after how many days message bodies are erased (the rest of the
-- message is kept) and after how many whole messages are deleted. NULL keeps them forever.
ALTER TABLE accounts ADD COLUMN erase_bodies_after_days INTEGER;
ALTER TABLE accounts ADD COLUMN purge_after_days INTEGER;
-- When retention erased the body; `body_sealed` is then an empty blob (the column stays
-- NOT NULL, so rows written before this migration need no rewrite).
ALTER TABLE messages ADD COLUMN body_erased_at INTEGER;
ALTER TABLE inbound_messages ADD COLUMN body_erased_at INTEGER;

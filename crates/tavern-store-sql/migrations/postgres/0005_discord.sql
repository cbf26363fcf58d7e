-- Discord accounts linked to Tavern users: one Discord account acts as one
-- user, with exactly that user's rights.
ALTER TABLE users ADD COLUMN discord_id TEXT;
CREATE UNIQUE INDEX users_discord ON users (discord_id) WHERE discord_id IS NOT NULL;

-- Open connections to each world as the proxy counts them (a secondary
-- activity signal beside Foundry's count of players).
ALTER TABLE instances ADD COLUMN sockets INTEGER NOT NULL DEFAULT 0;

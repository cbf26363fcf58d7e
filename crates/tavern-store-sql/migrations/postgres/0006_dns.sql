-- The worlds' names Tavern keeps in DNS ([dns] mode = "per-world"): a row
-- for each name Tavern wrote or tried to, so that it removes only its own,
-- with how the last attempt went.
CREATE TABLE dns_names (
    host            TEXT PRIMARY KEY,
    slug            TEXT NOT NULL,
    held            BOOLEAN NOT NULL,
    error           TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    checked_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL
);

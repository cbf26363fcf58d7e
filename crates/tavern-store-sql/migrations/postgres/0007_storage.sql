-- Worlds' places in object storage ([storage]): a row for each place
-- Tavern made or tried to, so that it removes only its own, with the
-- world's key (its secret sealed) and how the last attempt went.
CREATE TABLE storage_places (
    instance_id     TEXT PRIMARY KEY,
    slug            TEXT NOT NULL,
    bucket          TEXT NOT NULL,
    folder          TEXT,
    user_name       TEXT NOT NULL,
    access_key_id   TEXT,
    secret_sealed   BYTEA,
    ready           BOOLEAN NOT NULL,
    error           TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    bytes           BIGINT,
    checked_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL
);

-- Notifications: a durable outbox of messages to Discord webhooks (the
-- community's, and a user's own, kept sealed), filled from the audit log
-- past a cursor and delivered at least once, with retries. Sessions
-- remember their reminder.
ALTER TABLE users ADD COLUMN webhook_sealed BLOB;
ALTER TABLE sessions ADD COLUMN reminded_at INTEGER;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    destination     TEXT NOT NULL,
    message         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    gave_up_at      INTEGER
);
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- How far into the audit log the outbox has read (one row).
CREATE TABLE outbox_cursor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    event_seq INTEGER NOT NULL
);

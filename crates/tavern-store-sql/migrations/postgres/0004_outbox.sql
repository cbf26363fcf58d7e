-- Notifications: a durable outbox of messages to Discord webhooks (the
-- community's, and a user's own, kept sealed), filled from the audit log
-- past a cursor and delivered at least once, with retries. Sessions
-- remember their reminder.
ALTER TABLE users ADD COLUMN webhook_sealed BYTEA;
ALTER TABLE sessions ADD COLUMN reminded_at BIGINT;

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    destination     TEXT NOT NULL,
    message         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    gave_up_at      BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- How far into the audit log the outbox has read (one row).
CREATE TABLE outbox_cursor (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    event_seq BIGINT NOT NULL
);

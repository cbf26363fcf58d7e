-- The license economy. Sessions reserve one key for a window
-- [window_start, window_end); windows of one key never overlap (checked in
-- the transaction that writes them). A world may await a key promised to it
-- (a prepared session, a pre-emption); users have a quota tier; observed
-- running intervals are counted for monthly hours.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    license_id   TEXT NOT NULL REFERENCES licenses (id) ON DELETE RESTRICT,
    starts_at    INTEGER NOT NULL,
    ends_at      INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    prepared_at  INTEGER,
    CHECK (window_start <= starts_at AND starts_at < ends_at AND ends_at <= window_end)
);
CREATE INDEX sessions_license_window ON sessions (license_id, window_start);
CREATE INDEX sessions_window_end ON sessions (window_end);

ALTER TABLE instances ADD COLUMN awaits_license_id TEXT REFERENCES licenses (id);
ALTER TABLE instances ADD COLUMN last_activity_at INTEGER;
ALTER TABLE users ADD COLUMN tier TEXT;

-- Kept after the instance is gone: usage is history.
CREATE TABLE usage_intervals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    slug        TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    license_id  TEXT,
    started_at  INTEGER NOT NULL,
    stopped_at  INTEGER,
    reason      TEXT
);
CREATE INDEX usage_intervals_owner ON usage_intervals (owner_id, started_at);
CREATE UNIQUE INDEX usage_intervals_open ON usage_intervals (instance_id)
    WHERE stopped_at IS NULL;

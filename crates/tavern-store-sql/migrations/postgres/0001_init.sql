-- Tavern's schema on PostgreSQL: the same tables and columns as SQLite's
-- migrations 0001-0006 reach. Migrations are append-only: never edit a
-- released one; a store change brings a migration for both engines.
--
-- Ids are UUID text and timestamps microseconds since the Unix epoch
-- (BIGINT), as on SQLite, so both engines share their queries.

-- Reservations of one key must never overlap: an exclusion constraint over
-- (license, window) needs GiST equality on text (a trusted extension).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'gm')),
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    tier          TEXT
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE licenses (
    id                TEXT PRIMARY KEY,
    label             TEXT NOT NULL,
    key_sealed        BYTEA NOT NULL,
    key_last4         TEXT NOT NULL,
    owner_id          TEXT REFERENCES users (id) ON DELETE RESTRICT,
    created_at        BIGINT NOT NULL,
    -- Which world a key runs now: one key, one world (one column), and
    -- the partial unique index below lets a world hold at most one key.
    bound_instance_id TEXT
);

CREATE TABLE instances (
    id                   TEXT PRIMARY KEY,
    slug                 TEXT NOT NULL UNIQUE,
    owner_id             TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    release              TEXT,
    runtime              TEXT NOT NULL,
    license_id           TEXT REFERENCES licenses (id) ON DELETE RESTRICT,
    desired_state        TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped', 'destroyed')),
    state                TEXT NOT NULL CHECK (state IN ('stopped', 'starting', 'running', 'stopping', 'failed')),
    idle_timeout_minutes BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    state_reason         TEXT,
    players              BIGINT NOT NULL DEFAULT 0,
    world                TEXT,
    foundry_version      TEXT,
    admin_key_sealed     BYTEA,
    awaits_license_id    TEXT REFERENCES licenses (id),
    last_activity_at     BIGINT,
    sockets              BIGINT NOT NULL DEFAULT 0,
    wake_on_visit        TEXT CHECK (wake_on_visit IN ('owner', 'anyone', 'off'))
);
CREATE INDEX instances_owner ON instances (owner_id);

ALTER TABLE licenses ADD FOREIGN KEY (bound_instance_id) REFERENCES instances (id);
CREATE UNIQUE INDEX licenses_bound_instance ON licenses (bound_instance_id)
    WHERE bound_instance_id IS NOT NULL;

CREATE TABLE events (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    detail  TEXT
);

-- Sessions reserve one key for [window_start, window_end).
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    license_id   TEXT NOT NULL REFERENCES licenses (id) ON DELETE RESTRICT,
    starts_at    BIGINT NOT NULL,
    ends_at      BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    prepared_at  BIGINT,
    CHECK (window_start <= starts_at AND starts_at < ends_at AND ends_at <= window_end),
    -- Checked at commit, so one transaction may move sessions between keys.
    CONSTRAINT sessions_no_overlap EXCLUDE USING gist (
        license_id WITH =,
        int8range(window_start, window_end) WITH &&
    ) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX sessions_license_window ON sessions (license_id, window_start);
CREATE INDEX sessions_window_end ON sessions (window_end);

-- Kept after the instance is gone: usage is history.
CREATE TABLE usage_intervals (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id TEXT NOT NULL,
    slug        TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    license_id  TEXT,
    started_at  BIGINT NOT NULL,
    stopped_at  BIGINT,
    reason      TEXT
);
CREATE INDEX usage_intervals_owner ON usage_intervals (owner_id, started_at);
CREATE UNIQUE INDEX usage_intervals_open ON usage_intervals (instance_id)
    WHERE stopped_at IS NULL;

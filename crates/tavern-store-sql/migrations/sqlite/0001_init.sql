-- Tavern's first schema. Migrations are append-only: never edit a released one.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'gm')),
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE licenses (
    id         TEXT PRIMARY KEY,
    label      TEXT NOT NULL,
    key_sealed BLOB NOT NULL,
    key_last4  TEXT NOT NULL,
    owner_id   TEXT REFERENCES users (id) ON DELETE RESTRICT,
    created_at INTEGER NOT NULL
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
    idle_timeout_minutes INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX instances_owner ON instances (owner_id);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    detail  TEXT
);

-- Backups of worlds (SQLite: 0007_backups.sql). Kept after the world is
-- destroyed (no reference to instances): the owner may still download or
-- restore them.
CREATE TABLE backups (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    slug         TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('manual', 'scheduled', 'after_stop', 'pre_destroy', 'pre_upgrade', 'pre_restore')),
    status       TEXT NOT NULL CHECK (status IN ('in_progress', 'complete', 'failed')),
    live         BOOLEAN NOT NULL,
    locked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    target       TEXT NOT NULL,
    archive_key  TEXT,
    size         BIGINT,
    sha256       TEXT,
    files        BIGINT,
    bytes        BIGINT,
    error        TEXT
);
CREATE INDEX backups_owner ON backups (owner_id, created_at);
CREATE INDEX backups_slug ON backups (slug, created_at);

-- Backups kept as snapshots in each world's restic-format repository,
-- beside archives: which one a backup is.
ALTER TABLE backups ADD COLUMN format TEXT NOT NULL DEFAULT 'archive'
    CHECK (format IN ('archive', 'repository'));

-- Values Tavern keeps sealed with its own key: the backup repositories'
-- password.
CREATE TABLE sealed_values (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

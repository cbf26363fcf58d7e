-- The community's package library: a row for each version of a game
-- system, module or world template unpacked under DATA_DIR/packages, and
-- the versions each world uses (a version in use cannot be removed), and
-- what each backup's world used.
CREATE TABLE library_packages (
    kind            TEXT NOT NULL,
    package_id      TEXT NOT NULL,
    version         TEXT NOT NULL,
    title           TEXT,
    manifest_url    TEXT NOT NULL,
    download_url    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    bytes           INTEGER NOT NULL,
    compat_minimum  TEXT,
    compat_verified TEXT,
    compat_maximum  TEXT,
    requires        TEXT NOT NULL,
    added_by        TEXT NOT NULL,
    added_at        INTEGER NOT NULL,
    PRIMARY KEY (kind, package_id, version)
);

CREATE TABLE world_packages (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    package_id  TEXT NOT NULL,
    version     TEXT NOT NULL,
    PRIMARY KEY (instance_id, kind, package_id),
    FOREIGN KEY (kind, package_id, version)
        REFERENCES library_packages (kind, package_id, version) ON DELETE RESTRICT
);

-- What each backup's world used when it was taken (kept with the backup,
-- not with the library: a restore fetches a version removed since from
-- where it came, checked against its SHA-256).
CREATE TABLE backup_packages (
    backup_id    TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    package_id   TEXT NOT NULL,
    version      TEXT NOT NULL,
    manifest_url TEXT NOT NULL,
    download_url TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    PRIMARY KEY (backup_id, kind, package_id)
);

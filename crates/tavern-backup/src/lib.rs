//! Backups of worlds: archives of a data directory with their manifests and
//! verification (`archive`), what is brought from other Foundry hosts
//! (`import`: folders and zip or tar archives, read as safely), the way
//! out (`export`: a backup as a zip a plain Foundry takes), writing and
//! restoring them on this machine
//! (`local`), snapshots in restic-format repositories (`repo`), where archives are kept (`target`: a local directory or
//! S3-compatible object storage), which backups a retention policy keeps
//! (`retention`, pure), and archive work read as an async stream while it
//! is written (`stream`).

pub mod archive;
pub mod export;
pub mod import;
pub mod local;
pub mod repo;
pub mod retention;
pub mod stream;
pub mod target;

/// What reading or writing an archive can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The archive is damaged, or does not match its manifest or checksum.
    #[error("the archive is corrupt: {detail}")]
    Corrupt { detail: String },
    /// An entry that could land outside the directory, or is no file,
    /// directory or inside link.
    #[error("the archive holds an entry that is refused, {path}: {why}")]
    Unsafe { path: String, why: String },
    /// A file changed size while it was copied (a live copy of a busy world).
    #[error("{path} changed while it was copied; try again, or stop the world first")]
    Changed { path: String },
}

/// Creates a directory (and its parents) readable by this user only.
pub(crate) fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

//! What was recorded of a backup's archive when it was made: a restore
//! holds the archive to it (the same size and checksum, and never more
//! files or bytes unpacked than it held), wherever the restore happens.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// The archive's own size, compressed.
    pub size: u64,
    /// The archive's own SHA-256, hex.
    pub sha256: String,
    /// The bytes of all files in it, unpacked.
    pub bytes: u64,
    /// How many files it holds.
    pub files: u64,
}

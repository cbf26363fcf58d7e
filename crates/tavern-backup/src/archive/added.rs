//! Folders on this machine added into a copy of an archive (a download):
//! the library's packages a world uses, put where the world's links to
//! them were, writable, unless the archive holds something there itself.
//! Blocking code.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{FileEntry, Hashing, Manifest, Sink, io_err};
use crate::ArchiveError;

/// A folder on this machine put into a copy of an archive at `at` below
/// the data directory (a library package the world uses, say
/// `Data/systems/dnd5e`), unless the archive holds something there itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    pub at: String,
    pub from: PathBuf,
}

/// Feeds each of `added` that `manifest` holds nothing at to `sink`, made
/// writable for its owner (the library keeps its folders read-only), and
/// records its files in `manifest` (the place no longer counts as
/// skipped).
pub(crate) fn feed_added(
    sink: &mut dyn Sink,
    manifest: &mut Manifest,
    added: &[Added],
) -> Result<(), ArchiveError> {
    for a in added {
        let inside = format!("{}/", a.at);
        let held = (manifest.files.iter().map(|f| &f.path))
            .chain(manifest.links.iter().map(|l| &l.path))
            .any(|p| *p == a.at || p.starts_with(&inside));
        if held {
            continue;
        }
        let meta =
            std::fs::metadata(&a.from).map_err(io_err(format!("inspect {}", a.from.display())))?;
        sink.dir(&a.at, &header_for(&meta, 0o700))?;
        let mut files = Vec::new();
        feed_dir(sink, &a.from, &inside, &mut files)?;
        manifest.files.extend(files);
        manifest.skipped.retain(|s| *s != a.at);
    }
    Ok(())
}

/// A tar header for a file or folder on this machine, its mode with
/// `plus` added.
fn header_for(meta: &std::fs::Metadata, plus: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_mode(header.mode().unwrap_or(0o644) | plus);
    if meta.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
    }
    header
}

/// Feeds the folders and files below `dir` (sorted by name; links and
/// anything else left out) to `sink` under `rel` (ending in `/`).
fn feed_dir(
    sink: &mut dyn Sink,
    dir: &Path,
    rel: &str,
    files: &mut Vec<FileEntry>,
) -> Result<(), ArchiveError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(format!("read {}", dir.display())))?
        .collect::<Result<_, _>>()
        .map_err(io_err(format!("read {}", dir.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(io_err(format!("inspect {}", path.display())))?;
        let at = format!("{rel}{name}");
        if meta.is_dir() {
            sink.dir(&at, &header_for(&meta, 0o700))?;
            feed_dir(sink, &path, &format!("{at}/"), files)?;
        } else if meta.is_file() {
            let file = File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            let mut reading = Hashing::new(file.take(meta.len()));
            sink.file(&at, &header_for(&meta, 0o200), &mut reading)?;
            let (_, size, sha256) = reading.finish();
            files.push(FileEntry {
                path: at,
                size,
                sha256,
            });
        }
    }
    Ok(())
}

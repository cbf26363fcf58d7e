//! What a snapshot takes of a world's data directory, under the rules its
//! archives keep: files, directories and links that stay inside, sorted by
//! name as restic's trees are, under `/data`; never Tavern's secrets
//! ([`WITHHELD`]), links leading outside, sockets or devices. A file that
//! changes size while it is read, or an entry that cannot be read, is
//! noted, so the backup fails instead of leaving it out.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ErrorKind, ReadSource, ReadSourceEntry, RusticError, RusticResult};

use crate::archive::{WITHHELD, link_stays_inside};

/// The snapshot's one path: the data directory's contents sit below it.
pub(crate) const ROOT: &str = "/data";

/// What a walk noted beside the entries it gave.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// Files given, and their bytes as listed; links given.
    pub files: u64,
    pub bytes: u64,
    pub links: u64,
    /// Entries left out by the rules (links leading outside, sockets).
    pub skipped: Vec<String>,
    /// Tavern's secrets that were there and were left out.
    pub withheld: Vec<String>,
    /// Entries that could not be read whole, with why.
    pub failed: Vec<String>,
}

pub(crate) struct WorldSource {
    root: PathBuf,
    notes: Arc<Mutex<Notes>>,
}

impl WorldSource {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            notes: Arc::default(),
        }
    }

    pub(crate) fn notes(&self) -> Arc<Mutex<Notes>> {
        self.notes.clone()
    }
}

// restic keeps modes as Go's `fs.FileMode`: the permission bits, and the
// type and special bits high up.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// A Unix mode as restic keeps it.
pub(crate) fn go_mode(mode: u32, kind: &NodeType) -> u32 {
    let mut go = mode & 0o777;
    match kind {
        NodeType::Dir => go |= GO_DIR,
        NodeType::Symlink { .. } => go |= GO_SYMLINK,
        _ => {}
    }
    for (unix, flag) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if mode & unix != 0 {
            go |= flag;
        }
    }
    go
}

fn timestamp(secs: i64, nanos: i64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(secs, i32::try_from(nanos).ok()?).ok()
}

fn metadata(m: &std::fs::Metadata, kind: &NodeType) -> Metadata {
    Metadata {
        mode: Some(go_mode(m.permissions().mode(), kind)),
        mtime: timestamp(m.mtime(), m.mtime_nsec()),
        atime: timestamp(m.atime(), m.atime_nsec()),
        ctime: timestamp(m.ctime(), m.ctime_nsec()),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        user: None,
        group: None,
        inode: m.ino(),
        device_id: m.dev(),
        size: if m.is_file() { m.len() } else { 0 },
        links: if m.is_dir() { 0 } else { m.nlink() },
        extended_attributes: Vec::new(),
    }
}

/// A file to read when the archiver gets to it.
pub(crate) struct Pending {
    path: PathBuf,
    rel: String,
    size: u64,
    notes: Arc<Mutex<Notes>>,
}

impl rustic_core::ReadSourceOpen for Pending {
    type Reader = Sized;

    fn open(self) -> RusticResult<Self::Reader> {
        match File::open(&self.path) {
            Ok(file) => Ok(Sized {
                file,
                left: self.size,
                rel: self.rel,
                notes: self.notes,
            }),
            Err(e) => {
                note_failed(&self.notes, &self.rel, &e.to_string());
                Err(
                    RusticError::with_source(ErrorKind::InputOutput, "cannot open {file}", e)
                        .attach_context("file", self.rel),
                )
            }
        }
    }
}

fn note_failed(notes: &Mutex<Notes>, rel: &str, why: &str) {
    notes
        .lock()
        .expect("not poisoned")
        .failed
        .push(format!("{rel}: {why}"));
}

/// A file read for exactly the size it was listed with: one that grew or
/// shrank meanwhile is an error (and noted), never half a file.
pub(crate) struct Sized {
    file: File,
    left: u64,
    rel: String,
    notes: Arc<Mutex<Notes>>,
}

impl Read for Sized {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let changed = |s: &Self| {
            note_failed(&s.notes, &s.rel, "it changed while it was copied");
            std::io::Error::other(format!("{} changed while it was copied", s.rel))
        };
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(changed(self)),
            };
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read(&mut buf[..room])?;
        if n == 0 {
            return Err(changed(self));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

type Entry = RusticResult<ReadSourceEntry<Pending>>;

impl WorldSource {
    /// The entry for one thing found by the walk, `None` when the rules
    /// leave it out.
    fn entry(&self, found: walkdir::Result<walkdir::DirEntry>) -> Option<Entry> {
        let fail = |rel: &str, why: String| {
            note_failed(&self.notes, rel, &why);
            Some(Err(RusticError::new(
                ErrorKind::InputOutput,
                "cannot read {file}",
            )
            .attach_context("file", rel.to_owned())))
        };
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                let rel = e
                    .path()
                    .and_then(|p| p.strip_prefix(&self.root).ok())
                    .map_or_else(String::new, |p| p.display().to_string());
                return fail(&rel, e.to_string());
            }
        };
        // The directory itself: its place in the snapshot is made by the
        // archiver.
        if found.depth() == 0 {
            return None;
        }
        let path = found.path();
        let Some(rel) = path
            .strip_prefix(&self.root)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_owned)
        else {
            self.note(|n| n.skipped.push(path.display().to_string()));
            return None;
        };
        if WITHHELD.contains(&rel.as_str()) {
            self.note(|n| n.withheld.push(rel.clone()));
            return None;
        }
        let meta = match found.metadata() {
            Ok(m) => m,
            Err(e) => return fail(&rel, e.to_string()),
        };
        let kind = meta.file_type();
        let node_type = if kind.is_dir() {
            NodeType::Dir
        } else if kind.is_file() {
            NodeType::File
        } else if kind.is_symlink() {
            let target = match std::fs::read_link(path) {
                Ok(t) => t,
                Err(e) => return fail(&rel, e.to_string()),
            };
            match target.to_str() {
                Some(t) if link_stays_inside(&rel, t) => NodeType::from_link(&target),
                _ => {
                    self.note(|n| n.skipped.push(rel.clone()));
                    return None;
                }
            }
        } else {
            self.note(|n| n.skipped.push(rel.clone()));
            return None;
        };
        let open = (node_type == NodeType::File).then(|| Pending {
            path: path.to_path_buf(),
            rel: rel.clone(),
            size: meta.len(),
            notes: self.notes.clone(),
        });
        self.note(|n| match &node_type {
            NodeType::File => {
                n.files += 1;
                n.bytes += meta.len();
            }
            NodeType::Symlink { .. } => n.links += 1,
            _ => {}
        });
        let node = Node::new_node(
            found.file_name(),
            node_type.clone(),
            metadata(&meta, &node_type),
        );
        Some(Ok(ReadSourceEntry {
            path: Path::new(ROOT).join(&rel),
            node,
            open,
        }))
    }

    fn note(&self, f: impl FnOnce(&mut Notes)) {
        f(&mut self.notes.lock().expect("not poisoned"));
    }
}

impl ReadSource for WorldSource {
    type Open = Pending;
    type Iter = std::vec::IntoIter<Entry>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        // Listed whole first: the walk is cheap beside the reading, and
        // the notes are complete before the first file is read.
        walkdir::WalkDir::new(&self.root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|found| self.entry(found))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_listed(size: u64, contents: &[u8]) -> (std::io::Result<Vec<u8>>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, contents).unwrap();
        let notes = Arc::<Mutex<Notes>>::default();
        let pending = Pending {
            path,
            rel: "f".into(),
            size,
            notes: notes.clone(),
        };
        let mut reader = rustic_core::ReadSourceOpen::open(pending).unwrap();
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out).map(|_| out);
        let failed = notes.lock().unwrap().failed.clone();
        (read, failed)
    }

    #[test]
    fn a_file_is_read_for_exactly_its_listed_size() {
        let (read, failed) = read_listed(5, b"hello");
        assert_eq!(read.unwrap(), b"hello");
        assert!(failed.is_empty());
    }

    #[test]
    fn a_file_that_grew_or_shrank_is_an_error_and_noted() {
        for (size, contents) in [(3, &b"hello"[..]), (9, &b"hello"[..])] {
            let (read, failed) = read_listed(size, contents);
            assert!(read.is_err(), "listed {size}, holds {}", contents.len());
            assert_eq!(failed, vec!["f: it changed while it was copied".to_owned()]);
        }
    }

    #[test]
    fn modes_are_kept_as_go_keeps_them() {
        assert_eq!(go_mode(0o100644, &NodeType::File), 0o644);
        assert_eq!(go_mode(0o40755, &NodeType::Dir), 0o755 | GO_DIR);
        assert_eq!(
            go_mode(0o120777, &NodeType::from_link(Path::new("x"))),
            0o777 | GO_SYMLINK
        );
        assert_eq!(go_mode(0o104755, &NodeType::File), 0o755 | GO_SETUID);
        assert_eq!(go_mode(0o41777, &NodeType::Dir), 0o777 | GO_DIR | GO_STICKY);
    }
}

//! A snapshot written out as Tavern's archive or a Foundry zip, read as
//! an archive's entries are: each directory, file
//! and link of its data directory, in order, handed to the writers of
//! Tavern's own archive and of the zip a plain Foundry takes, with the
//! manifest of what was given (every file's size and SHA-256). Its entries
//! are held to the restore's rules first.

use std::io::{Read, Write};

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{IndexedFull, LsOptions, Repository};

use super::{Checked, Repo, RepoError, check_entries, data_node};
use crate::ArchiveError;
use crate::archive::{
    Added, FileEntry, Hashing, Limits, LinkEntry, Manifest, Sink, Summary, corrupt,
};

/// A file of a snapshot, read a piece at a time.
struct SnapshotReader<'a, S> {
    repo: &'a Repository<S>,
    open: rustic_core::vfs::OpenFile,
    at: usize,
    size: usize,
}

/// How much of a file is read from the repository at once.
const PIECE: usize = 1024 * 1024;

impl<S: IndexedFull> Read for SnapshotReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(PIECE).min(self.size - self.at);
        if want == 0 {
            return Ok(0);
        }
        let got = self
            .repo
            .read_file_at(&self.open, self.at, want)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if got.is_empty() {
            return Err(std::io::Error::other("the file is cut short"));
        }
        let n = got.len().min(want);
        buf[..n].copy_from_slice(&got[..n]);
        self.at += n;
        Ok(n)
    }
}

/// The tar header an entry is described by: its mode and time.
fn header(node: &Node, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(node.meta.mode.unwrap_or(0o644) & 0o777);
    if let Some(t) = node.meta.mtime {
        h.set_mtime(u64::try_from(t.as_second()).unwrap_or(0));
    }
    h.set_size(size);
    h
}

fn refused(e: RepoError) -> ArchiveError {
    match e {
        RepoError::Unsafe { path, why } => ArchiveError::Unsafe { path, why },
        e => corrupt(e.to_string()),
    }
}

impl Repo {
    /// Writes snapshot `id` (checked against `limits`) to `out` as an
    /// archive of Tavern's own, with `secrets` and `added` as
    /// [`archive::rewrite`](crate::archive::rewrite) puts them in.
    pub fn write_archive(
        &self,
        id: &str,
        limits: Limits,
        out: impl Write,
        threads: u32,
        secrets: &[(&str, &[u8])],
        added: &[Added],
    ) -> Result<Summary, ArchiveError> {
        crate::archive::rewrite_fed(out, threads, secrets, added, |sink| {
            self.feed(id, sink, limits)
        })
    }

    /// Writes snapshot `id` (checked against `limits`) to `out` as the zip
    /// a plain Foundry takes, as [`foundry_zip`](crate::export::foundry_zip)
    /// makes it.
    pub fn write_zip(
        &self,
        id: &str,
        limits: Limits,
        out: impl Write,
        secrets: &[(&str, &[u8])],
        added: &[Added],
    ) -> Result<(), ArchiveError> {
        crate::export::zip_fed(out, secrets, added, |sink| self.feed(id, sink, limits))
    }

    /// Gives snapshot `id`'s entries to `sink`, in order, after checking
    /// them against the rules and `limits`; answers their manifest.
    fn feed(
        &self,
        id: &str,
        sink: &mut dyn Sink,
        limits: Limits,
    ) -> Result<Manifest, ArchiveError> {
        let (repo, snap) = self.snapshot(id).map_err(refused)?;
        let mut manifest = Manifest::default();
        let Some(node) = data_node(&repo, &snap).map_err(|e| corrupt(e.to_string()))? else {
            return match limits.files {
                0 => Ok(manifest),
                n => Err(corrupt(format!("it holds no files, not the {n} recorded"))),
            };
        };
        let entries = repo
            .ls(&node, &LsOptions::default())
            .map_err(|e| corrupt(e.to_string()))?;
        check_entries(entries.clone(), limits).map_err(|e| match e {
            Checked::Rustic(e) => corrupt(e.to_string()),
            Checked::Refused(e) => refused(e),
        })?;
        for entry in entries {
            let (path, node) = entry.map_err(|e| corrupt(e.to_string()))?;
            let rel = path
                .to_str()
                .ok_or_else(|| corrupt(format!("{} is not UTF-8", path.display())))?
                .to_owned();
            match &node.node_type {
                NodeType::Dir => sink.dir(&rel, &header(&node, tar::EntryType::Directory, 0))?,
                NodeType::File => {
                    let size = node.meta.size;
                    let open = repo
                        .open_file(&node)
                        .map_err(|e| corrupt(format!("{rel}: {e}")))?;
                    let reader = SnapshotReader {
                        repo: &repo,
                        open,
                        at: 0,
                        size: usize::try_from(size)
                            .map_err(|_| corrupt(format!("{rel} is too large")))?,
                    };
                    let mut reading = Hashing::new(reader);
                    sink.file(
                        &rel,
                        &header(&node, tar::EntryType::Regular, size),
                        &mut reading,
                    )?;
                    let (_, read, sha256) = reading.finish();
                    if read != size {
                        return Err(corrupt(format!("{rel} is cut short")));
                    }
                    manifest.files.push(FileEntry {
                        path: rel,
                        size,
                        sha256,
                    });
                }
                NodeType::Symlink { linktarget, .. } => {
                    sink.link(&rel, &header(&node, tar::EntryType::Symlink, 0), linktarget)?;
                    manifest.links.push(LinkEntry {
                        path: rel,
                        target: linktarget.clone(),
                    });
                }
                // Refused by the check above.
                _ => {}
            }
        }
        Ok(manifest)
    }
}

//! Copying an archive, or a snapshot's entries, into a new archive
//! without Tavern's secrets ([`WITHHELD`]), then with the secrets an admin
//! asks for and the library's packages put in.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{
    Added, DATA, Discard, FileEntry, Limits, Manifest, Sink, Summary, WITHHELD, corrupt, encoder,
    feed_added, finish, io_err, read_into,
};
use crate::ArchiveError;

/// Copies every entry into another archive, but Tavern's secrets.
struct Rewrite<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> Sink for Rewrite<W> {
    fn dir(&mut self, rel: &str, header: &tar::Header) -> Result<(), ArchiveError> {
        let mut h = header.clone();
        self.tar
            .append_data(&mut h, format!("{DATA}/{rel}"), io::empty())
            .map_err(io_err(format!("copy {rel}")))
    }

    fn file(
        &mut self,
        rel: &str,
        header: &tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        if WITHHELD.contains(&rel) {
            return Discard.file(rel, header, data);
        }
        let mut h = header.clone();
        self.tar
            .append_data(&mut h, format!("{DATA}/{rel}"), data)
            .map_err(|e| corrupt(format!("{rel}: {e}")))
    }

    fn link(&mut self, rel: &str, header: &tar::Header, target: &str) -> Result<(), ArchiveError> {
        if WITHHELD.contains(&rel) {
            return Ok(());
        }
        let mut h = header.clone();
        self.tar
            .append_link(&mut h, format!("{DATA}/{rel}"), target)
            .map_err(io_err(format!("copy {rel}")))
    }
}

/// Copies the archive `input` to `out` as a new archive without Tavern's
/// secrets ([`WITHHELD`], in archives made before they were left out),
/// verifying the whole input on the way (within `limits`), then adds the
/// secrets given in `secrets` (path below the data directory, contents)
/// and the `added` folders; answers the summary of what was written. An
/// error leaves `out` incomplete: the caller discards it.
pub fn rewrite(
    input: impl Read,
    out: impl Write,
    threads: u32,
    limits: Option<Limits>,
    secrets: &[(&str, &[u8])],
    added: &[Added],
) -> Result<Summary, ArchiveError> {
    rewrite_fed(out, threads, secrets, added, |sink| {
        read_into(input, sink, limits).map(|s| s.manifest)
    })
}

/// An archive of what `feed` gives (answering the manifest of what it
/// gave), without Tavern's secrets, then `secrets` and `added`.
pub(crate) fn rewrite_fed<W: Write>(
    out: W,
    threads: u32,
    secrets: &[(&str, &[u8])],
    added: &[Added],
    feed: impl FnOnce(&mut dyn Sink) -> Result<Manifest, ArchiveError>,
) -> Result<Summary, ArchiveError> {
    let zstd = encoder(out, threads)?;
    let mut copy = Rewrite {
        tar: tar::Builder::new(zstd),
    };
    let mut manifest = feed(&mut copy)?;
    let secret = |path: &String| WITHHELD.contains(&path.as_str());
    let left_out: Vec<String> = (manifest.files.iter().map(|f| &f.path))
        .chain(manifest.links.iter().map(|l| &l.path))
        .filter(|p| secret(p))
        .cloned()
        .collect();
    manifest.files.retain(|f| !secret(&f.path));
    manifest.links.retain(|l| !secret(&l.path));
    for path in left_out {
        if !manifest.withheld.contains(&path) {
            manifest.withheld.push(path);
        }
    }
    for (rel, contents) in secrets {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        copy.tar
            .append_data(&mut header, format!("{DATA}/{rel}"), *contents)
            .map_err(io_err(format!("add {rel}")))?;
        manifest.withheld.retain(|w| w != rel);
        manifest.files.push(FileEntry {
            path: (*rel).to_owned(),
            size: contents.len() as u64,
            sha256: hex::encode(Sha256::digest(contents)),
        });
    }
    feed_added(&mut copy, &mut manifest, added)?;
    finish(copy.tar, manifest)
}

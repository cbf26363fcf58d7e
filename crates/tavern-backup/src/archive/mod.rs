//! Archives of a world's data directory: a tar stream compressed with zstd
//! (on several threads), the directory under `data/` and, last, a manifest
//! of every file's size and SHA-256. The files Tavern writes from its sealed
//! secrets ([`WITHHELD`]) are never archived. Reading an archive verifies it
//! all, refuses whatever could land outside its directory, and never
//! decompresses more than the [`Limits`] it is given; it may unpack at the
//! same time, or copy the archive without Tavern's secrets ([`rewrite`]).
//! Blocking code: callers run it on a blocking thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ArchiveError;
pub(crate) mod added;
mod rewrite;
pub use added::Added;
use added::feed_added;
pub use rewrite::rewrite;
pub(crate) use rewrite::rewrite_fed;

/// The manifest's name in the archive.
pub const MANIFEST: &str = "manifest.json";
/// Where the data directory's contents sit in the archive.
const DATA: &str = "data";
/// zstd's level: fast, and close to gzip's size.
const LEVEL: i32 = 3;

/// What Tavern writes into a world's `Config/` from its sealed secrets
/// (the license key, signed or not, the admin key's hash, and the key to
/// the world's object storage): left out of every archive and written
/// again when the world starts.
pub const WITHHELD: [&str; 3] = [
    "Config/license.json",
    "Config/admin.txt",
    "Config/awsConfig.json",
];

/// What an archive holds, written into it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Every regular file, by path relative to the data directory
    /// (`/`-separated), in archive order.
    pub files: Vec<FileEntry>,
    /// Symbolic links that stay inside the directory.
    pub links: Vec<LinkEntry>,
    /// What was left out: links that lead outside, sockets, devices.
    pub skipped: Vec<String>,
    /// Tavern's secrets that were there and were left out ([`WITHHELD`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEntry {
    pub path: String,
    pub target: String,
}

impl Manifest {
    /// The bytes of all files together.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Summary {
    /// The limits this archive keeps to.
    pub fn limits(&self) -> Limits {
        Limits {
            bytes: self.manifest.total_bytes(),
            files: self.manifest.files.len() as u64,
        }
    }
}

/// An archive as a whole: its manifest, its size and its own SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub manifest: Manifest,
    pub size: u64,
    pub sha256: String,
}

/// Counts and hashes what passes through, either way.
pub(crate) struct Hashing<T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    pub(crate) fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hash.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    move |source| ArchiveError::Io {
        context: context.into(),
        source,
    }
}

/// Writes an archive of `src` to `out`, compressing on `threads` threads.
/// A file that changes size while it is read fails the archive (a live copy
/// of a busy world; try again).
pub fn write(src: &Path, out: impl Write, threads: u32) -> Result<Summary, ArchiveError> {
    let mut tar = tar::Builder::new(encoder(out, threads)?);
    let mut manifest = Manifest::default();
    add_dir(&mut tar, src, "", &mut manifest)?;
    finish(tar, manifest)
}

/// A zstd stream to `out`, hashed as it is written, compressed on
/// `threads` threads.
pub(super) fn encoder<W: Write>(
    out: W,
    threads: u32,
) -> Result<zstd::Encoder<'static, Hashing<W>>, ArchiveError> {
    let mut zstd = zstd::Encoder::new(Hashing::new(out), LEVEL).map_err(io_err("start zstd"))?;
    if threads > 1 {
        zstd.multithread(threads)
            .map_err(io_err("start zstd's threads"))?;
    }
    Ok(zstd)
}

/// Adds the entries of `dir` (its path in the archive below `data/` is
/// `rel`), sorted by name, recursively.
fn add_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    manifest: &mut Manifest,
) -> Result<(), ArchiveError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(format!("read {}", dir.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(format!("read {}", dir.display())))?;
    names.sort();
    for name in names {
        let Some(name) = name.to_str() else {
            return Err(ArchiveError::Unsafe {
                path: format!("{rel}{}", name.to_string_lossy()),
                why: "its name is not UTF-8".into(),
            });
        };
        let path = dir.join(name);
        let rel = format!("{rel}{name}");
        let meta = std::fs::symlink_metadata(&path)
            .map_err(io_err(format!("inspect {}", path.display())))?;
        if WITHHELD.contains(&rel.as_str()) {
            manifest.withheld.push(rel);
            continue;
        }
        let in_tar = format!("{DATA}/{rel}");
        let mut header = tar::Header::new_gnu();
        // Each entry keeps its modification time and mode, so that a
        // restore gives back the files as they were.
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, &in_tar, io::empty())
                .map_err(io_err(format!("add {rel}")))?;
            add_dir(tar, &path, &format!("{rel}/"), manifest)?;
        } else if meta.is_file() {
            let file = File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            let size = meta.len();
            let mut reading = Hashing::new(file.take(size));
            tar.append_data(&mut header, &in_tar, &mut reading)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => ArchiveError::Changed { path: rel.clone() },
                    _ => io_err(format!("add {rel}"))(e),
                })?;
            let (_, read, sha256) = reading.finish();
            if read != size {
                return Err(ArchiveError::Changed { path: rel });
            }
            manifest.files.push(FileEntry {
                path: rel,
                size,
                sha256,
            });
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(io_err(format!("read link {}", path.display())))?;
            match target.to_str().filter(|t| link_stays_inside(&rel, t)) {
                Some(t) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, &in_tar, t)
                        .map_err(io_err(format!("add {rel}")))?;
                    manifest.links.push(LinkEntry {
                        path: rel,
                        target: t.to_owned(),
                    });
                }
                None => manifest.skipped.push(rel),
            }
        } else {
            manifest.skipped.push(rel);
        }
    }
    Ok(())
}

/// Whether a link at `rel` (below the data directory) pointing at `target`
/// stays inside: relative, some `..` first that never climb above the
/// directory, then plain names.
pub(crate) fn link_stays_inside(rel: &str, target: &str) -> bool {
    let depth = rel.matches('/').count();
    let mut ups = 0;
    let mut named = false;
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir if !named => ups += 1,
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            _ => return false,
        }
    }
    named && ups <= depth
}

/// A path in the archive, checked: plain names only, below `data/` (or the
/// manifest). Answers the path below `data/`, or `None` for the manifest.
fn entry_path(raw: &Path) -> Result<Option<String>, ArchiveError> {
    let unsafe_path = |why: &str| ArchiveError::Unsafe {
        path: raw.display().to_string(),
        why: why.into(),
    };
    let mut names = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => names.push(n.to_str().ok_or_else(|| unsafe_path("not UTF-8"))?),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("it climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("it is an absolute path"));
            }
        }
    }
    match names.as_slice() {
        [MANIFEST] => Ok(None),
        [DATA, rest @ ..] if !rest.is_empty() => Ok(Some(rest.join("/"))),
        _ => Err(unsafe_path("it lies outside the archive's data")),
    }
}

/// Refuses to write below a link: every directory on the way from `root`
/// to `rel` must be a real directory (or not exist yet).
fn no_link_on_the_way(root: &Path, rel: &str) -> Result<(), ArchiveError> {
    let mut at = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ArchiveError::Unsafe {
                path: rel.to_owned(),
                why: "it would be written through a link".into(),
            });
        }
    }
    Ok(())
}

/// How much an archive may hold, as recorded when it was made: reading
/// stops, refusing the archive, as soon as it holds more files or bytes
/// than these, or decompresses to more than they allow with tar's framing
/// (a zstd bomb).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The bytes of all files together.
    pub bytes: u64,
    /// The number of files.
    pub files: u64,
}

/// Tar's framing allowed per file (a header, padding, a long name) and
/// in all (directories, links, the manifest), beyond the files' bytes.
const FRAMING_PER_FILE: u64 = 4 * 1024;
const FRAMING: u64 = 64 * 1024 * 1024;

impl Limits {
    /// What the decompressed stream may hold in all.
    pub(crate) fn stream_bytes(&self) -> u64 {
        self.bytes
            .saturating_add(FRAMING_PER_FILE.saturating_mul(self.files.saturating_add(1)))
            .saturating_add(FRAMING)
    }
}

/// Reads at most `left` bytes, then fails (and says so in `hit`).
pub(crate) struct Capped<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
    pub(crate) hit: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One more byte would be too many; an end is fine.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.hit = true;
                    Err(io::Error::other(
                        "the archive unpacks to more than declared",
                    ))
                }
            };
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Where the entries of an archive being read go.
pub(crate) trait Sink {
    /// A directory, at `rel` below `data/`.
    fn dir(&mut self, rel: &str, header: &tar::Header) -> Result<(), ArchiveError>;
    /// A file: `data` must be read to its end.
    fn file(
        &mut self,
        rel: &str,
        header: &tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError>;
    /// A link that stays inside.
    fn link(&mut self, rel: &str, header: &tar::Header, target: &str) -> Result<(), ArchiveError>;
}

/// Reads, checks, and forgets.
pub(crate) struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _: &str, _: &tar::Header) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn file(
        &mut self,
        rel: &str,
        _: &tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        io::copy(data, &mut io::sink())
            .map(|_| ())
            .map_err(|e| corrupt(format!("{rel}: {e}")))
    }

    fn link(&mut self, _: &str, _: &tar::Header, _: &str) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// Writes every entry below a new directory, with its mode and
/// modification time.
struct Unpack<'a> {
    root: &'a Path,
    /// Directories and their times, set once everything inside them is
    /// written (writing a file changes its directory's time).
    dirs: Vec<(PathBuf, Option<u64>)>,
}

impl Unpack<'_> {
    /// Sets the directories' times, innermost first.
    fn finish(&mut self) -> Result<(), ArchiveError> {
        for (dir, mtime) in self.dirs.drain(..).rev() {
            if let Some(mtime) = mtime {
                set_mtime(&dir, mtime)?;
            }
        }
        Ok(())
    }
}

/// Sets the modification time of `path` (a file or a directory) to
/// `mtime` seconds since the epoch.
fn set_mtime(path: &Path, mtime: u64) -> Result<(), ArchiveError> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    File::open(path)
        .and_then(|f| f.set_modified(when))
        .map_err(io_err(format!("set the time of {}", path.display())))
}

impl Unpack<'_> {
    /// Where `rel` goes, its parent made; never through a link.
    fn place(&self, rel: &str) -> Result<PathBuf, ArchiveError> {
        no_link_on_the_way(self.root, rel)?;
        let dest = self.root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("create {}", parent.display())))?;
        }
        Ok(dest)
    }
}

impl Sink for Unpack<'_> {
    fn dir(&mut self, rel: &str, header: &tar::Header) -> Result<(), ArchiveError> {
        let dest = self.place(rel)?;
        std::fs::create_dir_all(&dest).map_err(io_err(format!("create {}", dest.display())))?;
        // Always open to its owner, who must be able to write into it.
        let mode = header.mode().unwrap_or(0o755) & 0o777;
        set_mode(&dest, mode | 0o700)?;
        self.dirs.push((dest, header.mtime().ok()));
        Ok(())
    }

    fn file(
        &mut self,
        rel: &str,
        header: &tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let dest = self.place(rel)?;
        let mut out = File::create(&dest).map_err(io_err(format!("create {}", dest.display())))?;
        io::copy(data, &mut out).map_err(|e| corrupt(format!("{rel}: {e}")))?;
        if let Ok(mtime) = header.mtime() {
            out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
                .map_err(io_err(format!("set the time of {}", dest.display())))?;
        }
        let mode = header.mode().unwrap_or(0o644) & 0o777;
        set_mode(&dest, mode | 0o600)
    }

    fn link(&mut self, rel: &str, _: &tar::Header, target: &str) -> Result<(), ArchiveError> {
        let dest = self.place(rel)?;
        std::os::unix::fs::symlink(target, &dest)
            .map_err(io_err(format!("link {}", dest.display())))
    }
}

pub(crate) fn corrupt(detail: String) -> ArchiveError {
    ArchiveError::Corrupt { detail }
}

/// Reads a whole archive, checking every entry against the manifest and the
/// rules (no absolute paths, no `..`, no links that lead outside, nothing
/// but files, directories and such links, nothing beyond `limits`); with
/// `unpack_to` (a directory that does not exist yet), also writes it there.
/// On any error what was unpacked is removed.
pub fn read(
    input: impl Read,
    unpack_to: Option<&Path>,
    limits: Option<Limits>,
) -> Result<Summary, ArchiveError> {
    let Some(dest) = unpack_to else {
        return read_into(input, &mut Discard, limits);
    };
    std::fs::create_dir(dest).map_err(io_err(format!("create {}", dest.display())))?;
    let mut unpack = Unpack {
        root: dest,
        dirs: Vec::new(),
    };
    let result = read_into(input, &mut unpack, limits).and_then(|summary| {
        unpack.finish()?;
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

/// Writes the manifest last and finishes the stream.
pub(super) fn finish<W: Write>(
    mut tar: tar::Builder<zstd::Encoder<'static, Hashing<W>>>,
    manifest: Manifest,
) -> Result<Summary, ArchiveError> {
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST, json.as_slice())
        .map_err(io_err("write the manifest"))?;
    let zstd = tar.into_inner().map_err(io_err("finish the archive"))?;
    let hashing = zstd.finish().map_err(io_err("finish zstd"))?;
    let (mut out, size, sha256) = hashing.finish();
    out.flush().map_err(io_err("flush the archive"))?;
    Ok(Summary {
        manifest,
        size,
        sha256,
    })
}

pub(crate) fn read_into(
    input: impl Read,
    sink: &mut dyn Sink,
    limits: Option<Limits>,
) -> Result<Summary, ArchiveError> {
    let decoder = zstd::Decoder::new(Hashing::new(input))
        .map_err(|e| corrupt(format!("not a zstd stream: {e}")))?;
    let mut tar = tar::Archive::new(Capped {
        inner: decoder,
        left: limits.map_or(u64::MAX, |l| l.stream_bytes()),
        hit: false,
    });
    let result = read_entries(&mut tar, sink, limits);
    let capped = tar.into_inner();
    if capped.hit {
        return Err(corrupt(
            "it unpacks to more than the bytes recorded for it".into(),
        ));
    }
    let (manifest, files, links) = result?;
    let mut hashing = capped.inner.finish().into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    let (_, size, sha256) = hashing.finish();
    let manifest = manifest.ok_or_else(|| corrupt("it has no manifest".into()))?;
    let listed: BTreeMap<String, (u64, String)> = manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), (f.size, f.sha256.clone())))
        .collect();
    if listed != files {
        let wrong = listed
            .iter()
            .find(|(p, v)| files.get(*p) != Some(*v))
            .map(|(p, _)| p.clone())
            .or_else(|| files.keys().find(|p| !listed.contains_key(*p)).cloned())
            .unwrap_or_default();
        return Err(corrupt(format!(
            "{wrong} does not match the manifest (checksum, size or presence)"
        )));
    }
    let listed_links: BTreeMap<String, String> = manifest
        .links
        .iter()
        .map(|l| (l.path.clone(), l.target.clone()))
        .collect();
    if listed_links != links {
        return Err(corrupt("its links do not match the manifest".into()));
    }
    Ok(Summary {
        manifest,
        size,
        sha256,
    })
}

/// The manifest, files by path (size, SHA-256) and links by path
/// (target), as read.
type Entries = (
    Option<Manifest>,
    BTreeMap<String, (u64, String)>,
    BTreeMap<String, String>,
);

fn read_entries<R: Read>(
    tar: &mut tar::Archive<R>,
    sink: &mut dyn Sink,
    limits: Option<Limits>,
) -> Result<Entries, ArchiveError> {
    let mut files: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut file_bytes: u64 = 0;
    let entries = tar
        .entries()
        .map_err(|e| corrupt(format!("unreadable: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("unreadable entry: {e}")))?;
        let raw: PathBuf = entry
            .path()
            .map_err(|e| corrupt(format!("unreadable path: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        let Some(rel) = entry_path(&raw)? else {
            if manifest.is_some() || !kind.is_file() {
                return Err(corrupt("more than one manifest".into()));
            }
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
            manifest = Some(
                serde_json::from_slice(&json)
                    .map_err(|e| corrupt(format!("unreadable manifest: {e}")))?,
            );
            continue;
        };
        if files.contains_key(&rel) || links.contains_key(&rel) {
            return Err(corrupt(format!("{rel} appears twice")));
        }
        let header = entry.header().clone();
        match kind {
            tar::EntryType::Directory => sink.dir(&rel, &header)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                file_bytes = file_bytes.saturating_add(size);
                if let Some(l) = limits
                    && (file_bytes > l.bytes || files.len() as u64 >= l.files)
                {
                    return Err(corrupt(format!(
                        "it holds more than the {} files and {} bytes recorded for it",
                        l.files, l.bytes
                    )));
                }
                let mut reading = Hashing::new(&mut entry);
                sink.file(&rel, &header, &mut reading)?;
                let (_, read, sha256) = reading.finish();
                if read != size {
                    return Err(corrupt(format!("{rel} is cut short")));
                }
                files.insert(rel, (size, sha256));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .and_then(|t| t.to_str().map(str::to_owned))
                    .unwrap_or_default();
                if !link_stays_inside(&rel, &target) {
                    return Err(ArchiveError::Unsafe {
                        path: rel,
                        why: format!("it links to {target:?}, outside the directory"),
                    });
                }
                sink.link(&rel, &header, &target)?;
                links.insert(rel, target);
            }
            other => {
                return Err(ArchiveError::Unsafe {
                    path: rel,
                    why: format!("it is a {other:?} entry, not a file, directory or link"),
                });
            }
        }
    }
    Ok((manifest, files, links))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("set the mode of {}", path.display())))
}

/// Reads the archive file at `path` (see [`read`]).
pub fn read_file(
    path: &Path,
    unpack_to: Option<&Path>,
    limits: Option<Limits>,
) -> Result<Summary, ArchiveError> {
    let file = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
    read(BufReader::new(file), unpack_to, limits)
}

/// The size and SHA-256 of the file at `path`, read once.
pub fn file_digest(path: &Path) -> Result<(u64, String), ArchiveError> {
    let file = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
    let mut hashing = Hashing::new(BufReader::new(file));
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err(format!("read {}", path.display())))?;
    let (_, size, sha256) = hashing.finish();
    Ok((size, sha256))
}

//! Imports from other Foundry hosts: a folder, or a zip, tar, tar.gz or
//! tar.zst of one (told apart by their first bytes), read with the same
//! care as a restore (no absolute paths, no `..`, no links out, no devices,
//! no entry twice, nothing beyond the limits, a zip entry never larger than
//! it declares). [`scan`] lists what is there, [`layout::plan`] decides
//! what is taken and where, and [`extract`] writes what is taken into a new
//! folder, removed again on any error; [`package`] unpacks one package's
//! zip by the same rules. Blocking code.

pub mod layout;
pub mod package;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use layout::{Entry, EntryKind, Layout, LayoutError};

use crate::archive::{Capped, Limits};

/// What an import can fail with; every failure leaves nothing behind.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot {context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// An entry that could land outside, or is no file, folder or link
    /// inside.
    #[error("{path} is refused: {why}")]
    Refused { path: String, why: String },
    #[error("it is neither a folder nor a zip, tar, tar.gz or tar.zst archive")]
    NotAnArchive,
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    #[error("it holds more than {0}, the most an import may hold")]
    TooLarge(String),
    #[error("{0} changed while it was read; try again once nothing writes to it")]
    Changed(String),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImportError {
    move |source| ImportError::Io {
        context: context.into(),
        source,
    }
}

fn refused(path: &str, why: impl Into<String>) -> ImportError {
    ImportError::Refused {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// How what is imported is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Folder,
    Zip,
    Tar,
    TarGz,
    TarZst,
}

/// How `source` is packed: a folder, or an archive by its first bytes.
pub fn format_of(source: &Path) -> Result<Format, ImportError> {
    let meta = std::fs::metadata(source).map_err(io_err(format!("read {}", source.display())))?;
    if meta.is_dir() {
        return Ok(Format::Folder);
    }
    let mut head = [0u8; 512];
    let mut file = File::open(source).map_err(io_err(format!("open {}", source.display())))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io_err(format!("read {}", source.display()))(e)),
        }
    }
    let head = &head[..n];
    Ok(match head {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Format::Zip,
        [0x1f, 0x8b, ..] => Format::TarGz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::TarZst,
        _ if tar_header(head) => Format::Tar,
        _ => return Err(ImportError::NotAnArchive),
    })
}

/// Whether `head` starts with a tar header: POSIX's or GNU's magic, or
/// (an old v7 tar) a checksum that adds up.
fn tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = &block[148..156];
    let Some(stated) = std::str::from_utf8(field)
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok())
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    block.iter().any(|b| *b != 0) && sum == stated
}

/// One entry as it is read: its checked path, what it is, its mode and
/// modification time when known.
struct Head {
    path: String,
    kind: EntryKind,
    mode: Option<u32>,
    mtime: Option<u64>,
}

/// A file's contents, as the source gives them.
enum Body<'a> {
    Read(&'a mut dyn Read),
    /// A file of a folder, to be copied as a whole.
    Origin(&'a Path),
    /// A folder or a link.
    None,
}

/// A path as found, checked: relative, plain names, UTF-8; `\` is taken as
/// a separator (zips made on Windows). Answers it `/`-separated, or `None`
/// for the top itself (`./`).
fn checked_path(raw: &Path) -> Result<Option<String>, ImportError> {
    let shown = raw.display().to_string();
    let text = raw
        .to_str()
        .ok_or_else(|| refused(&shown, "its name is not UTF-8"))?
        .replace('\\', "/");
    let mut names = Vec::new();
    for c in Path::new(&text).components() {
        match c {
            Component::Normal(n) => names.push(n.to_str().unwrap_or_default().to_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused(&shown, "it climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(&shown, "it is an absolute path"));
            }
        }
    }
    Ok((!names.is_empty()).then(|| names.join("/")))
}

/// Holds every entry to the rules as it comes: each path once, nothing
/// below a file or a link, within the limits.
struct Rules {
    limits: Limits,
    seen: HashMap<String, bool>,
    files: u64,
    bytes: u64,
}

impl Rules {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            seen: HashMap::new(),
            files: 0,
            bytes: 0,
        }
    }

    fn admit(&mut self, head: &Head) -> Result<(), ImportError> {
        let is_dir = head.kind == EntryKind::Dir;
        if let Some(before) = self.seen.get(&head.path) {
            if !(is_dir && *before) {
                return Err(refused(&head.path, "it appears twice"));
            }
            return Ok(());
        }
        let mut at = head.path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            if self.seen.get(parent) == Some(&false) {
                return Err(refused(
                    &head.path,
                    format!("it lies below {parent}, which is not a folder"),
                ));
            }
            at = parent;
        }
        match &head.kind {
            EntryKind::File { size } => {
                self.files += 1;
                self.bytes = self.bytes.saturating_add(*size);
                if self.files > self.limits.files {
                    return Err(ImportError::TooLarge(format!(
                        "{} files",
                        self.limits.files
                    )));
                }
                if self.bytes > self.limits.bytes {
                    return Err(ImportError::TooLarge(tavern_types::words::size(
                        self.limits.bytes,
                    )));
                }
            }
            EntryKind::Link { target } => {
                if !crate::archive::link_stays_inside(&head.path, target) {
                    return Err(refused(
                        &head.path,
                        format!("it is a link to {target}, which leads out"),
                    ));
                }
            }
            EntryKind::Dir => {}
        }
        self.seen.insert(head.path.clone(), is_dir);
        Ok(())
    }
}

type Visit<'v> = dyn FnMut(&Head, Body<'_>) -> Result<(), ImportError> + 'v;

/// Reads every entry of `source`, held to the rules, and gives each to
/// `visit` with its contents.
fn walk(source: &Path, limits: Limits, visit: &mut Visit<'_>) -> Result<(), ImportError> {
    let mut rules = Rules::new(limits);
    let mut checked = |head: &Head, body: Body<'_>| -> Result<(), ImportError> {
        rules.admit(head)?;
        visit(head, body)
    };
    match format_of(source)? {
        Format::Folder => walk_folder(source, "", &mut checked),
        Format::Zip => walk_zip(source, limits, &mut checked),
        Format::Tar => walk_tar(open(source)?, limits, &mut checked),
        Format::TarGz => walk_tar(
            flate2::read::MultiGzDecoder::new(open(source)?),
            limits,
            &mut checked,
        ),
        Format::TarZst => {
            let zstd = zstd::Decoder::new(open(source)?)
                .map_err(|e| ImportError::Damaged(format!("not a zstd stream: {e}")))?;
            walk_tar(zstd, limits, &mut checked)
        }
    }
}

fn open(path: &Path) -> Result<BufReader<File>, ImportError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(io_err(format!("open {}", path.display())))
}

fn walk_folder(dir: &Path, rel: &str, visit: &mut Visit<'_>) -> Result<(), ImportError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .and_then(|it| {
            it.map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
        })
        .map_err(io_err(format!("read {}", dir.display())))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(refused(
                &format!("{rel}{}", name.to_string_lossy()),
                "its name is not UTF-8",
            ));
        };
        let rel = format!("{rel}{name}");
        let meta = std::fs::symlink_metadata(&path)
            .map_err(io_err(format!("inspect {}", path.display())))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let mode = Some(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()));
        let file_type = meta.file_type();
        if file_type.is_dir() {
            let head = Head {
                path: rel.clone(),
                kind: EntryKind::Dir,
                mode,
                mtime,
            };
            visit(&head, Body::None)?;
            walk_folder(&path, &format!("{rel}/"), visit)?;
        } else if file_type.is_file() {
            let head = Head {
                path: rel,
                kind: EntryKind::File { size: meta.len() },
                mode,
                mtime,
            };
            visit(&head, Body::Origin(&path))?;
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(io_err(format!("read the link {}", path.display())))?;
            let target = target
                .to_str()
                .ok_or_else(|| refused(&rel, "its target is not UTF-8"))?
                .to_owned();
            let head = Head {
                path: rel,
                kind: EntryKind::Link { target },
                mode,
                mtime,
            };
            visit(&head, Body::None)?;
        } else {
            return Err(refused(
                &rel,
                "it is a device, a pipe or a socket, not a file",
            ));
        }
    }
    Ok(())
}

/// The file type bits of a Unix mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

fn walk_zip(source: &Path, limits: Limits, visit: &mut Visit<'_>) -> Result<(), ImportError> {
    let file = File::open(source).map_err(io_err(format!("open {}", source.display())))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| ImportError::Damaged(e.to_string()))?;
    // What the central directory declares, before anything is read.
    let mut declared: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| ImportError::Damaged(e.to_string()))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > limits.bytes {
        return Err(ImportError::TooLarge(tavern_types::words::size(
            limits.bytes,
        )));
    }
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| ImportError::Damaged(e.to_string()))?;
        let Some(path) = checked_path(Path::new(entry.name()))? else {
            continue;
        };
        let mode = entry.unix_mode();
        let mtime = entry.last_modified().and_then(zip_time);
        let kind_bits = mode.map(|m| m & S_IFMT).filter(|b| *b != 0);
        let size = entry.size();
        if entry.is_dir() || kind_bits == Some(S_IFDIR) {
            let head = Head {
                path,
                kind: EntryKind::Dir,
                mode,
                mtime,
            };
            visit(&head, Body::None)?;
        } else if kind_bits == Some(S_IFLNK) {
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|_| refused(&path, "its link target is not UTF-8 text"))?;
            let head = Head {
                path,
                kind: EntryKind::Link { target },
                mode,
                mtime,
            };
            visit(&head, Body::None)?;
        } else if kind_bits.is_none() || kind_bits == Some(S_IFREG) {
            let head = Head {
                path,
                kind: EntryKind::File { size },
                mode,
                mtime,
            };
            // Never more than it declares.
            let mut capped = Capped {
                inner: &mut entry,
                left: size,
                hit: false,
            };
            visit(&head, Body::Read(&mut capped))?;
        } else {
            return Err(refused(
                &path,
                "it is a device, a pipe or a socket, not a file",
            ));
        }
    }
    Ok(())
}

/// A zip's time (local time of no known zone, taken as UTC), in seconds
/// since the epoch.
fn zip_time(t: zip::DateTime) -> Option<u64> {
    let at = jiff::civil::DateTime::new(
        i16::try_from(t.year()).ok()?,
        i8::try_from(t.month()).ok()?,
        i8::try_from(t.day()).ok()?,
        i8::try_from(t.hour()).ok()?,
        i8::try_from(t.minute()).ok()?,
        i8::try_from(t.second()).ok()?,
        0,
    )
    .ok()?;
    let z = at.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    u64::try_from(z.timestamp().as_second()).ok()
}

fn walk_tar(input: impl Read, limits: Limits, visit: &mut Visit<'_>) -> Result<(), ImportError> {
    let mut tar = tar::Archive::new(Capped {
        inner: input,
        left: limits.stream_bytes(),
        hit: false,
    });
    let result = walk_tar_entries(&mut tar, visit);
    if tar.into_inner().hit {
        return Err(ImportError::TooLarge(tavern_types::words::size(
            limits.bytes,
        )));
    }
    result
}

fn walk_tar_entries<R: Read>(
    tar: &mut tar::Archive<Capped<R>>,
    visit: &mut Visit<'_>,
) -> Result<(), ImportError> {
    let damaged = |e: io::Error| ImportError::Damaged(e.to_string());
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw = entry.path().map_err(damaged)?.into_owned();
        let Some(path) = checked_path(&raw)? else {
            continue;
        };
        let mode = entry.header().mode().ok();
        let mtime = entry.header().mtime().ok();
        let head = match kind {
            tar::EntryType::Directory => Head {
                path,
                kind: EntryKind::Dir,
                mode,
                mtime,
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => Head {
                path,
                kind: EntryKind::File { size: entry.size() },
                mode,
                mtime,
            },
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(damaged)?
                    .and_then(|t| t.to_str().map(str::to_owned))
                    .ok_or_else(|| refused(&path, "its link target is not UTF-8"))?;
                Head {
                    path,
                    kind: EntryKind::Link { target },
                    mode,
                    mtime,
                }
            }
            tar::EntryType::Link => return Err(refused(&path, "it is a hard link")),
            _ => {
                return Err(refused(
                    &path,
                    "it is not a file, a folder or a link (a device, a pipe or a sparse file)",
                ));
            }
        };
        match head.kind {
            EntryKind::File { .. } => visit(&head, Body::Read(&mut entry))?,
            _ => visit(&head, Body::None)?,
        }
    }
    Ok(())
}

/// The most manifest bytes [`scan`] keeps in memory.
const MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// What [`scan`] found: every entry, and the manifests' contents.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub manifests: BTreeMap<String, Vec<u8>>,
}

/// Lists every entry of `source`, held to the rules and `limits`, keeping
/// the manifests [`layout::wanted`] asks for. Writes nothing.
pub fn scan(source: &Path, limits: Limits) -> Result<Scan, ImportError> {
    let mut out = Scan::default();
    let mut kept: u64 = 0;
    walk(source, limits, &mut |head, body| {
        if let EntryKind::File { size } = head.kind
            && layout::wanted(&head.path, size)
        {
            kept += size;
            if kept > MANIFEST_BYTES {
                return Err(ImportError::TooLarge("64 MiB of manifests".into()));
            }
            let bytes = match body {
                Body::Read(r) => {
                    let mut bytes = Vec::new();
                    r.take(size + 1)
                        .read_to_end(&mut bytes)
                        .map_err(|e| ImportError::Damaged(format!("{}: {e}", head.path)))?;
                    bytes
                }
                Body::Origin(p) => {
                    std::fs::read(p).map_err(io_err(format!("read {}", p.display())))?
                }
                Body::None => Vec::new(),
            };
            out.manifests.insert(head.path.clone(), bytes);
        }
        out.entries.push(Entry {
            path: head.path.clone(),
            kind: head.kind.clone(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// Scans `source` and decides what it holds.
pub fn survey(source: &Path, limits: Limits) -> Result<Layout, ImportError> {
    let found = scan(source, limits)?;
    Ok(layout::plan(&found.entries, &found.manifests)?)
}

/// Writes what `layout` takes of `source` below `into`, a folder that must
/// not exist yet; answers the files written. On any error `into` is
/// removed again.
pub fn extract(
    source: &Path,
    layout: &Layout,
    into: &Path,
    limits: Limits,
) -> Result<u64, ImportError> {
    std::fs::create_dir(into).map_err(io_err(format!("create {}", into.display())))?;
    let result = extract_into(source, layout, into, limits);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(into);
    }
    result
}

fn extract_into(
    source: &Path,
    layout: &Layout,
    into: &Path,
    limits: Limits,
) -> Result<u64, ImportError> {
    write_entries(source, into, limits, &|path| layout.target(path), true)
}

/// Writes each entry of `source` that `target` places (at the path it
/// answers) below `into`; links are refused unless `links`.
fn write_entries(
    source: &Path,
    into: &Path,
    limits: Limits,
    target: &dyn Fn(&str) -> Option<String>,
    links: bool,
) -> Result<u64, ImportError> {
    let mut written = 0;
    walk(source, limits, &mut |head, body| {
        let Some(to) = target(&head.path) else {
            return Ok(());
        };
        if !links && matches!(head.kind, EntryKind::Link { .. }) {
            return Err(refused(
                &head.path,
                "it is a link, and a package may hold none",
            ));
        }
        let dest = into.join(&to);
        let parent = dest.parent().unwrap_or(into);
        std::fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
        match (&head.kind, body) {
            (EntryKind::Dir, _) => {
                std::fs::create_dir_all(&dest)
                    .map_err(io_err(format!("create {}", dest.display())))?;
                set_mode(&dest, head.mode.unwrap_or(0o755) & 0o777 | 0o700)?;
            }
            (EntryKind::Link { target }, _) => {
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(io_err(format!("link {}", dest.display())))?;
            }
            (EntryKind::File { size }, body) => {
                let from_folder = matches!(body, Body::Origin(_));
                let mut out =
                    File::create(&dest).map_err(io_err(format!("create {}", dest.display())))?;
                let copied = match body {
                    // A file of a folder: the kernel copies it.
                    Body::Origin(from) => {
                        let mut input =
                            File::open(from).map_err(io_err(format!("open {}", from.display())))?;
                        io::copy(&mut input, &mut out)
                            .map_err(io_err(format!("copy {}", from.display())))?
                    }
                    Body::Read(r) => io::copy(r, &mut out)
                        .map_err(|e| ImportError::Damaged(format!("{}: {e}", head.path)))?,
                    Body::None => 0,
                };
                if copied != *size {
                    return Err(match from_folder {
                        true => ImportError::Changed(head.path.clone()),
                        false => ImportError::Damaged(format!(
                            "{} holds {copied} bytes, not the {size} declared",
                            head.path
                        )),
                    });
                }
                finish_file(&out, &dest, head)?;
                written += 1;
            }
        }
        Ok(())
    })?;
    Ok(written)
}

/// Gives a written file its mode (always readable and writable by its
/// owner) and modification time, through its open handle.
fn finish_file(out: &File, dest: &Path, head: &Head) -> Result<(), ImportError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = head.mode.unwrap_or(0o644) & 0o777 | 0o600;
    out.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("set the mode of {}", dest.display())))?;
    if let Some(mtime) = head.mtime {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        out.set_modified(when)
            .map_err(io_err(format!("set the time of {}", dest.display())))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ImportError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("set the mode of {}", path.display())))
}

#[cfg(test)]
mod tests;

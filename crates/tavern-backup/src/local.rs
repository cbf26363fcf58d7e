//! The local file work of a backup and a restore: writing an archive of a
//! world's directory to a staging file and verifying it, and putting a
//! verified archive in place of a world's directory (unpacked beside it,
//! then swapped in; an interrupted swap is undone), and what is imported
//! from another Foundry host likewise. Blocking: callers run it on a
//! blocking thread.

use std::path::{Path, PathBuf};

use tavern_types::words::error_chain;

use crate::archive::{self, Limits, Summary};

/// Why a restore did not happen; the world's directory is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive is damaged, refused, or not the one recorded.
    #[error("{0}")]
    Refused(String),
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RestoreError {
    move |source| RestoreError::Io { what, source }
}

/// Archives `data` into `staged` (its directory made private if missing),
/// then reads the file back and checks it against what was written.
pub fn write_verified(data: &Path, staged: &Path, threads: u32) -> Result<Summary, String> {
    if let Some(parent) = staged.parent() {
        crate::create_private_dir(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let file = std::fs::File::create(staged)
        .map_err(|e| format!("cannot create {}: {e}", staged.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = archive::write(data, &mut out, threads).map_err(|e| error_chain(&e))?;
    let file = out.into_inner().map_err(|e| error_chain(&e))?;
    file.sync_all().map_err(|e| error_chain(&e))?;
    let read = verify(staged, Some(written.limits()))?;
    if read != written {
        return Err("the archive read back differs from what was written".to_owned());
    }
    Ok(written)
}

/// Reads an archive (made here, or by a Kubernetes world's data agent) and
/// checks every file against its manifest, within `limits` when known.
pub fn verify(staged: &Path, limits: Option<Limits>) -> Result<Summary, String> {
    archive::read_file(staged, None, limits).map_err(|e| format!("the archive did not verify: {e}"))
}

/// What a restore holds an archive to: what was recorded of it when it was
/// made.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub size: u64,
    pub sha256: &'a str,
    pub limits: Limits,
}

/// Where a restore unpacks beside a world's data, and where it moves the
/// data it replaces until the swap is done.
fn swap_names(data: &Path) -> (PathBuf, PathBuf) {
    let name = data.file_name().and_then(|n| n.to_str()).unwrap_or("data");
    (
        data.with_file_name(format!("{name}.restoring")),
        data.with_file_name(format!("{name}.replaced")),
    )
}

/// Puts the archive `archive_file` in place of `data`: its size and
/// checksum checked against what was recorded before anything is unpacked,
/// then unpacked beside the data (every file checked against the manifest,
/// never more than recorded), then swapped in.
pub fn restore_into(
    archive_file: &Path,
    data: &Path,
    expected: Expected<'_>,
) -> Result<(), RestoreError> {
    let (size, sha256) =
        archive::file_digest(archive_file).map_err(|e| RestoreError::Refused(e.to_string()))?;
    if size != expected.size || sha256 != expected.sha256 {
        return Err(RestoreError::Refused(
            "the archive is not the one recorded when it was made (its size or checksum differs)"
                .into(),
        ));
    }
    let incoming = incoming_for(data)?;
    let summary = archive::read_file(archive_file, Some(&incoming), Some(expected.limits))
        .map_err(|e| RestoreError::Refused(e.to_string()))?;
    if summary.sha256 != expected.sha256 {
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(RestoreError::Refused(
            "the archive's checksum does not match the one recorded when it was made".into(),
        ));
    }
    swap_in(&incoming, data)
}

/// Where a restore puts what it restores beside `data` (cleared, and its
/// parent made): a directory that does not exist yet, for [`swap_in`].
pub fn incoming_for(data: &Path) -> Result<PathBuf, RestoreError> {
    let (incoming, outgoing) = swap_names(data);
    let _ = std::fs::remove_dir_all(&incoming);
    let _ = std::fs::remove_dir_all(&outgoing);
    if let Some(parent) = incoming.parent() {
        std::fs::create_dir_all(parent).map_err(io("create the world's directory"))?;
    }
    Ok(incoming)
}

/// Puts what was restored at `incoming` in place of `data` (moved aside
/// first, removed once the new is in; [`undo_interrupted_restore`] puts
/// it back after a cut between the two).
pub fn swap_in(incoming: &Path, data: &Path) -> Result<(), RestoreError> {
    let (_, outgoing) = swap_names(data);
    if data.exists() {
        std::fs::rename(data, &outgoing).map_err(io("move the current data aside"))?;
    }
    std::fs::rename(incoming, data).map_err(io("put the restored data in place"))?;
    let _ = std::fs::remove_dir_all(&outgoing);
    Ok(())
}

/// After a restore cut off between its two renames: puts the world's data
/// back where it was and clears what was being unpacked. Answers whether
/// data was put back.
pub fn undo_interrupted_restore(data: &Path) -> std::io::Result<bool> {
    let (incoming, outgoing) = swap_names(data);
    let put_back = !data.exists() && outgoing.exists();
    if put_back {
        std::fs::rename(&outgoing, data)?;
    }
    let _ = std::fs::remove_dir_all(&incoming);
    Ok(put_back)
}

/// Puts what `layout` takes of `source` into a world's `data` directory:
/// a whole user-data folder in place of `data` (extracted beside it, then
/// swapped in as a restore is), or one world added at its
/// `Data/worlds/<id>/` (extracted beside `data`, then moved in; refused
/// when that world is there already). Nothing changes on an error.
pub fn import_into(
    source: &Path,
    layout: &crate::import::layout::Layout,
    data: &Path,
    limits: Limits,
) -> Result<(), crate::import::ImportError> {
    use crate::import::{ImportError, extract, layout::Shape};
    let io = |what: &'static str| {
        move |source| ImportError::Io {
            context: what.to_owned(),
            source,
        }
    };
    let (incoming, outgoing) = swap_names(data);
    let _ = std::fs::remove_dir_all(&incoming);
    let _ = std::fs::remove_dir_all(&outgoing);
    if let Some(parent) = incoming.parent() {
        std::fs::create_dir_all(parent).map_err(io("create the world's directory"))?;
    }
    match &layout.shape {
        Shape::UserData { .. } => {
            extract(source, layout, &incoming, limits)?;
            if data.exists() {
                std::fs::rename(data, &outgoing).map_err(io("move the current data aside"))?;
            }
            std::fs::rename(&incoming, data).map_err(io("put the imported data in place"))?;
            let _ = std::fs::remove_dir_all(&outgoing);
        }
        Shape::World { id, .. } => {
            let place = data.join("Data/worlds").join(id);
            if std::fs::symlink_metadata(&place).is_ok() {
                return Err(ImportError::Refused {
                    path: format!("Data/worlds/{id}"),
                    why: "the world has a Foundry world of that id already".into(),
                });
            }
            extract(source, layout, &incoming, limits)?;
            let moved = std::fs::create_dir_all(data.join("Data/worlds"))
                .and_then(|()| std::fs::rename(incoming.join("Data/worlds").join(id), &place));
            let _ = std::fs::remove_dir_all(&incoming);
            moved.map_err(io("put the imported world in place"))?;
        }
    }
    Ok(())
}

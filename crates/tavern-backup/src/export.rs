//! The way out: a backup's archive copied, verified on the way, into a zip
//! that a plain Foundry install or felddy takes as its user-data folder as
//! it is (`Data/` and Foundry's own `Backups/` at its top; no `Config/`, so
//! Foundry writes its own, and none of Tavern's secrets unless they are
//! given). Written as a stream: nothing is kept on disk. Blocking code.

use std::io::{self, Read, Write};

use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, StreamWriter, ZipWriter};

use crate::ArchiveError;
use crate::archive::added::{Added, feed_added};
use crate::archive::{Discard, Limits, Manifest, Sink, corrupt, read_into};

/// Files that are compressed already: stored as they are.
const STORED: [&str; 16] = [
    "webp", "png", "jpg", "jpeg", "gif", "avif", "mp3", "ogg", "opus", "flac", "m4a", "webm",
    "mp4", "zip", "woff2", "ldb",
];

/// Whether a path below the data directory goes into the export.
fn exported(rel: &str) -> bool {
    let top = rel.split('/').next().unwrap_or(rel);
    matches!(top, "Data" | "Backups")
}

struct ZipExport<W: Write> {
    zip: ZipWriter<StreamWriter<W>>,
}

fn zip_err(rel: &str) -> impl FnOnce(zip::result::ZipError) -> ArchiveError + '_ {
    move |e| ArchiveError::Io {
        context: format!("write {rel} into the zip"),
        source: io::Error::other(e),
    }
}

impl<W: Write> ZipExport<W> {
    fn options(header: &tar::Header, method: CompressionMethod) -> SimpleFileOptions {
        let mut opts = SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(header.mode().unwrap_or(0o644) & 0o777);
        if let Ok(mtime) = header.mtime()
            && let Some(t) = zip_time(mtime)
        {
            opts = opts.last_modified_time(t);
        }
        opts
    }
}

/// Seconds since the epoch as a zip's time (UTC); `None` before 1980.
fn zip_time(secs: u64) -> Option<zip::DateTime> {
    let t = jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()?;
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    zip::DateTime::from_date_and_time(
        u16::try_from(d.year()).ok()?,
        u8::try_from(d.month()).ok()?,
        u8::try_from(d.day()).ok()?,
        u8::try_from(d.hour()).ok()?,
        u8::try_from(d.minute()).ok()?,
        u8::try_from(d.second()).ok()?,
    )
    .ok()
}

impl<W: Write> Sink for ZipExport<W> {
    fn dir(&mut self, rel: &str, header: &tar::Header) -> Result<(), ArchiveError> {
        if !exported(rel) {
            return Ok(());
        }
        let opts = Self::options(header, CompressionMethod::Stored);
        self.zip
            .add_directory(format!("{rel}/"), opts)
            .map_err(zip_err(rel))
    }

    fn file(
        &mut self,
        rel: &str,
        header: &tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        if !exported(rel) {
            return Discard.file(rel, header, data);
        }
        let ext = rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let method = match ext.as_deref().is_some_and(|e| STORED.contains(&e)) {
            true => CompressionMethod::Stored,
            false => CompressionMethod::Deflated,
        };
        let size = header.size().unwrap_or(0);
        let opts = Self::options(header, method).large_file(size >= u64::from(u32::MAX));
        self.zip.start_file(rel, opts).map_err(zip_err(rel))?;
        io::copy(data, &mut self.zip).map_err(|e| corrupt(format!("{rel}: {e}")))?;
        Ok(())
    }

    fn link(&mut self, rel: &str, header: &tar::Header, target: &str) -> Result<(), ArchiveError> {
        if !exported(rel) {
            return Ok(());
        }
        let opts = Self::options(header, CompressionMethod::Stored);
        self.zip
            .add_symlink(rel, target, opts)
            .map_err(zip_err(rel))
    }
}

/// Copies the archive `input` (checked within `limits` on the way) into a
/// zip of its `Data/` and `Backups/` written to `out`, adding `secrets`
/// (path below the data directory, contents: a world's `license.json` and
/// `admin.txt`, for an admin who asks) and the `added` folders (the
/// library's packages the world uses). An error leaves `out` incomplete:
/// the caller discards it.
pub fn foundry_zip(
    input: impl Read,
    out: impl Write,
    limits: Option<Limits>,
    secrets: &[(&str, &[u8])],
    added: &[Added],
) -> Result<(), ArchiveError> {
    zip_fed(out, secrets, added, |sink| {
        read_into(input, sink, limits).map(|s| s.manifest)
    })
}

/// The zip of what `feed` gives (answering the manifest of what it
/// gave), with `secrets` and `added` as [`foundry_zip`] puts them in.
pub(crate) fn zip_fed<W: Write>(
    out: W,
    secrets: &[(&str, &[u8])],
    added: &[Added],
    feed: impl FnOnce(&mut dyn Sink) -> Result<Manifest, ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut export = ZipExport {
        zip: ZipWriter::new_stream(out),
    };
    let mut manifest = feed(&mut export)?;
    feed_added(&mut export, &mut manifest, added)?;
    for (rel, contents) in secrets {
        let opts = SimpleFileOptions::default().unix_permissions(0o600);
        export.zip.start_file(*rel, opts).map_err(zip_err(rel))?;
        export
            .zip
            .write_all(contents)
            .map_err(|e| corrupt(format!("{rel}: {e}")))?;
    }
    export.zip.finish().map_err(zip_err("the end"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_holds_data_and_backups_at_its_top_and_no_secrets() {
        let t = tempfile::tempdir().unwrap();
        let world = t.path().join("world");
        let put = |rel: &str, body: &[u8]| {
            let p = world.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        put("Data/worlds/w/world.json", br#"{"id":"w"}"#);
        put("Data/assets/map.webp", &[7u8; 3000]);
        put("Backups/worlds/w/2026.zip", b"foundry's own");
        put("Config/options.json", b"{}");
        put("Config/license.json", b"secret");
        put("Logs/debug.log", b"log");
        let mut archive = Vec::new();
        let summary = crate::archive::write(&world, &mut archive, 1).unwrap();
        let mut out = Vec::new();
        let secrets: [(&str, &[u8]); 0] = [];
        foundry_zip(
            &archive[..],
            &mut out,
            Some(summary.limits()),
            &secrets,
            &[],
        )
        .unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        names.sort();
        assert!(
            names.contains(&"Data/worlds/w/world.json".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"Backups/worlds/w/2026.zip".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with("Config")
                || n.starts_with("Logs")
                || n.starts_with("data/")
                || n == "manifest.json"),
            "{names:?}"
        );
        let mut map = Vec::new();
        zip.by_name("Data/assets/map.webp")
            .unwrap()
            .read_to_end(&mut map)
            .unwrap();
        assert_eq!(map, vec![7u8; 3000]);

        // A library package the world uses goes in where asked.
        let package = t.path().join("library/module/dice/1.0");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("module.json"), br#"{"id":"dice"}"#).unwrap();
        let added = [crate::archive::Added {
            at: "Data/modules/dice".into(),
            from: package,
        }];
        let mut with = Vec::new();
        foundry_zip(
            &archive[..],
            &mut with,
            Some(summary.limits()),
            &secrets,
            &added,
        )
        .unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(with)).unwrap();
        let mut manifest = String::new();
        zip.by_name("Data/modules/dice/module.json")
            .unwrap()
            .read_to_string(&mut manifest)
            .unwrap();
        assert_eq!(manifest, r#"{"id":"dice"}"#);

        // A damaged archive fails the export.
        let mut cut = Vec::new();
        assert!(
            foundry_zip(
                &archive[..archive.len() / 2],
                &mut cut,
                Some(summary.limits()),
                &secrets,
                &[]
            )
            .is_err()
        );
    }
}

//! Imports into worlds whose data is on a cluster: what is imported is put
//! together here (with the world's current data, when one world is added),
//! archived and verified as a backup is, and handed to the runtime, which
//! puts it in place as it does a restore.

use tavern_backup::import::layout::{Layout, Shape};
use tavern_backup::{archive, local};
use tavern_store::Instance;
use tavern_types::ArchiveRecord;

use super::{IMPORT_LIMITS, ImportSource, import_error, world_exists};
use crate::error::CoreError;
use crate::tavern::Tavern;

impl Tavern {
    /// Puts what `layout` takes of `source` in place of a cluster world's
    /// data (a user-data folder), or beside its worlds (one world); the
    /// world is stopped. Nothing changes on the cluster on an error before
    /// the runtime takes the archive.
    pub(super) async fn place_on_cluster(
        &self,
        i: &Instance,
        source: &ImportSource,
        layout: &Layout,
    ) -> Result<(), CoreError> {
        let internal = |e: std::io::Error| CoreError::internal("import", e);
        tokio::fs::create_dir_all(&self.settings.imports_dir)
            .await
            .map_err(internal)?;
        let stage = tempfile::Builder::new()
            .prefix(".cluster-")
            .tempdir_in(&self.settings.imports_dir)
            .map_err(internal)?;
        let data = stage.path().join("data");
        if let Shape::World { id, .. } = &layout.shape {
            let current = stage.path().join("current.tar.zst");
            let had = self
                .runtime
                .export_archive(&i.slug, &current)
                .await
                .map_err(|e| CoreError::internal("read the world's data", e))?;
            if had {
                let (from, into) = (current.clone(), data.clone());
                tokio::task::spawn_blocking(move || archive::read_file(&from, Some(&into), None))
                    .await
                    .map_err(|e| CoreError::internal("import", e))?
                    .map_err(|e| CoreError::internal("read the world's data", e))?;
                let _ = tokio::fs::remove_file(&current).await;
            }
            if data.join("Data/worlds").join(id).exists() {
                return Err(world_exists(i.slug.as_str(), id));
            }
        }
        let threads = self.settings.backups.as_ref().map_or(1, |b| b.threads);
        let archive_file = stage.path().join("import.tar.zst");
        let (from, put, into, layout) = (
            source.path().to_owned(),
            data.clone(),
            archive_file.clone(),
            layout.clone(),
        );
        let summary = tokio::task::spawn_blocking(move || {
            local::import_into(&from, &layout, &put, IMPORT_LIMITS).map_err(import_error)?;
            local::write_verified(&put, &into, threads).map_err(|why| {
                CoreError::internal("archive the import", std::io::Error::other(why))
            })
        })
        .await
        .map_err(|e| CoreError::internal("import", e))??;
        let record = ArchiveRecord {
            size: summary.size,
            sha256: summary.sha256.clone(),
            bytes: summary.manifest.total_bytes(),
            files: summary.manifest.files.len() as u64,
        };
        let spec = self
            .spec_with(i, false)
            .await
            .map_err(|e| CoreError::internal("describe the world", e))?;
        self.runtime
            .import_archive(&spec, &archive_file, &record)
            .await
            .map_err(|e| CoreError::internal("put the import in place", e))
    }
}

//! The community's package library (a row per version) and the versions
//! each world uses; a version in use is never removed.

use async_trait::async_trait;
use tavern_store::{
    BackupPackage, Compatibility, LibraryPackage, NewEvent, PackageKind, PackageStore, StoreError,
    StoreResult, WorldPackage,
};
use tavern_types::{BackupId, InstanceId};

use super::{Adapter, DbRow, col, commit, insert_event, read_all, touched, unique_or};
use crate::adapter::{backend, corrupt, parse, ts};

fn kind_from(row: &DbRow, what: &'static str) -> StoreResult<PackageKind> {
    let text: String = col(row, "kind")?;
    PackageKind::parse(&text).ok_or_else(|| corrupt(what, format!("unknown kind {text:?}")))
}

fn library_from(row: &DbRow) -> StoreResult<LibraryPackage> {
    let requires: String = col(row, "requires")?;
    Ok(LibraryPackage {
        kind: kind_from(row, "library_packages.kind")?,
        id: col(row, "package_id")?,
        version: col(row, "version")?,
        title: col(row, "title")?,
        manifest_url: col(row, "manifest_url")?,
        download_url: col(row, "download_url")?,
        sha256: col(row, "sha256")?,
        bytes: u64::try_from(col::<i64>(row, "bytes")?)
            .map_err(|e| corrupt("library_packages.bytes", e))?,
        compatibility: Compatibility {
            minimum: col(row, "compat_minimum")?,
            verified: col(row, "compat_verified")?,
            maximum: col(row, "compat_maximum")?,
        },
        requires: serde_json::from_str(&requires)
            .map_err(|e| corrupt("library_packages.requires", e))?,
        added_by: col(row, "added_by")?,
        added_at: ts(col(row, "added_at")?)?,
    })
}

fn world_from(row: &DbRow) -> StoreResult<WorldPackage> {
    Ok(WorldPackage {
        instance: parse(
            "world_packages.instance_id",
            &col::<String>(row, "instance_id")?,
        )?,
        kind: kind_from(row, "world_packages.kind")?,
        id: col(row, "package_id")?,
        version: col(row, "version")?,
    })
}

fn backup_from(row: &DbRow) -> StoreResult<BackupPackage> {
    Ok(BackupPackage {
        kind: kind_from(row, "backup_packages.kind")?,
        id: col(row, "package_id")?,
        version: col(row, "version")?,
        manifest_url: col(row, "manifest_url")?,
        download_url: col(row, "download_url")?,
        sha256: col(row, "sha256")?,
    })
}

fn key(kind: PackageKind, id: &str, version: &str) -> String {
    format!("{kind} {id} {version}")
}

#[async_trait]
impl PackageStore for Adapter {
    async fn list_library_packages(&self) -> StoreResult<Vec<LibraryPackage>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            library_cols!(),
            " FROM library_packages ORDER BY kind, package_id, added_at"
        ));
        read_all(&self.readers, q, "list library packages", library_from).await
    }

    async fn add_library_package(&self, p: &LibraryPackage, event: &NewEvent) -> StoreResult<()> {
        let requires = serde_json::to_string(&p.requires)
            .map_err(|e| corrupt("library_packages.requires", e))?;
        let name = key(p.kind, &p.id, &p.version);
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO library_packages (",
            library_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(p.kind.as_str())
        .bind(&p.id)
        .bind(&p.version)
        .bind(p.title.as_deref())
        .bind(&p.manifest_url)
        .bind(&p.download_url)
        .bind(&p.sha256)
        .bind(i64::try_from(p.bytes).unwrap_or(i64::MAX))
        .bind(p.compatibility.minimum.as_deref())
        .bind(p.compatibility.verified.as_deref())
        .bind(p.compatibility.maximum.as_deref())
        .bind(requires)
        .bind(&p.added_by)
        .bind(p.added_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(unique_or("package", &name, "add library package"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_library_package(
        &self,
        kind: PackageKind,
        id: &str,
        version: &str,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT i.slug FROM world_packages w JOIN instances i ON i.id = w.instance_id \
             WHERE w.kind = $1 AND w.package_id = $2 AND w.version = $3 ORDER BY i.slug",
        )
        .bind(kind.as_str())
        .bind(id)
        .bind(version)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend("check package use"))?;
        if !users.is_empty() {
            return Err(StoreError::InUse {
                what: "package",
                key: key(kind, id, version),
                by: format!("world {}", users.join(", ")),
            });
        }
        let done = sqlx::query(
            "DELETE FROM library_packages WHERE kind = $1 AND package_id = $2 AND version = $3",
        )
        .bind(kind.as_str())
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(backend("delete library package"))?;
        touched(&done, "package", key(kind, id, version))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_world_packages(
        &self,
        instance: Option<InstanceId>,
    ) -> StoreResult<Vec<WorldPackage>> {
        let q = match instance {
            Some(i) => sqlx::query(
                "SELECT instance_id, kind, package_id, version FROM world_packages \
                 WHERE instance_id = $1 ORDER BY kind, package_id",
            )
            .bind(i.to_string()),
            None => sqlx::query(
                "SELECT instance_id, kind, package_id, version FROM world_packages \
                 ORDER BY instance_id, kind, package_id",
            ),
        };
        read_all(&self.readers, q, "list world packages", world_from).await
    }

    async fn set_world_packages(
        &self,
        instance: InstanceId,
        packages: &[WorldPackage],
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let world: Option<String> = sqlx::query_scalar("SELECT id FROM instances WHERE id = $1")
            .bind(instance.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check instance"))?;
        if world.is_none() {
            return Err(StoreError::NotFound {
                what: "instance",
                key: instance.to_string(),
            });
        }
        sqlx::query("DELETE FROM world_packages WHERE instance_id = $1")
            .bind(instance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("set world packages"))?;
        for p in packages {
            let there: Option<String> = sqlx::query_scalar(
                "SELECT version FROM library_packages \
                 WHERE kind = $1 AND package_id = $2 AND version = $3",
            )
            .bind(p.kind.as_str())
            .bind(&p.id)
            .bind(&p.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check package"))?;
            if there.is_none() {
                return Err(StoreError::NotFound {
                    what: "package",
                    key: key(p.kind, &p.id, &p.version),
                });
            }
            sqlx::query(
                "INSERT INTO world_packages (instance_id, kind, package_id, version) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(instance.to_string())
            .bind(p.kind.as_str())
            .bind(&p.id)
            .bind(&p.version)
            .execute(&mut *tx)
            .await
            .map_err(unique_or("world package", &p.id, "set world packages"))?;
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn set_backup_packages(
        &self,
        backup: BackupId,
        packages: &[BackupPackage],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let there: Option<String> = sqlx::query_scalar("SELECT id FROM backups WHERE id = $1")
            .bind(backup.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check backup"))?;
        if there.is_none() {
            return Err(StoreError::NotFound {
                what: "backup",
                key: backup.to_string(),
            });
        }
        sqlx::query("DELETE FROM backup_packages WHERE backup_id = $1")
            .bind(backup.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("set backup packages"))?;
        for p in packages {
            sqlx::query(
                "INSERT INTO backup_packages \
                 (backup_id, kind, package_id, version, manifest_url, download_url, sha256) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(backup.to_string())
            .bind(p.kind.as_str())
            .bind(&p.id)
            .bind(&p.version)
            .bind(&p.manifest_url)
            .bind(&p.download_url)
            .bind(&p.sha256)
            .execute(&mut *tx)
            .await
            .map_err(unique_or("backup package", &p.id, "set backup packages"))?;
        }
        commit(tx).await
    }

    async fn list_backup_packages(&self, backup: BackupId) -> StoreResult<Vec<BackupPackage>> {
        let q = sqlx::query(
            "SELECT kind, package_id, version, manifest_url, download_url, sha256 \
             FROM backup_packages WHERE backup_id = $1 ORDER BY kind, package_id",
        )
        .bind(backup.to_string());
        read_all(&self.readers, q, "list backup packages", backup_from).await
    }
}

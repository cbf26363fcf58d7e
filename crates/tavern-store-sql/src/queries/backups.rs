//! Backups' rows.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Transaction;
use tavern_store::{ArchiveFacts, Backup, BackupStore, NewEvent, StoreResult};
use tavern_types::{BackupFormat, BackupId, BackupStatus, Slug, UserId};

use super::{
    Adapter, Db, DbRow, col, commit, insert_event, read_all, read_one, touched, unique_or,
};
use crate::adapter::{backend, corrupt, opt_ts, parse, ts};

fn count(what: &'static str, n: Option<i64>) -> StoreResult<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|e| corrupt(what, e)))
        .transpose()
}

fn backup_from(row: &DbRow) -> StoreResult<Backup> {
    let key: Option<String> = col(row, "archive_key")?;
    let archive = match key {
        None => None,
        Some(key) => Some(ArchiveFacts {
            key,
            size: count("backups.size", col(row, "size")?)?.unwrap_or_default(),
            sha256: col::<Option<String>>(row, "sha256")?.unwrap_or_default(),
            files: count("backups.files", col(row, "files")?)?.unwrap_or_default(),
            bytes: count("backups.bytes", col(row, "bytes")?)?.unwrap_or_default(),
        }),
    };
    Ok(Backup {
        id: parse("backups.id", &col::<String>(row, "id")?)?,
        instance: parse("backups.instance_id", &col::<String>(row, "instance_id")?)?,
        slug: Slug::parse(&col::<String>(row, "slug")?).map_err(|e| corrupt("backups.slug", e))?,
        owner: parse("backups.owner_id", &col::<String>(row, "owner_id")?)?,
        kind: parse("backups.kind", &col::<String>(row, "kind")?)?,
        status: parse("backups.status", &col::<String>(row, "status")?)?,
        live: col(row, "live")?,
        locked: col(row, "locked")?,
        created_by: col(row, "created_by")?,
        created_at: ts(col(row, "created_at")?)?,
        finished_at: opt_ts(col(row, "finished_at")?)?,
        target: col(row, "target")?,
        format: parse("backups.format", &col::<String>(row, "format")?)?,
        archive,
        error: col(row, "error")?,
    })
}

/// A backup as it is now, inside a write.
async fn backup_in(tx: &mut Transaction<'static, Db>, id: BackupId) -> StoreResult<Backup> {
    let row = sqlx::query(concat!(
        "SELECT ",
        backup_cols!(),
        " FROM backups WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend("get backup"))?;
    backup_from(&row)
}

#[async_trait]
impl BackupStore for Adapter {
    async fn create_backup(&self, b: &Backup, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let facts = b.archive.as_ref();
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(concat!(
            "INSERT INTO backups (",
            backup_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(b.id.to_string())
        .bind(b.instance.to_string())
        .bind(b.slug.as_str())
        .bind(b.owner.to_string())
        .bind(b.kind.as_str())
        .bind(b.status.as_str())
        .bind(b.live)
        .bind(b.locked)
        .bind(&b.created_by)
        .bind(b.created_at.as_microsecond())
        .bind(b.finished_at.map(|t| t.as_microsecond()))
        .bind(&b.target)
        .bind(facts.map(|f| f.key.as_str()))
        .bind(facts.map(|f| big(f.size)))
        .bind(facts.map(|f| f.sha256.as_str()))
        .bind(facts.map(|f| big(f.files)))
        .bind(facts.map(|f| big(f.bytes)))
        .bind(&b.error)
        .bind(b.format.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unique_or("backup", &b.id.to_string(), "insert backup"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn finish_backup(
        &self,
        id: BackupId,
        at: Timestamp,
        outcome: Result<&ArchiveFacts, &str>,
        event: &NewEvent,
    ) -> StoreResult<Backup> {
        let mut tx = self.begin().await?;
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (status, facts, error) = match outcome {
            Ok(f) => (BackupStatus::Complete, Some(f), None),
            Err(why) => (BackupStatus::Failed, None, Some(why)),
        };
        let done = sqlx::query(
            "UPDATE backups SET status = $1, finished_at = $2, archive_key = $3, size = $4, \
             sha256 = $5, files = $6, bytes = $7, error = $8 \
             WHERE id = $9 AND status = 'in_progress'",
        )
        .bind(status.as_str())
        .bind(at.as_microsecond())
        .bind(facts.map(|f| f.key.as_str()))
        .bind(facts.map(|f| big(f.size)))
        .bind(facts.map(|f| f.sha256.as_str()))
        .bind(facts.map(|f| big(f.files)))
        .bind(facts.map(|f| big(f.bytes)))
        .bind(error)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend("finish backup"))?;
        touched(&done, "backup in progress", id)?;
        insert_event(&mut tx, event).await?;
        let backup = backup_in(&mut tx, id).await?;
        commit(tx).await?;
        Ok(backup)
    }

    async fn backup(&self, id: BackupId) -> StoreResult<Option<Backup>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            backup_cols!(),
            " FROM backups WHERE id = $1"
        ))
        .bind(id.to_string());
        read_one(&self.readers, q, "get backup", backup_from).await
    }

    async fn list_backups(
        &self,
        owner: Option<UserId>,
        slug: Option<&Slug>,
    ) -> StoreResult<Vec<Backup>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            backup_cols!(),
            " FROM backups WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR slug = $2) \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(owner.map(|o| o.to_string()))
        .bind(slug.map(|s| s.as_str()));
        read_all(&self.readers, q, "list backups", backup_from).await
    }

    async fn set_backup_locked(
        &self,
        id: BackupId,
        locked: bool,
        event: &NewEvent,
    ) -> StoreResult<Backup> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE backups SET locked = $1 WHERE id = $2")
            .bind(locked)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("lock backup"))?;
        touched(&done, "backup", id)?;
        insert_event(&mut tx, event).await?;
        let backup = backup_in(&mut tx, id).await?;
        commit(tx).await?;
        Ok(backup)
    }

    async fn delete_backup(&self, id: BackupId, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM backups WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete backup"))?;
        touched(&done, "backup", id)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn move_backup(
        &self,
        id: BackupId,
        format: BackupFormat,
        target: &str,
        facts: &ArchiveFacts,
        event: &NewEvent,
    ) -> StoreResult<Backup> {
        let mut tx = self.begin().await?;
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE backups SET format = $1, target = $2, archive_key = $3, size = $4, \
             sha256 = $5, files = $6, bytes = $7 WHERE id = $8 AND status = 'complete'",
        )
        .bind(format.as_str())
        .bind(target)
        .bind(&facts.key)
        .bind(big(facts.size))
        .bind(&facts.sha256)
        .bind(big(facts.files))
        .bind(big(facts.bytes))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend("move backup"))?;
        touched(&done, "complete backup", id)?;
        insert_event(&mut tx, event).await?;
        let backup = backup_in(&mut tx, id).await?;
        commit(tx).await?;
        Ok(backup)
    }

    async fn repository_password(&self) -> StoreResult<Option<Vec<u8>>> {
        let q = sqlx::query("SELECT value FROM sealed_values WHERE name = $1").bind(PASSWORD);
        read_one(&self.readers, q, "get the repositories' password", |row| {
            col(row, "value")
        })
        .await
    }

    async fn keep_repository_password(
        &self,
        sealed: &[u8],
        event: &NewEvent,
    ) -> StoreResult<Vec<u8>> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO sealed_values (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(PASSWORD)
        .bind(sealed)
        .bind(event.at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(backend("keep the repositories' password"))?;
        if done.rows_affected() == 1 {
            insert_event(&mut tx, event).await?;
        }
        let kept: Vec<u8> = sqlx::query("SELECT value FROM sealed_values WHERE name = $1")
            .bind(PASSWORD)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend("get the repositories' password"))
            .and_then(|row| col(&row, "value"))?;
        commit(tx).await?;
        Ok(kept)
    }
}

/// The name the backup repositories' password is kept under.
const PASSWORD: &str = "backup_repository_password";

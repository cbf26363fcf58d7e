//! Worlds' places in object storage, their keys (sealed) and how the last
//! attempt on each went.

use async_trait::async_trait;
use tavern_store::{NewEvent, StoragePlace, StorageStore, StoreResult};
use tavern_types::{InstanceId, Slug};

use super::{Adapter, DbRow, col, commit, insert_event, read_all, read_one, touched};
use crate::adapter::{backend, corrupt, parse, ts};

fn place_from(row: &DbRow) -> StoreResult<StoragePlace> {
    Ok(StoragePlace {
        instance: parse(
            "storage_places.instance_id",
            &col::<String>(row, "instance_id")?,
        )?,
        slug: Slug::parse(&col::<String>(row, "slug")?)
            .map_err(|e| corrupt("storage_places.slug", e))?,
        bucket: col(row, "bucket")?,
        folder: col(row, "folder")?,
        user: col(row, "user_name")?,
        access_key_id: col(row, "access_key_id")?,
        secret_sealed: col(row, "secret_sealed")?,
        ready: col(row, "ready")?,
        error: col(row, "error")?,
        attempts: u32::try_from(col::<i64>(row, "attempts")?)
            .map_err(|e| corrupt("storage_places.attempts", e))?,
        bytes: col::<Option<i64>>(row, "bytes")?
            .map(u64::try_from)
            .transpose()
            .map_err(|e| corrupt("storage_places.bytes", e))?,
        checked_at: ts(col(row, "checked_at")?)?,
        next_attempt_at: ts(col(row, "next_attempt_at")?)?,
    })
}

#[async_trait]
impl StorageStore for Adapter {
    async fn list_storage_places(&self) -> StoreResult<Vec<StoragePlace>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            storage_cols!(),
            " FROM storage_places ORDER BY instance_id"
        ));
        read_all(&self.readers, q, "list storage places", place_from).await
    }

    async fn storage_place(&self, instance: InstanceId) -> StoreResult<Option<StoragePlace>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            storage_cols!(),
            " FROM storage_places WHERE instance_id = $1"
        ))
        .bind(instance.to_string());
        read_one(&self.readers, q, "read storage place", place_from).await
    }

    async fn put_storage_place(
        &self,
        place: &StoragePlace,
        event: Option<&NewEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO storage_places (",
            storage_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (instance_id) DO UPDATE SET \
             slug = excluded.slug, bucket = excluded.bucket, folder = excluded.folder, \
             user_name = excluded.user_name, access_key_id = excluded.access_key_id, \
             secret_sealed = excluded.secret_sealed, ready = excluded.ready, \
             error = excluded.error, attempts = excluded.attempts, bytes = excluded.bytes, \
             checked_at = excluded.checked_at, next_attempt_at = excluded.next_attempt_at"
        ))
        .bind(place.instance.to_string())
        .bind(place.slug.as_str())
        .bind(&place.bucket)
        .bind(place.folder.as_deref())
        .bind(&place.user)
        .bind(place.access_key_id.as_deref())
        .bind(place.secret_sealed.as_deref())
        .bind(place.ready)
        .bind(place.error.as_deref())
        .bind(i64::from(place.attempts))
        .bind(place.bytes.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(place.checked_at.as_microsecond())
        .bind(place.next_attempt_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(backend("write storage place"))?;
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        commit(tx).await
    }

    async fn delete_storage_place(
        &self,
        instance: InstanceId,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM storage_places WHERE instance_id = $1")
            .bind(instance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete storage place"))?;
        touched(&done, "storage place", instance)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }
}

//! The license pool, and binding keys to instances as a compare-and-set so
//! that no key is bound to two.

use async_trait::async_trait;
use sqlx::Transaction;
use tavern_store::{License, LicenseStore, NewEvent, StoreError, StoreResult};
use tavern_types::{InstanceId, LicenseId, SessionId, UserId};

use super::{
    Adapter, Db, DbRow, LICENSE, USER, col, commit, insert_event, must_exist, read_all, read_one,
    touched, unique_or,
};
use crate::adapter::{backend, parse, ts};

fn license_from(row: &DbRow) -> StoreResult<License> {
    let owner: Option<String> = col(row, "owner_id")?;
    let bound: Option<String> = col(row, "bound_instance_id")?;
    Ok(License {
        id: parse("licenses.id", &col::<String>(row, "id")?)?,
        label: col(row, "label")?,
        key_sealed: col(row, "key_sealed")?,
        key_last4: col(row, "key_last4")?,
        owner: owner.map(|o| parse("licenses.owner_id", &o)).transpose()?,
        bound_to: bound
            .map(|b| parse("licenses.bound_instance_id", &b))
            .transpose()?,
        created_at: ts(col(row, "created_at")?)?,
    })
}

/// Compare-and-set: binds `license` to `instance` if it is free.
async fn claim_free(
    tx: &mut Transaction<'static, Db>,
    license: LicenseId,
    instance: InstanceId,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE licenses SET bound_instance_id = $1 WHERE id = $2 AND bound_instance_id IS NULL",
    )
    .bind(instance.to_string())
    .bind(license.to_string())
    .execute(&mut **tx)
    .await;
    let done = match done {
        Ok(d) => d,
        // The instance holds another key already.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
            return Err(StoreError::NotFound {
                what: "instance",
                key: instance.to_string(),
            });
        }
        Err(e) => return Err(backend("bind license")(e)),
    };
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl LicenseStore for Adapter {
    async fn bind_license(
        &self,
        license: LicenseId,
        instance: InstanceId,
        bind_event: &NewEvent,
        start: Option<&NewEvent>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT bound_instance_id FROM licenses WHERE id = $1")
                .bind(license.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("bind license"))?;
        let Some(current) = current else {
            return Err(StoreError::NotFound {
                what: "license",
                key: license.to_string(),
            });
        };
        if current.as_deref() != Some(instance.to_string().as_str()) {
            if !claim_free(&mut tx, license, instance).await? {
                return Ok(false);
            }
            insert_event(&mut tx, bind_event).await?;
        }
        sqlx::query("UPDATE instances SET awaits_license_id = NULL WHERE id = $1")
            .bind(instance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("bind license"))?;
        if let Some(event) = start {
            let done = sqlx::query(
                "UPDATE instances SET desired_state = 'running', updated_at = $1 \
                 WHERE id = $2 AND desired_state != 'destroyed'",
            )
            .bind(event.at.as_microsecond())
            .bind(instance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("start instance"))?;
            touched(&done, "instance", instance)?;
            insert_event(&mut tx, event).await?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn release_license(
        &self,
        instance: InstanceId,
        event: &NewEvent,
    ) -> StoreResult<Option<LicenseId>> {
        let mut tx = self.begin().await?;
        let held: Option<String> = sqlx::query_scalar(
            "SELECT l.id FROM licenses l WHERE l.bound_instance_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM instances i WHERE i.id = l.bound_instance_id \
              AND i.desired_state = 'running' AND i.state != 'failed')",
        )
        .bind(instance.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("release license"))?;
        let Some(held) = held else { return Ok(None) };
        sqlx::query("UPDATE licenses SET bound_instance_id = NULL WHERE id = $1")
            .bind(&held)
            .execute(&mut *tx)
            .await
            .map_err(backend("release license"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        parse("licenses.id", &held).map(Some)
    }

    async fn create_license(&self, l: &License, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if let Some(owner) = l.owner {
            must_exist(&mut tx, USER, owner).await?;
        }
        sqlx::query(concat!(
            "INSERT INTO licenses (",
            license_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(l.id.to_string())
        .bind(&l.label)
        .bind(&l.key_sealed)
        .bind(&l.key_last4)
        .bind(l.owner.map(|o| o.to_string()))
        .bind(l.created_at.as_microsecond())
        .bind(l.bound_to.map(|i| i.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(unique_or("license", &l.id.to_string(), "insert license"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn license(&self, id: LicenseId) -> StoreResult<Option<License>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            license_cols!(),
            " FROM licenses WHERE id = $1"
        ))
        .bind(id.to_string());
        read_one(&self.readers, q, "get license", license_from).await
    }

    async fn list_licenses(&self) -> StoreResult<Vec<License>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            license_cols!(),
            " FROM licenses ORDER BY created_at, id"
        ));
        read_all(&self.readers, q, "list licenses", license_from).await
    }

    async fn update_license(
        &self,
        id: LicenseId,
        label: &str,
        owner: Option<UserId>,
        event: &NewEvent,
    ) -> StoreResult<License> {
        let mut tx = self.begin().await?;
        if let Some(owner) = owner {
            must_exist(&mut tx, USER, owner).await?;
            let other: Option<String> = sqlx::query_scalar(
                "SELECT i.slug FROM instances i LEFT JOIN licenses l ON l.bound_instance_id = i.id \
                 WHERE i.owner_id <> $1 AND (i.license_id = $2 OR i.awaits_license_id = $3 OR l.id = $4) \
                 LIMIT 1",
            )
            .bind(owner.to_string())
            .bind(id.to_string())
            .bind(id.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check license use"))?;
            let reserved: Option<String> = sqlx::query_scalar(
                "SELECT i.slug FROM sessions s JOIN instances i ON i.id = s.instance_id \
                 WHERE s.license_id = $1 AND s.window_end > $2 AND i.owner_id <> $3 LIMIT 1",
            )
            .bind(id.to_string())
            .bind(event.at.as_microsecond())
            .bind(owner.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check license use"))?;
            if let Some(slug) = other.or(reserved) {
                return Err(StoreError::InUse {
                    what: "license",
                    key: id.to_string(),
                    by: format!("world {slug}"),
                });
            }
        }
        let done = sqlx::query("UPDATE licenses SET label = $1, owner_id = $2 WHERE id = $3")
            .bind(label)
            .bind(owner.map(|o| o.to_string()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("update license"))?;
        touched(&done, "license", id)?;
        insert_event(&mut tx, event).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            license_cols!(),
            " FROM licenses WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend("read license"))?;
        let license = license_from(&row)?;
        commit(tx).await?;
        Ok(license)
    }

    async fn delete_license(&self, id: LicenseId, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let user: Option<String> = sqlx::query_scalar(
            "SELECT slug FROM instances WHERE license_id = $1 OR awaits_license_id = $2 LIMIT 1",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("check license use"))?;
        let session: Option<String> = sqlx::query_scalar(
            "SELECT i.slug FROM sessions s JOIN instances i ON i.id = s.instance_id \
             WHERE s.license_id = $1 AND s.window_end > $2 LIMIT 1",
        )
        .bind(id.to_string())
        .bind(event.at.as_microsecond())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("check license use"))?;
        if let Some(slug) = session {
            return Err(StoreError::InUse {
                what: "license",
                key: id.to_string(),
                by: format!("a session of {slug}"),
            });
        }
        sqlx::query("DELETE FROM sessions WHERE license_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete ended sessions"))?;
        let bound: Option<String> = sqlx::query_scalar(
            "SELECT i.slug FROM licenses l JOIN instances i ON i.id = l.bound_instance_id WHERE l.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("check license use"))?;
        if let Some(slug) = user.or(bound) {
            return Err(StoreError::InUse {
                what: "license",
                key: id.to_string(),
                by: format!("world {slug}"),
            });
        }
        let done = sqlx::query("DELETE FROM licenses WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete license"))?;
        touched(&done, "license", id)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn promise_license(
        &self,
        instance: InstanceId,
        license: LicenseId,
        session: Option<SessionId>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, LICENSE, license).await?;
        let done = sqlx::query(
            "UPDATE instances SET awaits_license_id = \
             CASE WHEN EXISTS (SELECT 1 FROM licenses WHERE bound_instance_id = instances.id) \
             THEN NULL ELSE $1 END, desired_state = 'running', updated_at = $2 \
             WHERE id = $3 AND desired_state != 'destroyed'",
        )
        .bind(license.to_string())
        .bind(event.at.as_microsecond())
        .bind(instance.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend("promise license"))?;
        touched(&done, "instance", instance)?;
        if let Some(session) = session {
            let done = sqlx::query(
                "UPDATE sessions SET prepared_at = $1 WHERE id = $2 AND instance_id = $3",
            )
            .bind(event.at.as_microsecond())
            .bind(session.to_string())
            .bind(instance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("prepare session"))?;
            touched(&done, "session", session)?;
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }
}

//! Instances: what people want of them, what the runtime saw (and the usage
//! intervals that opens and closes).

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Transaction;
use tavern_store::{
    Instance, InstanceStore, NewEvent, Observation, StoreError, StoreResult, UsageInterval,
};
use tavern_types::{
    DesiredState, InstanceId, LicenseId, ObservedState, RuntimeKind, Slug, UserId, WakeOnVisit,
};

use super::{
    Adapter, Db, DbResult, DbRow, LICENSE, USER, col, commit, insert_event, must_exist, read_all,
    read_one, touched, unique_or,
};
use crate::adapter::{backend, corrupt, opt_ts, parse, ts};

fn instance_from(row: &DbRow) -> StoreResult<Instance> {
    let license: Option<String> = col(row, "license_id")?;
    let idle: Option<i64> = col(row, "idle_timeout_minutes")?;
    Ok(Instance {
        id: parse("instances.id", &col::<String>(row, "id")?)?,
        slug: Slug::parse(&col::<String>(row, "slug")?)
            .map_err(|e| corrupt("instances.slug", e))?,
        owner: parse("instances.owner_id", &col::<String>(row, "owner_id")?)?,
        release: col(row, "release")?,
        runtime: parse("instances.runtime", &col::<String>(row, "runtime")?)?,
        license: license
            .map(|l| parse("instances.license_id", &l))
            .transpose()?,
        desired_state: parse(
            "instances.desired_state",
            &col::<String>(row, "desired_state")?,
        )?,
        state: parse("instances.state", &col::<String>(row, "state")?)?,
        idle_timeout_minutes: idle
            .map(|m| u32::try_from(m).map_err(|e| corrupt("instances.idle_timeout_minutes", e)))
            .transpose()?,
        created_at: ts(col(row, "created_at")?)?,
        updated_at: ts(col(row, "updated_at")?)?,
        state_reason: col(row, "state_reason")?,
        players: u32::try_from(col::<i64>(row, "players")?)
            .map_err(|e| corrupt("instances.players", e))?,
        world: col(row, "world")?,
        foundry_version: col(row, "foundry_version")?,
        admin_key_sealed: col(row, "admin_key_sealed")?,
        awaits: col::<Option<String>>(row, "awaits_license_id")?
            .map(|l| parse("instances.awaits_license_id", &l))
            .transpose()?,
        last_activity_at: opt_ts(col(row, "last_activity_at")?)?,
        sockets: u32::try_from(col::<i64>(row, "sockets")?)
            .map_err(|e| corrupt("instances.sockets", e))?,
        wake_on_visit: col::<Option<String>>(row, "wake_on_visit")?
            .map(|w| parse("instances.wake_on_visit", &w))
            .transpose()?,
    })
}

fn usage_from(row: &DbRow) -> StoreResult<UsageInterval> {
    let license: Option<String> = col(row, "license_id")?;
    Ok(UsageInterval {
        instance: parse(
            "usage_intervals.instance_id",
            &col::<String>(row, "instance_id")?,
        )?,
        slug: col(row, "slug")?,
        owner: parse("usage_intervals.owner_id", &col::<String>(row, "owner_id")?)?,
        license: license
            .map(|l| parse("usage_intervals.license_id", &l))
            .transpose()?,
        started_at: ts(col(row, "started_at")?)?,
        stopped_at: opt_ts(col(row, "stopped_at")?)?,
        reason: col(row, "reason")?,
    })
}

/// Finishes an update of one instance row: not found when it changed
/// nothing; else writes the event and answers the row as it is now.
async fn finish_instance_update(
    mut tx: Transaction<'static, Db>,
    done: DbResult,
    slug: &Slug,
    event: &NewEvent,
    op: &'static str,
) -> StoreResult<Instance> {
    touched(&done, "instance", slug)?;
    insert_event(&mut tx, event).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM instances WHERE slug = $1"
    ))
    .bind(slug.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(backend(op))?;
    let instance = instance_from(&row)?;
    commit(tx).await?;
    Ok(instance)
}

#[async_trait]
impl InstanceStore for Adapter {
    async fn create_instance(&self, i: &Instance, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, i.owner).await?;
        if let Some(license) = i.license {
            must_exist(&mut tx, LICENSE, license).await?;
        }
        sqlx::query(concat!(
            "INSERT INTO instances (",
            instance_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind(i.id.to_string())
        .bind(i.slug.as_str())
        .bind(i.owner.to_string())
        .bind(&i.release)
        .bind(i.runtime.as_str())
        .bind(i.license.map(|l| l.to_string()))
        .bind(i.desired_state.as_str())
        .bind(i.state.as_str())
        .bind(i.idle_timeout_minutes.map(i64::from))
        .bind(i.created_at.as_microsecond())
        .bind(i.updated_at.as_microsecond())
        .bind(&i.state_reason)
        .bind(i64::from(i.players))
        .bind(&i.world)
        .bind(&i.foundry_version)
        .bind(&i.admin_key_sealed)
        .bind(i.awaits.map(|l| l.to_string()))
        .bind(i.last_activity_at.map(|t| t.as_microsecond()))
        .bind(i64::from(i.sockets))
        .bind(i.wake_on_visit.map(|w| w.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(unique_or("instance", i.slug.as_str(), "insert instance"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn instance(&self, slug: &Slug) -> StoreResult<Option<Instance>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            instance_cols!(),
            " FROM instances WHERE slug = $1"
        ))
        .bind(slug.as_str());
        read_one(&self.readers, q, "get instance", instance_from).await
    }

    async fn list_instances(&self, owner: Option<UserId>) -> StoreResult<Vec<Instance>> {
        let q = match owner {
            Some(owner) => sqlx::query(concat!(
                "SELECT ",
                instance_cols!(),
                " FROM instances WHERE owner_id = $1 ORDER BY created_at, id"
            ))
            .bind(owner.to_string()),
            None => sqlx::query(concat!(
                "SELECT ",
                instance_cols!(),
                " FROM instances ORDER BY created_at, id"
            )),
        };
        read_all(&self.readers, q, "list instances", instance_from).await
    }

    async fn set_desired_state(
        &self,
        slug: &Slug,
        desired: DesiredState,
        reason: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<Instance> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE instances SET desired_state = $1, updated_at = $2, \
                 awaits_license_id = CASE WHEN $3 = 'running' THEN awaits_license_id END, \
                 state_reason = CASE WHEN $4 = 'running' THEN state_reason ELSE $5 END \
                 WHERE slug = $6",
        )
        .bind(desired.as_str())
        .bind(event.at.as_microsecond())
        .bind(desired.as_str())
        .bind(desired.as_str())
        .bind(reason)
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend("set desired state"))?;
        finish_instance_update(tx, done, slug, event, "set desired state").await
    }

    async fn update_instance_settings(
        &self,
        slug: &Slug,
        idle_timeout_minutes: Option<Option<u32>>,
        wake_on_visit: Option<Option<WakeOnVisit>>,
        event: &NewEvent,
    ) -> StoreResult<Instance> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE instances SET \
             idle_timeout_minutes = CASE WHEN $1 THEN $2 ELSE idle_timeout_minutes END, \
             wake_on_visit = CASE WHEN $3 THEN $4 ELSE wake_on_visit END, \
             updated_at = $5 WHERE slug = $6",
        )
        .bind(idle_timeout_minutes.is_some())
        .bind(idle_timeout_minutes.flatten().map(i64::from))
        .bind(wake_on_visit.is_some())
        .bind(wake_on_visit.flatten().map(|w| w.as_str()))
        .bind(event.at.as_microsecond())
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend("update instance"))?;
        finish_instance_update(tx, done, slug, event, "update instance").await
    }

    async fn set_instance_launch(
        &self,
        slug: &Slug,
        release: &str,
        runtime: RuntimeKind,
        event: &NewEvent,
    ) -> StoreResult<Instance> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE instances SET release = $1, runtime = $4, updated_at = $2 WHERE slug = $3",
        )
        .bind(release)
        .bind(event.at.as_microsecond())
        .bind(slug.as_str())
        .bind(runtime.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend("set instance launch"))?;
        finish_instance_update(tx, done, slug, event, "set instance launch").await
    }

    async fn set_instance_license(
        &self,
        slug: &Slug,
        license: Option<LicenseId>,
        event: &NewEvent,
    ) -> StoreResult<Instance> {
        let mut tx = self.begin().await?;
        if let Some(l) = license {
            must_exist(&mut tx, LICENSE, l).await?;
        }
        let done =
            sqlx::query("UPDATE instances SET license_id = $1, updated_at = $2 WHERE slug = $3")
                .bind(license.map(|l| l.to_string()))
                .bind(event.at.as_microsecond())
                .bind(slug.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend("set instance license"))?;
        finish_instance_update(tx, done, slug, event, "set instance license").await
    }

    async fn record_observation(
        &self,
        id: InstanceId,
        o: &Observation,
        event: Option<&NewEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let prev: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT state, slug, owner_id, players + sockets FROM instances WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("record observation"))?;
        let Some((prev, slug, owner, prev_players)) = prev else {
            return Err(StoreError::NotFound {
                what: "instance",
                key: id.to_string(),
            });
        };
        let was_running = prev == ObservedState::Running.as_str();
        let is_running = o.state == ObservedState::Running;
        // Players (or open tabs) seen now, or until now (the last one just
        // left).
        let active =
            o.players > 0 || o.sockets > 0 || prev_players > 0 || (is_running && !was_running);
        sqlx::query(
            "UPDATE instances SET state = $1, state_reason = $2, players = $3, sockets = $4, world = $5, foundry_version = $6, updated_at = $7, \
             last_activity_at = CASE WHEN $8 THEN $9 ELSE last_activity_at END WHERE id = $10",
        )
        .bind(o.state.as_str())
        .bind(&o.state_reason)
        .bind(i64::from(o.players))
        .bind(i64::from(o.sockets))
        .bind(&o.world)
        .bind(&o.foundry_version)
        .bind(o.at.as_microsecond())
        .bind(active)
        .bind(o.at.as_microsecond())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend("record observation"))?;
        if is_running && !was_running {
            sqlx::query(
                "INSERT INTO usage_intervals (instance_id, slug, owner_id, license_id, started_at) \
                 VALUES ($1, $2, $3, (SELECT id FROM licenses WHERE bound_instance_id = $4), $5) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(&slug)
            .bind(&owner)
            .bind(id.to_string())
            .bind(o.at.as_microsecond())
            .execute(&mut *tx)
            .await
            .map_err(backend("open usage"))?;
        } else if !is_running {
            sqlx::query(
                "UPDATE usage_intervals SET stopped_at = $1, reason = $2 \
                 WHERE instance_id = $3 AND stopped_at IS NULL",
            )
            .bind(o.at.as_microsecond())
            .bind(o.state_reason.as_deref().unwrap_or(o.state.as_str()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("close usage"))?;
        }
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        commit(tx).await
    }

    async fn delete_instance(&self, slug: &Slug, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE licenses SET bound_instance_id = NULL \
             WHERE bound_instance_id = (SELECT id FROM instances WHERE slug = $1)",
        )
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend("release license"))?;
        sqlx::query(
            "UPDATE usage_intervals SET stopped_at = $1, reason = 'destroyed' \
             WHERE stopped_at IS NULL AND instance_id = (SELECT id FROM instances WHERE slug = $2)",
        )
        .bind(event.at.as_microsecond())
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend("close usage"))?;
        let done = sqlx::query("DELETE FROM instances WHERE slug = $1")
            .bind(slug.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete instance"))?;
        touched(&done, "instance", slug)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_usage(
        &self,
        owner: Option<UserId>,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<UsageInterval>> {
        let q = sqlx::query(
            "SELECT instance_id, slug, owner_id, license_id, started_at, stopped_at, reason \
             FROM usage_intervals WHERE started_at < $1 AND (stopped_at IS NULL OR stopped_at > $2) \
             AND ($3 IS NULL OR owner_id = $4) ORDER BY started_at, id",
        )
        .bind(to.as_microsecond())
        .bind(from.as_microsecond())
        .bind(owner.map(|o| o.to_string()))
        .bind(owner.map(|o| o.to_string()));
        read_all(&self.readers, q, "list usage", usage_from).await
    }
}

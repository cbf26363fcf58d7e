//! Every query of the Store port, one file per resource, written once in SQL
//! that SQLite and PostgreSQL both accept (`$N` parameters, `ON CONFLICT`).
//! Each engine's module includes this module (`#[path]`) after defining
//! `Db`, `DbRow`, `DbPool`, `DbResult`, `DbArgs` and `Adapter` (its store,
//! which has a `readers` pool and a `begin()` that opens a write
//! transaction), so the same code compiles once for each engine.

// Column lists, as macros so that queries stay string literals.
macro_rules! user_cols {
    () => {
        "id, username, role, password_hash, created_at, tier, email"
    };
}

macro_rules! instance_cols {
    () => {
        "id, slug, owner_id, release, runtime, license_id, desired_state, state, idle_timeout_minutes, created_at, updated_at, state_reason, players, world, foundry_version, admin_key_sealed, awaits_license_id, last_activity_at, sockets, wake_on_visit"
    };
}

macro_rules! session_cols {
    () => {
        "id, instance_id, license_id, starts_at, ends_at, window_start, window_end, created_by, created_at, prepared_at, reminded_at"
    };
}

macro_rules! license_cols {
    () => {
        "id, label, key_sealed, key_last4, owner_id, created_at, bound_instance_id"
    };
}

macro_rules! payment_cols {
    () => {
        "id, message_id, kind, from_name, email, amount_cents, currency, tier_name, first_subscription, paid_at, recorded_at, user_id"
    };
}

macro_rules! invite_cols {
    () => {
        "id, code_hash, role, tier, max_uses, uses, expires_at, created_by, created_at"
    };
}

macro_rules! notification_cols {
    () => {
        "id, kind, destination, message, created_at, attempts, next_attempt_at, last_error, delivered_at, gave_up_at"
    };
}

macro_rules! dns_cols {
    () => {
        "host, slug, held, error, attempts, checked_at, next_attempt_at"
    };
}

macro_rules! storage_cols {
    () => {
        "instance_id, slug, bucket, folder, user_name, access_key_id, secret_sealed, ready, error, attempts, bytes, checked_at, next_attempt_at"
    };
}

macro_rules! library_cols {
    () => {
        "kind, package_id, version, title, manifest_url, download_url, sha256, bytes, compat_minimum, compat_verified, compat_maximum, requires, added_by, added_at"
    };
}

macro_rules! backup_cols {
    () => {
        "id, instance_id, slug, owner_id, kind, status, live, locked, created_by, created_at, finished_at, target, archive_key, size, sha256, files, bytes, error, format"
    };
}

mod backups;
mod dns;
mod events;
mod instances;
mod invites;
mod licenses;
mod outbox;
mod packages;
mod payments;
mod sessions;
mod sign_in;
mod storage;
mod users;

use sqlx::{Row, Transaction};
use tavern_store::{NewEvent, StoreError, StoreResult};
use tavern_types::EventId;

use super::{Adapter, Db, DbArgs, DbPool, DbResult, DbRow};
use crate::adapter::{backend, corrupt};

fn col<'r, T>(row: &'r DbRow, name: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(name).map_err(|e| corrupt(name, e))
}

type DbQuery<'q> = sqlx::query::Query<'q, Db, DbArgs>;

/// Runs a read on the reader pool and maps the row, if any.
async fn read_one<T>(
    pool: &DbPool,
    q: DbQuery<'_>,
    op: &'static str,
    map: fn(&DbRow) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    q.fetch_optional(pool)
        .await
        .map_err(backend(op))?
        .as_ref()
        .map(map)
        .transpose()
}

/// Runs a read on the reader pool and maps every row.
async fn read_all<T>(
    pool: &DbPool,
    q: DbQuery<'_>,
    op: &'static str,
    map: fn(&DbRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    q.fetch_all(pool)
        .await
        .map_err(backend(op))?
        .iter()
        .map(map)
        .collect()
}

/// Not found when an update or delete touched no row.
fn touched(done: &DbResult, what: &'static str, key: impl ToString) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what,
            key: key.to_string(),
        });
    }
    Ok(())
}

async fn commit(tx: Transaction<'static, Db>) -> StoreResult<()> {
    tx.commit().await.map_err(backend("commit"))
}

async fn insert_event(tx: &mut Transaction<'static, Db>, e: &NewEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (id, at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(EventId::new().to_string())
    .bind(e.at.as_microsecond())
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(e.outcome.as_str())
    .bind(&e.detail)
    .execute(&mut **tx)
    .await
    .map_err(backend("insert event"))?;
    Ok(())
}

fn unique_or(
    what: &'static str,
    key: &str,
    op: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
            what,
            key: key.to_owned(),
        },
        _ => backend(op)(e),
    }
}

/// What [`must_exist`] looks for: a name for errors, and the query.
type Referent = (&'static str, &'static str);

const USER: Referent = ("user", "SELECT 1 FROM users WHERE id = $1");

const LICENSE: Referent = ("license", "SELECT 1 FROM licenses WHERE id = $1");

/// Not found unless the row a write refers to exists.
async fn must_exist(
    tx: &mut Transaction<'static, Db>,
    (what, sql): Referent,
    id: impl ToString,
) -> StoreResult<()> {
    let key = id.to_string();
    let row = sqlx::query(sql)
        .bind(&key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend("check reference"))?;
    match row {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { what, key }),
    }
}

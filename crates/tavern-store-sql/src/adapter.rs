//! What both SQL adapters share that does not depend on the engine: how
//! errors map to [`StoreError`], migrating, and decoding stored values. The
//! queries themselves are in `queries/`; the engines differ only in how they
//! open, migrate and begin a write.

use std::str::FromStr;

use jiff::Timestamp;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Acquire, SqlStr};
use tavern_store::{StoreError, StoreResult};

/// The error for a failed operation: [`StoreError::Unavailable`] when the
/// database cannot be reached (it is restarting, the network is down, the
/// pool waited in vain), else [`StoreError::Backend`].
pub(crate) fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if unreachable(&e) {
            StoreError::Unavailable {
                op,
                source: Box::new(e),
            }
        } else {
            StoreError::Backend {
                op,
                source: Box::new(e),
            }
        }
    }
}

/// Whether an error means the database is out of reach, not that the
/// operation was wrong.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's classes 08 (connection exception) and 57P
        // (operator intervention: shutting down, starting up), and too
        // many connections.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

/// Brings a schema up to date with an engine's migrations (`(version,
/// name, sql)`, append-only).
pub(crate) async fn migrate<'a, A>(
    migrations: &[(i64, &str, &'static str)],
    to: A,
) -> StoreResult<()>
where
    A: Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: Migrate,
{
    let migrator = Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).to_owned().into(),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    );
    migrator.run(to).await.map_err(|e| match e {
        MigrateError::Execute(e) => backend("migrate database")(e),
        e => StoreError::Backend {
            op: "migrate database",
            source: Box::new(e),
        },
    })
}

/// PostgreSQL's code for a row that an exclusion constraint refuses.
pub(crate) const EXCLUSION_VIOLATION: &str = "23P01";

pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

pub(crate) fn ts(micros: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|e| corrupt("timestamp", e))
}

pub(crate) fn opt_ts(micros: Option<i64>) -> StoreResult<Option<Timestamp>> {
    micros.map(ts).transpose()
}

pub(crate) fn parse<T: FromStr>(what: &'static str, s: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| corrupt(what, e))
}

//! The SQLite adapter: WAL mode, a busy timeout, one writer connection (all
//! transactions, so writes are serialized) and a small pool of readers.
//! Timestamps are stored as microseconds since the Unix epoch, ids as their
//! UUID text. The queries are shared with PostgreSQL (`queries/`).

use std::path::Path;
use std::time::Duration;

use sqlx::Transaction;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tavern_store::StoreResult;

use crate::adapter::{backend, migrate};

type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;
type DbPool = sqlx::SqlitePool;
type DbResult = sqlx::sqlite::SqliteQueryResult;
type DbArgs = sqlx::sqlite::SqliteArguments;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "observed",
        include_str!("../migrations/sqlite/0002_observed.sql"),
    ),
    (
        3,
        "license_binding",
        include_str!("../migrations/sqlite/0003_license_binding.sql"),
    ),
    (
        4,
        "economy",
        include_str!("../migrations/sqlite/0004_economy.sql"),
    ),
    (
        5,
        "sockets",
        include_str!("../migrations/sqlite/0005_sockets.sql"),
    ),
    (
        6,
        "wake_on_visit",
        include_str!("../migrations/sqlite/0006_wake_on_visit.sql"),
    ),
    (
        7,
        "backups",
        include_str!("../migrations/sqlite/0007_backups.sql"),
    ),
    (
        8,
        "community",
        include_str!("../migrations/sqlite/0008_community.sql"),
    ),
    (
        9,
        "outbox",
        include_str!("../migrations/sqlite/0009_outbox.sql"),
    ),
    (
        10,
        "discord",
        include_str!("../migrations/sqlite/0010_discord.sql"),
    ),
    (11, "dns", include_str!("../migrations/sqlite/0011_dns.sql")),
    (
        12,
        "storage",
        include_str!("../migrations/sqlite/0012_storage.sql"),
    ),
    (
        13,
        "packages",
        include_str!("../migrations/sqlite/0013_packages.sql"),
    ),
    (
        14,
        "sign_in",
        include_str!("../migrations/sqlite/0014_sign_in.sql"),
    ),
    (
        15,
        "repositories",
        include_str!("../migrations/sqlite/0015_repositories.sql"),
    ),
];

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: DbPool,
    readers: DbPool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings
    /// its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(backend("open database"))?;
        migrate(MIGRATIONS, &writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(backend("open database"))?;
        Ok(Self { writer, readers })
    }

    /// Closes both pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Db>> {
        self.writer.begin().await.map_err(backend("begin"))
    }
}

/// One Tavern alone uses a SQLite file: no word to pass on.
#[async_trait::async_trait]
impl tavern_store::NoticeStore for SqliteStore {
    async fn announce(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn notices(&self) -> StoreResult<Option<futures_util::stream::BoxStream<'static, ()>>> {
        Ok(None)
    }
}

/// The store the shared queries implement the Store port for.
type Adapter = SqliteStore;

/// The queries, shared with PostgreSQL, compiled for this engine.
#[path = "queries/mod.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "the same queries, compiled for each engine"
)]
mod queries;

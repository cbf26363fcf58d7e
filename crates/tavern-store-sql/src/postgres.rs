//! The PostgreSQL adapter: one connection pool; every write transaction
//! first takes a transaction-level advisory lock of its schema, so writes
//! are serialized as SQLite's one writer serializes them, across every
//! Tavern that shares the database. Beneath that, the schema's own
//! constraints (unique slugs, one world per key, no overlapping
//! reservations) refuse what the adapter should never write.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, Transaction};
use tavern_store::{StoreError, StoreResult};

use crate::adapter::{backend, migrate};

type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;
type DbPool = sqlx::PgPool;
type DbResult = sqlx::postgres::PgQueryResult;
type DbArgs = sqlx::postgres::PgArguments;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "backups",
        include_str!("../migrations/postgres/0002_backups.sql"),
    ),
    (
        3,
        "community",
        include_str!("../migrations/postgres/0003_community.sql"),
    ),
    (
        4,
        "outbox",
        include_str!("../migrations/postgres/0004_outbox.sql"),
    ),
    (
        5,
        "discord",
        include_str!("../migrations/postgres/0005_discord.sql"),
    ),
    (
        6,
        "dns",
        include_str!("../migrations/postgres/0006_dns.sql"),
    ),
    (
        7,
        "storage",
        include_str!("../migrations/postgres/0007_storage.sql"),
    ),
    (
        8,
        "packages",
        include_str!("../migrations/postgres/0008_packages.sql"),
    ),
    (
        9,
        "sign_in",
        include_str!("../migrations/postgres/0009_sign_in.sql"),
    ),
    (
        10,
        "repositories",
        include_str!("../migrations/postgres/0010_repositories.sql"),
    ),
];

/// How long a call waits for a connection before answering
/// [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The channel the Taverns on one database pass notices on: each notice
/// names its schema and its sender (`schema sender`).
const NOTICES: &str = "tavern_notices";

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    readers: DbPool,
    /// For a connection of its own that listens for notices.
    options: Arc<PgConnectOptions>,
    /// This Tavern, in its notices: its own are not news to it.
    me: Arc<str>,
}

/// Checks a `postgres://` URL without connecting. The error never repeats
/// the URL (it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    PgConnectOptions::from_str(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl PgStore {
    /// Connects to the database at `url` with a pool of at most
    /// `pool_size` connections and brings its schema up to date.
    pub async fn connect(url: &str, pool_size: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Backend {
            op: "read the database URL",
            source: Box::new(e),
        })?;
        // One connection first: its error says what is wrong (refused,
        // unknown host, TLS, authentication) where the pool's would only
        // say that it waited in vain.
        PgConnection::connect_with(&options)
            .await
            .map_err(backend("connect"))?
            .close()
            .await
            .map_err(backend("connect"))?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(backend("connect"))?;
        migrate(MIGRATIONS, &pool).await?;
        Ok(Self {
            readers: pool,
            options: Arc::new(options),
            me: uuid::Uuid::now_v7().simple().to_string().into(),
        })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.readers.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Db>> {
        let mut tx = self.readers.begin().await.map_err(backend("begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
            .execute(&mut *tx)
            .await
            .map_err(backend("begin"))?;
        Ok(tx)
    }
}

/// Notices through PostgreSQL's NOTIFY, heard with LISTEN on a connection
/// of their own (outside the pool the queries use).
#[async_trait::async_trait]
impl tavern_store::NoticeStore for PgStore {
    async fn announce(&self) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || $2)")
            .bind(NOTICES)
            .bind(&*self.me)
            .execute(&self.readers)
            .await
            .map_err(backend("announce a change"))?;
        Ok(())
    }

    async fn notices(&self) -> StoreResult<Option<BoxStream<'static, ()>>> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&self.readers)
            .await
            .map_err(backend("listen for changes"))?;
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with((*self.options).clone());
        let mut listener = PgListener::connect_with(&own)
            .await
            .map_err(backend("listen for changes"))?;
        listener
            .listen(NOTICES)
            .await
            .map_err(backend("listen for changes"))?;
        let me = self.me.clone();
        let heard = listener
            .into_stream()
            .take_while(|n| std::future::ready(n.is_ok()))
            .filter_map(move |n| {
                let news = n.ok().is_some_and(|n| {
                    n.payload()
                        .rsplit_once(' ')
                        .is_some_and(|(s, sender)| s == schema && sender != &*me)
                });
                std::future::ready(news.then_some(()))
            });
        Ok(Some(heard.boxed()))
    }
}

/// The store the shared queries implement the Store port for.
type Adapter = PgStore;

/// The queries, shared with SQLite, compiled for this engine.
#[path = "queries/mod.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "the same queries, compiled for each engine"
)]
mod queries;

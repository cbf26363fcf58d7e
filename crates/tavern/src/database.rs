//! The store `tavern serve` opens, of either engine (SQLite, or PostgreSQL
//! when built in), as the configuration names it: opened, handed to the
//! core as a `Store`, and closed at shutdown.

use std::sync::Arc;

use anyhow::Context as _;
use tavern_store::Store;
#[cfg(feature = "postgres")]
use tavern_store_sql::PgStore;
use tavern_store_sql::SqliteStore;

use crate::config::StoreTarget;

/// The open database, of either engine.
pub(crate) enum Database {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

impl Database {
    pub(crate) async fn open(target: &StoreTarget) -> anyhow::Result<Self> {
        Ok(match target {
            StoreTarget::Sqlite(path) => Self::Sqlite(
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("cannot open the database {}", path.display()))?,
            ),
            #[cfg(feature = "postgres")]
            StoreTarget::Postgres { url, pool_size } => {
                Self::Postgres(PgStore::connect(url, *pool_size).await.with_context(|| {
                    format!(
                        "cannot open the database {}",
                        crate::config::store::redact_url(url)
                    )
                })?)
            }
            // Refused when the configuration was read.
            #[cfg(not(feature = "postgres"))]
            StoreTarget::Postgres { .. } => {
                anyhow::bail!(crate::config::not_built_in("store.url", "postgres"))
            }
        })
    }

    pub(crate) fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.close().await,
        }
    }
}

//! `[store]`: SQLite in DATA_DIR (the default), another SQLite file, or
//! PostgreSQL.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE?…`;
    /// default `sqlite://DATA_DIR/tavern.db`.
    pub url: Option<String>,
    /// Connections to PostgreSQL, at most.
    pub pool_size: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 10,
        }
    }
}

/// Where Tavern keeps its state.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreTarget {
    Sqlite(PathBuf),
    Postgres { url: String, pool_size: u32 },
}

/// A database URL fit for messages: the password, if any, hidden.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

pub(super) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Config {
    /// The database: a PostgreSQL URL, or a SQLite file.
    pub fn store_target(&self) -> StoreTarget {
        match &self.store.url {
            Some(url) if is_postgres(url) => StoreTarget::Postgres {
                url: url.clone(),
                pool_size: self.store.pool_size,
            },
            Some(url) => StoreTarget::Sqlite(PathBuf::from(url.trim_start_matches("sqlite://"))),
            None => StoreTarget::Sqlite(self.server.data_dir.join("tavern.db")),
        }
    }
}

impl StoreConfig {
    /// The database's address and pool.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.url {
            if is_postgres(url) {
                #[cfg(feature = "postgres")]
                tavern_store_sql::check_postgres_url(url).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid configuration: store.url {:?}: {e}",
                        redact_url(url)
                    )
                })?;
            } else {
                anyhow::ensure!(
                    url.starts_with("sqlite://"),
                    "invalid configuration: store.url {:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE",
                    redact_url(url)
                );
            }
        }
        anyhow::ensure!(
            self.pool_size >= 1,
            "invalid configuration: store.pool_size must be at least 1"
        );
        Ok(())
    }
}

//! SQL adapters of the Store port: SQLite (the default, one file in
//! DATA_DIR) and PostgreSQL (for communities that outgrow one machine).
//! Both run the same queries (`adapter.rs`); each has its own migrations.

#[macro_use]
mod adapter;
mod postgres;
mod sqlite;

pub use postgres::{PgStore, check_url as check_postgres_url};
pub use sqlite::SqliteStore;
#[cfg(feature = "testing")]
pub mod testing;

//! SQL adapters of the Store port: SQLite (the default, one file in
//! DATA_DIR) and PostgreSQL (for communities that outgrow one machine; the
//! cargo feature `postgres`).
//! Both run the same queries (`queries/`, compiled once for each engine);
//! each has its own migrations.

mod adapter;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{PgStore, check_url as check_postgres_url};
pub use sqlite::SqliteStore;
#[cfg(feature = "testing")]
pub mod testing;

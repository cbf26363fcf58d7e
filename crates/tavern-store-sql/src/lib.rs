//! SQL adapters of the Store port. Today: SQLite ([`SqliteStore`]), the
//! default for one machine. Each engine has its own append-only migrations
//! under `migrations/<engine>/`, embedded in the binary.

mod sqlite;

pub use sqlite::SqliteStore;

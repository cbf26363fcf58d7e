//! The command-line client: every command is one or two calls of the HTTP
//! API, printed as a table for people or as JSON (`--json`) for scripts.
//! Server and token come from flags, `TAVERN_SERVER`/`TAVERN_TOKEN`, or what
//! `tavern login` stored in the user's config directory (mode 0600).

mod backups;
mod commands;
mod http;
mod invites;
mod manifests;
mod output;

pub use backups::{BackupCommand, backup};
pub use commands::*;
pub use invites::{InviteCommand, invite};
pub use manifests::{ManifestsCommand, manifests};

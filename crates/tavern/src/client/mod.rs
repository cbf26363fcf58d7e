//! The command-line client: every command is one or two calls of the HTTP
//! API, printed as a table for people or as JSON (`--json`) for scripts.
//! Server and token come from flags, `TAVERN_SERVER`/`TAVERN_TOKEN`, or what
//! `tavern login` stored in the user's config directory (mode 0600).

mod admin;
mod auth;
mod backups;
mod columns;
mod commands;
mod http;
mod imports;
mod instances;
mod invites;
mod licenses;
mod manifests;
mod output;
mod packages;
mod releases;
mod sessions;
mod sso;
mod users;

pub use admin::{AdminCommand, EventsArgs, UsageArgs, admin, events, usage};
pub use auth::{LoginArgs, login};
pub use backups::{BackupCommand, backup};
pub use instances::{InstanceCommand, instance};
pub use invites::{InviteCommand, invite};
pub use licenses::{LicenseCommand, license};
pub use manifests::{ManifestsCommand, manifests};
pub use packages::{PackageCommand, package};
pub use releases::{ReleaseCommand, release};
pub use sessions::{SessionCommand, session};
pub use users::{UserCommand, user};

//! Tavern's decisions and services. [`Tavern`] is the one service every edge
//! (HTTP API, CLI bootstrap, the scheduler) calls: it checks who may do
//! what, validates input, and writes desired state through the Store port
//! with an audit event; the [`reconciler`] makes the Runtime port follow it.
//! It never imports a store adapter or an HTTP framework.

pub mod activity;
pub mod auth;
pub mod backups;
pub mod discord;
mod error;
mod handoff;
mod invites;
pub mod leadership;
pub mod notifications;
pub mod policy;
pub mod reconciler;
pub mod routes;
pub mod scheduler;
pub mod secrets;
mod service;
mod sessions;
mod supporters;
mod usage;

/// The checks of free-text fields that the API document's patterns
/// describe (its tests hold the two together).
pub mod checks {
    pub use crate::notifications::check_webhook as webhook;
    pub use crate::service::check_label as label;
    pub use crate::supporters::check_email as email;
}

pub use backups::{BackupDownload, BackupSettings, BackupView, RestoreState, RestoreStatus};
pub use error::CoreError;
pub use handoff::HANDOFF_SECONDS;
pub use invites::{InviteView, NewInvite};
pub use service::{
    Caller, Economy, InstanceUpdate, InstanceView, LicenseView, NewInstance, NewLicense, NewUser,
    Overview, RUNTIME_KINDS, Settings, Tavern,
};
pub use sessions::{NewSession, SessionView};
pub use supporters::{KofiNotice, KofiReceipt, KofiSettings, LINK_CODE_MINUTES, SupporterView};
pub use usage::{Held, LicenseLane, UsageView};

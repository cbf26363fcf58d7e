//! Tavern's decisions and services. [`Tavern`] is the one service every edge
//! (HTTP API, CLI bootstrap, the scheduler) calls: it checks who may do
//! what, validates input, and writes desired state through the Store port
//! with an audit event; the [`reconciler`] makes the Runtime port follow it.
//! It never imports a store adapter or an HTTP framework.
//!
//! The service is one struct (in `tavern.rs`) with one file per resource, each
//! `impl Tavern`: users, instances, licenses (with the signed-license vault),
//! releases, runtime specs, sessions, invitations, backups, usage,
//! supporters, notifications, Discord, and the admin's overview. Leaf
//! modules (settings, checks, words, policy, error) import none of them.

pub mod activity;
mod admin;
pub mod auth;
pub mod backups;
pub mod checks;
pub mod cli_sign_in;
pub mod discord;
pub mod dns;
mod error;
mod handoff;
mod imported;
mod imports;
mod instances;
mod invites;
pub mod leadership;
mod licenses;
mod limits;
pub mod notifications;
pub mod outside;
mod package_jobs;
pub mod packages;
pub mod policy;
mod readiness;
pub mod reconciler;
mod releases;
pub mod routes;
pub mod scheduler;
mod sealed;
mod second_factor;
pub mod secrets;
mod sessions;
mod settings;
mod spec;
pub mod storage;
mod supporters;
mod switchover;
mod tavern;
pub mod totp;
mod upload;
mod uploads;
mod usage;
mod users;
mod vault;
pub mod words;
mod work;

pub use admin::Overview;
pub use auth::Caller;
pub use backups::{
    BackupDownload, BackupView, DownloadFormat, Migration, RestoreState, RestoreStatus,
};
pub use discord::DiscordLink;
pub use error::{CoreError, noun};
pub use handoff::HANDOFF_SECONDS;
pub use imported::{HOLD_FOR, ImportReport, ImportSource};
pub use imports::{BatchItem, IMPORT_LIMITS, ImportRequest, slug_for};
pub use instances::{InstanceUpdate, InstanceView, NewInstance};
pub use invites::{InviteView, NewInvite};
pub use licenses::{LicenseView, NewLicense};
pub use limits::LoginLimits;
pub use outside::{DISCORD, LinkedAccount, OutsideAccount, OutsidePolicy};
pub use second_factor::{SIGN_IN_FLOW_SECONDS, SecondFactor, SignIn, TotpEnrolment};
pub use sessions::{NewSession, SessionView};
pub use settings::{AuthSettings, BackupSettings, Economy, KofiSettings, NotifySettings, Settings};
pub use supporters::{KofiNotice, KofiReceipt, LINK_CODE_MINUTES, SupporterView};
pub use tavern::Tavern;
pub use usage::{Held, LicenseLane, UsageView};
pub use users::NewUser;

//! The vocabulary of Tavern: identifiers, names that are valid by construction
//! (`Slug`, `Username`, `LicenseKey`), roles and instance states.
//!
//! Pure: no I/O, no async, no HTTP. Every constructor validates, so a value of
//! one of these types can never be invalid anywhere else in the program.

mod archive;
mod client;
mod ids;
mod license;
mod names;
mod state;
pub mod words;

pub use archive::ArchiveRecord;
pub use client::client_key;
pub use ids::{BackupId, EventId, InstanceId, InviteId, LicenseId, SessionId, TokenId, UserId};
pub use license::{LicenseKey, LicenseKeyError};
pub use names::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, NameError, RESERVED_SLUGS, Slug, Username};
pub use state::{
    BackupFormat, BackupKind, BackupStatus, DesiredState, ObservedState, ParseEnumError, Role,
    RuntimeKind, Scheme, WakeOnVisit, state_word,
};

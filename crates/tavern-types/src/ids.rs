//! Typed identifiers. All are UUID v7 (sortable by creation time), wrapped so
//! that a user id can never be passed where a license id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user (admin or game master).
    UserId
);
id_type!(
    /// An API token (its id, never its secret).
    TokenId
);
id_type!(
    /// A Foundry server managed by Tavern.
    InstanceId
);
id_type!(
    /// A Foundry license key held by Tavern.
    LicenseId
);
id_type!(
    /// One audit record.
    EventId
);
id_type!(
    /// A scheduled play session (and the key window it reserves).
    SessionId
);
id_type!(
    /// A snapshot of a world's data directory.
    BackupId
);
id_type!(
    /// An invitation to create an account (its id, never its code).
    InviteId
);

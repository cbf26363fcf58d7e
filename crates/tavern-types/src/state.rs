//! Roles and the two halves of an instance's state: what people asked for
//! (desired) and what the runtime last saw (observed).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

string_enum!(
    /// What a user may do: admins manage everything, game masters their own.
    Role, "role" { Admin => "admin", Gm => "gm" }
);

string_enum!(
    /// Who wakes a sleeping world by visiting it: its signed-in owner (or
    /// an admin), anyone, or nobody (the Start button only).
    WakeOnVisit, "wake_on_visit" { Owner => "owner", Anyone => "anyone", Off => "off" }
);

string_enum!(
    /// How people reach Tavern and its worlds: plain HTTP, or HTTPS.
    Scheme, "scheme" { Http => "http", Https => "https" }
);

impl Scheme {
    /// The port a browser uses when the address names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// Whether it is HTTPS: cookies are `Secure`, Foundry is told its
    /// proxy speaks TLS.
    pub fn is_secure(self) -> bool {
        self == Scheme::Https
    }
}

string_enum!(
    /// Which driver runs a world: a Foundry process on this machine, a
    /// Docker container, a Kubernetes pod, or an ECS task on Fargate.
    RuntimeKind, "runtime" { Process => "process", Docker => "docker", Kubernetes => "kubernetes", Ecs => "ecs" }
);

impl RuntimeKind {
    /// Whether worlds of this runtime keep their data on a cluster
    /// (Kubernetes claims, EFS on ECS) rather than on this machine: backups
    /// reach it through the runtime, and it cannot follow a world to
    /// another runtime.
    pub fn data_on_cluster(self) -> bool {
        matches!(self, RuntimeKind::Kubernetes | RuntimeKind::Ecs)
    }

    /// Whether it runs Foundry from an image, pulled at the first start
    /// (any version will do), rather than from a release installed here.
    pub fn runs_images(self) -> bool {
        self != RuntimeKind::Process
    }
}

string_enum!(
    /// What people asked an instance to be.
    DesiredState, "desired state" {
        Running => "running",
        Stopped => "stopped",
        Destroyed => "destroyed",
    }
);

string_enum!(
    /// What the runtime last saw of an instance.
    ObservedState, "state" {
        Stopped => "stopped",
        Starting => "starting",
        Running => "running",
        Stopping => "stopping",
        Failed => "failed",
    }
);

string_enum!(
    /// Why a backup was taken.
    BackupKind, "backup kind" {
        Manual => "manual",
        Scheduled => "scheduled",
        AfterStop => "after_stop",
        PreDestroy => "pre_destroy",
        PreUpgrade => "pre_upgrade",
        PreRestore => "pre_restore",
    }
);

string_enum!(
    /// How a backup is kept: a `.tar.zst` archive of its own, or a snapshot
    /// in its world's restic-format repository.
    BackupFormat, "backup format" {
        Archive => "archive",
        Repository => "repository",
    }
);

string_enum!(
    /// Where a backup is in its life: being written, whole and verified,
    /// or given up.
    BackupStatus, "backup status" {
        InProgress => "in_progress",
        Complete => "complete",
        Failed => "failed",
    }
);

/// A world's state as people say it (the dashboard, the CLI, its standby
/// page): what it is, or what it is on its way to. A world that is not
/// running is `sleeping`, whether it went idle or was stopped: either way
/// a visit or a start wakes it (its reason tells which).
pub fn state_word(state: ObservedState, desired: DesiredState) -> &'static str {
    match (state, desired) {
        (_, DesiredState::Destroyed) => "being destroyed",
        (ObservedState::Failed, _) => "failed",
        (ObservedState::Running, DesiredState::Stopped) => "stopping",
        (ObservedState::Running, _) => "running",
        (ObservedState::Stopped, DesiredState::Running) => "starting",
        (ObservedState::Starting, _) => "starting",
        (ObservedState::Stopping, _) => "stopping",
        (ObservedState::Stopped, _) => "sleeping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        for s in ObservedState::ALL {
            assert_eq!(s.to_string().parse::<ObservedState>().unwrap(), *s);
        }
        for s in DesiredState::ALL {
            assert_eq!(s.to_string().parse::<DesiredState>().unwrap(), *s);
        }
        for f in BackupFormat::ALL {
            assert_eq!(f.to_string().parse::<BackupFormat>().unwrap(), *f);
        }
        for k in BackupKind::ALL {
            assert_eq!(k.to_string().parse::<BackupKind>().unwrap(), *k);
        }
        for s in BackupStatus::ALL {
            assert_eq!(s.to_string().parse::<BackupStatus>().unwrap(), *s);
        }
    }

    #[test]
    fn names_the_choices_on_error() {
        let e = "owner".parse::<Role>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"owner\" is not a valid role; expected one of: admin gm"
        );
    }
}

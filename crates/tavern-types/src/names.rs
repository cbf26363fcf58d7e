//! Names people choose: instance slugs (DNS labels that become
//! `<slug>.<domain>`) and usernames, both checked once, here; and how
//! long a password may be.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a name was refused. The `Display` text is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters long (got {len})")]
    TooLong {
        what: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{what} may contain only lowercase letters a-z, digits 0-9 and '-' (found {found:?})")]
    BadCharacter { what: &'static str, found: char },
    #[error("{what} must start and end with a letter or digit")]
    BadEdge { what: &'static str },
    #[error("the name {0:?} is kept for Tavern itself; choose another")]
    Reserved(String),
}

/// Slugs that would collide with Tavern's own hosts and paths.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "dashboard",
    "discord",
    "docs",
    "ftp",
    "healthz",
    "kofi",
    "localhost",
    "login",
    "mail",
    "metrics",
    "static",
    "status",
    "tavern",
    "webhooks",
    "www",
];

fn check_label(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    let len = s.chars().count();
    if len > max {
        return Err(NameError::TooLong { what, max, len });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadCharacter { what, found });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::BadEdge { what });
    }
    Ok(())
}

/// An instance's name: a DNS label (RFC 1123: 1–63 of `a-z0-9-`, no hyphen
/// at either end) that is not reserved. Valid by construction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_label("a world's name", s, Self::MAX_LEN)?;
        if RESERVED_SLUGS.contains(&s) {
            return Err(NameError::Reserved(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's login name: same alphabet as slugs, 1–32 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_label("a username", s, Self::MAX_LEN)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! name_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        // Hashes and compares as its text, so maps keyed by it can be
        // looked up by a `&str`.
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
name_impls!(Slug);
name_impls!(Username);

/// How long a password may be, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_dns_labels() {
        for s in ["a", "dragon-heist", "x1", "0abc", &"a".repeat(63)] {
            assert_eq!(Slug::parse(s).map(|s| s.to_string()), Ok(s.to_string()));
        }
    }

    #[test]
    fn refuses_what_is_not_a_dns_label() {
        let cases = [
            (
                "",
                NameError::Empty {
                    what: "a world's name",
                },
            ),
            (
                "Dragon",
                NameError::BadCharacter {
                    what: "a world's name",
                    found: 'D',
                },
            ),
            (
                "-abc",
                NameError::BadEdge {
                    what: "a world's name",
                },
            ),
            (
                "abc-",
                NameError::BadEdge {
                    what: "a world's name",
                },
            ),
            (
                "a.b",
                NameError::BadCharacter {
                    what: "a world's name",
                    found: '.',
                },
            ),
            (
                "a_b",
                NameError::BadCharacter {
                    what: "a world's name",
                    found: '_',
                },
            ),
            (
                &"a".repeat(64),
                NameError::TooLong {
                    what: "a world's name",
                    max: 63,
                    len: 64,
                },
            ),
            ("www", NameError::Reserved("www".into())),
            ("api", NameError::Reserved("api".into())),
        ];
        for (input, want) in cases {
            assert_eq!(Slug::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<Slug, _> = serde_json::from_str("\"Not_A_Slug\"");
        assert!(bad.is_err());
        let good: Slug = serde_json::from_str("\"ok-1\"").unwrap();
        assert_eq!(good.as_str(), "ok-1");
    }

    proptest! {
        #[test]
        fn every_accepted_slug_is_a_dns_label(s in "\\PC{0,70}") {
            if let Ok(slug) = Slug::parse(&s) {
                let s = slug.as_str();
                prop_assert!(!s.is_empty() && s.len() <= 63);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!s.starts_with('-') && !s.ends_with('-'));
            }
        }

        #[test]
        fn generated_labels_round_trip(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            prop_assume!(!RESERVED_SLUGS.contains(&s.as_str()));
            let slug = Slug::parse(&s).unwrap();
            prop_assert_eq!(slug.to_string().parse::<Slug>().unwrap(), slug);
        }
    }
}

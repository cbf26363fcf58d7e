//! The shapes of the API's text fields as the OpenAPI document gives them
//! (patterns and lengths for names, keys, labels, addresses), one schema
//! component each. The server's own checks (in `tavern-types` and
//! `tavern-core`) decide; the tests below hold every pattern to the check
//! it describes, for any text, so the document says exactly what the
//! server takes.

use utoipa::openapi::schema::{Object, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Unicode's White_Space, as Rust's `char::is_whitespace` reads it, for
/// the patterns (ECMA-262 regular expressions).
macro_rules! ws {
    () => {
        r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

pub const SLUG: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
pub const USERNAME: &str = "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$";
pub const RELEASE: &str = "^[A-Za-z0-9._-]{1,32}$";
pub const LABEL: &str =
    r"^[^\x00-\x20\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,62}[^\x00-\x20\x7f-\x9f])?$";
pub const LICENSE_KEY: &str = r"^[\t\n\x0c\r ]*-*([A-Za-z0-9]-*){24}[\t\n\x0c\r ]*$";
pub const EMAIL: &str = concat!("^[^@", ws!(), "]+@[^@", ws!(), r"]+\.[^@", ws!(), "]+$");
pub const WEBHOOK: &str = concat!("^https?://[^", ws!(), "]*$");
pub const MONTH: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";
pub const PACKAGE_ID: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";
pub const PACKAGE_VERSION: &str = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$";
pub const HTTP_URL: &str = concat!("^https?://[^", ws!(), "]+$");

fn text(pattern: &str, max: usize, what: &str) -> RefOr<Schema> {
    let mut o = Object::with_type(Type::String);
    o.pattern = Some(pattern.to_owned());
    o.max_length = Some(max);
    o.min_length = Some(1);
    o.description = Some(what.to_owned());
    RefOr::T(Schema::Object(o))
}

/// Declares a schema component for a text field of the API.
macro_rules! shape {
    ($name:ident, $pattern:expr, $max:expr, $what:expr) => {
        #[doc = $what]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                text($pattern, $max, $what)
            }
        }

        impl ToSchema for $name {}
    };
}

shape!(
    Slug,
    SLUG,
    63,
    "A world's name: its DNS label (a-z, 0-9 and inner hyphens, at most 63), not one of the reserved names."
);
shape!(
    Username,
    USERNAME,
    32,
    "A username: a-z, 0-9 and inner hyphens, at most 32."
);
shape!(
    Release,
    RELEASE,
    32,
    "An installed Foundry release, like `13.345` or `stub`."
);
shape!(
    Label,
    LABEL,
    64,
    "A key's label: 1 to 64 printable characters, not beginning or ending with a space."
);
shape!(
    LicenseKeyText,
    LICENSE_KEY,
    256,
    "A Foundry license key: 24 letters and digits, dashes anywhere, ASCII whitespace around."
);
shape!(
    Email,
    EMAIL,
    254,
    "An e-mail address: something, `@`, a domain with a dot inside it; no whitespace."
);
shape!(
    Webhook,
    WEBHOOK,
    2000,
    "A webhook address: `http://` or `https://`, no whitespace."
);
shape!(Month, MONTH, 7, "A month, `YYYY-MM` (UTC).");
shape!(
    PackageId,
    PACKAGE_ID,
    128,
    "A Foundry package's id (its folder's name): letters, digits, `-`, `_` and `.`, not starting with `.`, at most 128."
);
shape!(
    PackageVersion,
    PACKAGE_VERSION,
    64,
    "A package's version as its manifest gives it: letters, digits, `.`, `-`, `_` and `+`, not starting with `.`, at most 64."
);
shape!(
    ManifestUrl,
    HTTP_URL,
    2000,
    "A package manifest's address: `http://` or `https://`, no whitespace."
);

/// What a Foundry package is.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum PackageKind {
    System,
    Module,
    World,
}

/// A password: 8 to 256 characters.
pub struct Password;

impl PartialSchema for Password {
    fn schema() -> RefOr<Schema> {
        let mut o = Object::with_type(Type::String);
        o.min_length = Some(tavern_types::MIN_PASSWORD_LEN);
        o.max_length = Some(tavern_types::MAX_PASSWORD_LEN);
        o.description = Some("A password: 8 to 256 characters.".to_owned());
        RefOr::T(Schema::Object(o))
    }
}

impl ToSchema for Password {}

/// A moment: RFC 3339 with an offset.
pub struct DateTime;

impl PartialSchema for DateTime {
    fn schema() -> RefOr<Schema> {
        let mut o = Object::with_type(Type::String);
        o.format = Some(SchemaFormat::KnownFormat(KnownFormat::DateTime));
        o.description = Some("RFC 3339 with an offset, like `2026-11-28T19:00:00Z`.".to_owned());
        RefOr::T(Schema::Object(o))
    }
}

impl ToSchema for DateTime {}

/// A user's role.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Role {
    Admin,
    Gm,
}

/// Who wakes a sleeping world by visiting it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum WakeOnVisit {
    Owner,
    Anyone,
    Off,
}

/// Where a world runs (the server offers those it is set up for).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Runtime {
    Process,
    Docker,
    Kubernetes,
    Ecs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ECMA-262 pattern as the `regex` crate writes it.
    fn regex(pattern: &str) -> regex::Regex {
        let mut out = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek() == Some(&'u') {
                chars.next();
                let hex: String = chars.by_ref().take(4).collect();
                out.push_str(&format!("\\x{{{hex}}}"));
            } else if c == '\\' {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        regex::Regex::new(&out).unwrap()
    }

    /// Text that mostly looks like what the field takes, and sometimes
    /// anything at all.
    fn texts(alphabet: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::string::string_regex(alphabet).unwrap(),
            any::<String>(),
            "[ -~]{0,80}",
        ]
    }

    /// The document (pattern and length) and the server take the same.
    fn agree(pattern: &str, max: usize, s: &str, server: bool) -> Result<(), TestCaseError> {
        let document = regex(pattern).is_match(s) && s.chars().count() <= max;
        prop_assert_eq!(
            document,
            server,
            "pattern {} and the server differ on {:?}",
            pattern,
            s
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn slugs(s in texts("[a-z0-9-]{0,66}")) {
            // A reserved name is well formed: the server refuses it as taken.
            let server = tavern_types::Slug::parse(&s).is_ok()
                || tavern_types::RESERVED_SLUGS.contains(&s.as_str());
            agree(SLUG, 63, &s, server)?;
        }

        #[test]
        fn usernames(s in texts("[a-z0-9-]{0,35}")) {
            agree(USERNAME, 32, &s, tavern_types::Username::parse(&s).is_ok())?;
        }

        #[test]
        fn labels(s in texts("[ a-zA-Z\u{80}-\u{a0}\u{feff}\u{3000}\u{1}]{0,70}")) {
            agree(LABEL, 64, &s, tavern_core::checks::label(&s).is_ok())?;
        }

        #[test]
        fn license_keys(s in texts("[ \t\n\u{b}\u{c}\r\u{a0}-]{0,3}[A-Za-z0-9-]{20,30}[ \t\r\n\u{a0}]{0,3}")) {
            agree(LICENSE_KEY, 256, &s, tavern_types::LicenseKey::parse(&s).is_ok())?;
        }

        #[test]
        fn emails(s in texts("[a-z@. \u{85}\u{3000}\u{feff}]{0,20}")) {
            agree(EMAIL, 254, &s, tavern_core::checks::email(&s).is_ok())?;
        }

        #[test]
        fn package_ids(s in texts("[a-zA-Z0-9._/ -]{0,130}")) {
            agree(PACKAGE_ID, 128, &s, tavern_foundry::manifest::is_package_id(&s))?;
        }

        #[test]
        fn package_versions(s in texts("[a-z0-9.+_/ -]{0,66}")) {
            agree(PACKAGE_VERSION, 64, &s, tavern_packages::is_version_name(&s))?;
        }

        #[test]
        fn webhooks(s in texts("(https?://)?[a-z./ \u{2028}\u{feff}]{0,20}")) {
            agree(WEBHOOK, 2000, &s, tavern_core::checks::webhook(&s).is_ok())?;
        }
    }
}

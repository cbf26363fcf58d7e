//! Checks of what people type: slugs, usernames, labels, releases, and
//! the other free-text fields. Each answers the value to keep or an
//! invalid-input error naming the field (the API document's patterns say
//! the same).

use tavern_types::{LicenseId, Slug, Username, WakeOnVisit};

use crate::error::CoreError;

/// The longest idle timeout one may set: a week.
pub(crate) const MAX_IDLE_MINUTES: u32 = 7 * 24 * 60;

pub(crate) fn idle_minutes(m: u32) -> Result<u32, CoreError> {
    if (1..=MAX_IDLE_MINUTES).contains(&m) {
        Ok(m)
    } else {
        Err(CoreError::invalid(
            "invalid_field",
            "idle_timeout_minutes",
            format!("idle_timeout_minutes must be between 1 and {MAX_IDLE_MINUTES}"),
        ))
    }
}

pub(crate) fn wake(s: &str) -> Result<WakeOnVisit, CoreError> {
    s.parse().map_err(|e: tavern_types::ParseEnumError| {
        CoreError::invalid("invalid_field", "wake_on_visit", e.to_string())
    })
}

pub(crate) fn slug(s: &str) -> Result<Slug, CoreError> {
    Slug::parse(s).map_err(|e| {
        let code = if matches!(e, tavern_types::NameError::Reserved(_)) {
            "reserved_slug"
        } else {
            "invalid_slug"
        };
        CoreError::invalid(code, "slug", e.to_string())
    })
}

pub(crate) fn username(field: &'static str, s: &str) -> Result<Username, CoreError> {
    Username::parse(s).map_err(|e| CoreError::invalid("invalid_username", field, e.to_string()))
}

pub(crate) fn license_id(s: &str) -> Result<LicenseId, CoreError> {
    s.parse().map_err(|_| {
        CoreError::invalid(
            "invalid_field",
            "license",
            format!("{s:?} is not a license id"),
        )
    })
}

/// A key's label: 1 to 64 characters, none a control character, neither
/// the first nor the last a space (the API document's pattern says the
/// same).
pub fn label(label: &str) -> Result<String, CoreError> {
    if label.is_empty()
        || label.chars().count() > 64
        || label.chars().any(char::is_control)
        || label.starts_with(' ')
        || label.ends_with(' ')
    {
        return Err(CoreError::invalid(
            "invalid_field",
            "label",
            "a label needs 1 to 64 printable characters, not beginning or ending with a space",
        ));
    }
    Ok(label.to_owned())
}

pub(crate) fn release(release: &str) -> Result<String, CoreError> {
    let ok = !release.is_empty()
        && release.len() <= 32
        && release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(CoreError::invalid(
            "invalid_field",
            "release",
            format!("{release:?} is not a release name (like 12.331 or stub)"),
        ));
    }
    Ok(release.to_owned())
}

/// An e-mail address as given, checked and lowercased: one `@`, something
/// before it, a domain with a dot inside it, no whitespace, at most 254
/// characters (the API document's pattern says the same).
pub fn email(email: &str) -> Result<String, CoreError> {
    let e = email.to_ascii_lowercase();
    let (local, domain) = e.split_once('@').unwrap_or_default();
    let inner_dot = domain
        .char_indices()
        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len());
    if local.is_empty()
        || !inner_dot
        || domain.contains('@')
        || e.chars().count() > 254
        || e.contains(char::is_whitespace)
    {
        return Err(CoreError::invalid(
            "invalid_email",
            "email",
            format!("{e:?} is not an e-mail address"),
        ));
    }
    Ok(e)
}

/// A webhook address as given, checked: `http(s)://` and no whitespace,
/// at most 2000 characters (the API document's pattern says the same).
pub fn webhook(url: &str) -> Result<&str, CoreError> {
    let u = url;
    let ok = (u.starts_with("https://") || u.starts_with("http://"))
        && u.chars().count() <= 2000
        && !u.contains(char::is_whitespace);
    if !ok {
        return Err(CoreError::invalid(
            "invalid_webhook",
            "webhook_url",
            "a webhook is an https:// address (Discord: channel settings → Integrations → Webhooks)",
        ));
    }
    Ok(u)
}

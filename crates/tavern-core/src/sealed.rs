//! Short-lived values a browser carries for Tavern and cannot read or
//! forge: fields sealed with Tavern's key under a purpose (so that one
//! kind is never taken for another) and an expiry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};

use crate::error::CoreError;
use crate::secrets::SecretBox;

/// `fields` sealed for `purpose`, good for `seconds`.
pub(crate) fn seal(
    secrets: &SecretBox,
    purpose: &str,
    seconds: i64,
    fields: &[&str],
) -> Result<String, CoreError> {
    if fields.iter().any(|f| f.contains('\0')) {
        return Err(CoreError::invalid(
            "invalid",
            "value",
            "a value holds a NUL character",
        ));
    }
    let expires = Timestamp::now() + SignedDuration::from_secs(seconds);
    let mut plain = format!("{purpose}\0{}", expires.as_second());
    for f in fields {
        plain.push('\0');
        plain.push_str(f);
    }
    let sealed = secrets
        .seal(plain.as_bytes())
        .map_err(|e| CoreError::internal("seal a value", e))?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

/// The fields of a value sealed for `purpose`, if it still holds at `now`.
pub(crate) fn open(
    secrets: &SecretBox,
    purpose: &str,
    text: &str,
    now: Timestamp,
) -> Option<Vec<String>> {
    let sealed = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
    let plain = String::from_utf8(secrets.open(&sealed).ok()?).ok()?;
    read(&plain, purpose, now)
}

fn read(plain: &str, purpose: &str, now: Timestamp) -> Option<Vec<String>> {
    let mut parts = plain.split('\0');
    let (found, expires) = (parts.next()?, parts.next()?);
    let expires = Timestamp::from_second(expires.parse().ok()?).ok()?;
    (found == purpose && now <= expires).then(|| parts.map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> (tempfile::TempDir, SecretBox) {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::load_or_create(&dir.path().join("k")).unwrap();
        (dir, b)
    }

    #[test]
    fn a_value_opens_for_its_purpose_until_it_expires() {
        let (_d, b) = secrets();
        let text = seal(&b, "p/1", 60, &["a", "", "c d"]).unwrap();
        let now = Timestamp::now();
        assert_eq!(open(&b, "p/1", &text, now).unwrap(), ["a", "", "c d"]);
        assert_eq!(open(&b, "q/1", &text, now), None);
        assert_eq!(
            open(&b, "p/1", &text, now + SignedDuration::from_secs(61)),
            None
        );
        assert_eq!(open(&b, "p/1", "not sealed", now), None);
        let (_d2, other) = secrets();
        assert_eq!(open(&other, "p/1", &text, now), None);
        assert!(seal(&b, "p/1", 60, &["a\0b"]).is_err());
    }
}

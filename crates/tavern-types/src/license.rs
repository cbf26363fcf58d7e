//! Foundry license keys: `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`, kept as the 24
//! characters without dashes (the form Foundry's `license.json` takes).
//! The key is a secret: `Debug` is redacted and there is no `Display`.

use secrecy::{ExposeSecret, SecretString};

/// Why a license key was refused. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseKeyError {
    #[error("a license key has 24 letters and digits (dashes are ignored); got {0}")]
    WrongLength(usize),
    #[error("a license key may contain only letters, digits and dashes")]
    BadCharacter,
}

/// A validated Foundry license key.
#[derive(Clone)]
pub struct LicenseKey(SecretString);

impl LicenseKey {
    pub const LEN: usize = 24;
    /// The longest text taken as a key (with its dashes and whitespace).
    pub const MAX_INPUT: usize = 256;

    /// Accepts the key with or without dashes and surrounding ASCII
    /// whitespace, in any letter case; stores it upper-case without dashes.
    pub fn parse(input: &str) -> Result<Self, LicenseKeyError> {
        if input.chars().count() > Self::MAX_INPUT {
            return Err(LicenseKeyError::WrongLength(input.len()));
        }
        let mut key = String::with_capacity(Self::LEN);
        for c in input
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .chars()
        {
            match c {
                '-' => {}
                c if c.is_ascii_alphanumeric() => key.push(c.to_ascii_uppercase()),
                _ => return Err(LicenseKeyError::BadCharacter),
            }
        }
        if key.len() != Self::LEN {
            return Err(LicenseKeyError::WrongLength(key.len()));
        }
        Ok(Self(SecretString::from(key)))
    }

    /// The key without dashes. Only for writing `license.json` or encrypting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The last four characters: what people may see to tell keys apart.
    pub fn last4(&self) -> String {
        let k = self.expose();
        k[k.len() - 4..].to_owned()
    }
}

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LicenseKey(****{})", self.last4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_dashes_and_case() {
        let k = LicenseKey::parse(" abcd-EFGH-1234-5678-IJKL-MNOP\n").unwrap();
        assert_eq!(k.expose(), "ABCDEFGH12345678IJKLMNOP");
        assert_eq!(k.last4(), "MNOP");
    }

    #[test]
    fn refuses_wrong_shapes() {
        assert_eq!(
            LicenseKey::parse("ABCD").unwrap_err(),
            LicenseKeyError::WrongLength(4)
        );
        assert_eq!(
            LicenseKey::parse("ABCD-EFGH-1234-5678-IJKL-MN P").unwrap_err(),
            LicenseKeyError::BadCharacter
        );
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let k = LicenseKey::parse("ABCDEFGH12345678IJKLMNOP").unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("ABCDEFGH"), "{shown}");
        assert!(shown.contains("MNOP"));
    }
}

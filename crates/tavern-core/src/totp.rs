//! Second factors as codes: TOTP (RFC 6238 with HMAC-SHA-1, 6 digits and
//! 30-second steps, which every authenticator app reads from an
//! `otpauth://` address), checked one step either side of now; and the
//! one-time recovery codes given out with a factor. Pure: no store, no
//! clock of its own.

use rand::Rng as _;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::auth::token_hash;

/// Seconds a code lasts.
pub const STEP_SECONDS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Recovery codes given out at a time.
pub const RECOVERY_CODES: usize = 10;
/// Bytes of a new secret (RFC 4226 asks for 160 bits).
const SECRET_BYTES: usize = 20;
/// Recovery codes' letters: no 0/o, 1/l/i to misread.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    rand::random::<[u8; SECRET_BYTES]>().to_vec()
}

fn totp(secret: &[u8], digits: u8, account: &str) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some("Tavern"))
        .with_account_name(account)
        .build_noncompliant()
}

/// The secret as people type it into an app that cannot scan the QR code.
pub fn secret_text(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// The secret behind its base-32 text (as an app holds it), if it is one.
pub fn secret_from_text(text: &str) -> Option<Vec<u8>> {
    let secret = Secret::try_from_base32(text.trim().to_ascii_uppercase()).ok()?;
    Some(secret.as_bytes().to_vec())
}

/// The `otpauth://totp/…` address an authenticator app scans: issuer
/// Tavern, the account `username@domain` (a colon, which the format
/// reserves, is dropped).
pub fn otpauth_url(secret: &[u8], username: &str, domain: &str) -> String {
    let account = format!("{username}@{domain}").replace(':', "");
    totp(secret, DIGITS, &account).to_url().unwrap_or_default()
}

/// The code of the step that holds `unix` (seconds), with `digits`
/// digits.
pub fn code_at(secret: &[u8], unix: u64, digits: u8) -> String {
    totp(secret, digits, "").generate(unix).to_string()
}

/// The time step a six-digit `code` belongs to if it is right at `unix`
/// or one step either side (clocks drift; codes are typed slowly).
/// Spaces in the code are ignored.
pub fn check(secret: &[u8], code: &str, unix: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = totp(secret, DIGITS, "").check(&code, unix)?;
    i64::try_from(step).ok()
}

/// Whether what was typed is shaped like a TOTP code (else it is taken
/// for a recovery code).
pub fn looks_like_code(typed: &str) -> bool {
    let digits: Vec<u8> = typed.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.len() == usize::from(DIGITS) && digits.iter().all(u8::is_ascii_digit)
}

/// New recovery codes, as shown (`abcde-fghjk`), and their hashes to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rng();
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let letters: String = (0..10)
                .map(|_| {
                    char::from(RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())])
                })
                .collect();
            format!("{}-{}", &letters[..5], &letters[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    (codes, hashes)
}

/// What a typed recovery code is stored as: any case, with or without its
/// dash and spaces.
pub fn recovery_hash(typed: &str) -> String {
    let plain: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    token_hash(&format!("recovery:{plain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 column, with its 20-byte key.
    const RFC_KEY: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn codes_are_rfc_6238s_test_vectors() {
        for (unix, expected) in RFC_VECTORS {
            assert_eq!(code_at(RFC_KEY, unix, 8), expected, "T = {unix}");
            // Six digits are the same value, modulo 10^6.
            assert_eq!(code_at(RFC_KEY, unix, DIGITS), expected[2..], "T = {unix}");
            // And such a code is accepted, in its own step.
            let step = i64::try_from(unix / STEP_SECONDS).unwrap();
            assert_eq!(check(RFC_KEY, &expected[2..], unix), Some(step));
        }
    }

    #[test]
    fn a_code_is_right_one_step_either_side_and_no_further() {
        let at = 1_234_567_890;
        let code = code_at(RFC_KEY, at, DIGITS);
        let step = i64::try_from(at / STEP_SECONDS).unwrap();
        assert_eq!(check(RFC_KEY, &code, at + STEP_SECONDS), Some(step));
        assert_eq!(check(RFC_KEY, &code, at - STEP_SECONDS), Some(step));
        assert_eq!(check(RFC_KEY, &code, at + 2 * STEP_SECONDS), None);
        assert_eq!(check(RFC_KEY, &code, at - 2 * STEP_SECONDS), None);
        // Typed with a space in the middle, as apps show it.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(RFC_KEY, &spaced, at), Some(step));
        // Not another secret's, and nothing that is not six digits.
        assert_eq!(check(b"another secret of twenty", &code, at), None);
        for wrong in ["", "12345", "1234567", "abcdef", "12345a", "１２３４５６"] {
            assert_eq!(check(RFC_KEY, wrong, at), None, "{wrong:?}");
        }
    }

    #[test]
    fn the_address_an_app_scans_names_tavern_the_account_and_the_secret() {
        let url = otpauth_url(RFC_KEY, "ann", "games.example");
        assert!(
            url.starts_with("otpauth://totp/Tavern:ann%40games.example?"),
            "{url}"
        );
        assert!(
            url.contains(&format!("secret={}", secret_text(RFC_KEY))),
            "{url}"
        );
        assert!(url.contains("issuer=Tavern"), "{url}");
        assert_eq!(secret_text(RFC_KEY), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret_from_text("gezdgnbvgy3tqojqgezdgnbvgy3tqojq").unwrap(),
            RFC_KEY
        );
        assert_eq!(secret_from_text("not base 32!"), None);
        assert_eq!(new_secret().len(), 20);
        assert_ne!(new_secret(), new_secret());
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_however_they_are_typed() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::BTreeSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 11);
        assert!(!looks_like_code(code));
        assert_eq!(recovery_hash(&code.to_uppercase()), hashes[0]);
        assert_eq!(recovery_hash(&code.replace('-', " ")), hashes[0]);
        assert_ne!(recovery_hash(&codes[1]), hashes[0]);
        assert!(looks_like_code("123 456"));
    }
}

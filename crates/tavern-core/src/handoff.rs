//! Carrying a dashboard sign-in over to a world's own address where the
//! browser cannot share the cookie (a single-label domain such as
//! `localhost`): a short-lived code, sealed with Tavern's secret key, that
//! names the world it is for and holds the session's token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use tavern_types::Slug;

use crate::tavern::Tavern;

/// How long a code may be redeemed after it was made: one redirect's time.
pub const HANDOFF_SECONDS: i64 = 60;

/// What a sealed code opens to starts with this, so that nothing else
/// sealed with the same key (a license key) reads as a code.
const MAGIC: &str = "tavern-handoff/1";

impl Tavern {
    /// A code that signs the browser in on `world`'s address with `token`.
    pub fn handoff_code(&self, token: &str, world: &Slug) -> Option<String> {
        let expires = Timestamp::now() + SignedDuration::from_secs(HANDOFF_SECONDS);
        let plain = format!("{MAGIC}\0{world}\0{}\0{token}", expires.as_second());
        let sealed = self.secrets.seal(plain.as_bytes()).ok()?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The token a code holds, if it is for `world` and still fresh.
    pub fn redeem_handoff(&self, code: &str, world: &Slug) -> Option<String> {
        let sealed = URL_SAFE_NO_PAD.decode(code.as_bytes()).ok()?;
        let plain = String::from_utf8(self.secrets.open(&sealed).ok()?).ok()?;
        read_code(&plain, world, Timestamp::now())
    }
}

/// The token of an opened code, if it is for `world` and not expired at
/// `now`.
fn read_code(plain: &str, world: &Slug, now: Timestamp) -> Option<String> {
    let mut parts = plain.splitn(4, '\0');
    let (magic, slug, expires, token) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires = Timestamp::from_second(expires.parse().ok()?).ok()?;
    (magic == MAGIC && slug == world.as_str() && now <= expires && !token.is_empty())
        .then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    #[test]
    fn a_code_is_for_one_world_and_a_minute() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let plain = format!("{MAGIC}\0dragon\0{}\0tvn_abc", now.as_second() + 60);
        assert_eq!(
            read_code(&plain, &slug("dragon"), now).as_deref(),
            Some("tvn_abc")
        );
        assert_eq!(read_code(&plain, &slug("wyvern"), now), None);
        let later = now + SignedDuration::from_secs(61);
        assert_eq!(read_code(&plain, &slug("dragon"), later), None);
        let other = format!("license\0dragon\0{}\0tvn_abc", now.as_second() + 60);
        assert_eq!(read_code(&other, &slug("dragon"), now), None);
        assert_eq!(
            read_code("tavern-handoff/1\0dragon", &slug("dragon"), now),
            None
        );
    }
}

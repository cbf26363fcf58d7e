//! Carrying a dashboard sign-in over to a world's own address where the
//! browser cannot share the cookie (a single-label domain such as
//! `localhost`): a short-lived code, sealed with Tavern's secret key, that
//! names the world it is for and holds the session's token.

use jiff::Timestamp;
use tavern_types::Slug;

use crate::sealed;
use crate::tavern::Tavern;

/// How long a code may be redeemed after it was made: one redirect's time.
pub const HANDOFF_SECONDS: i64 = 60;

/// What a code is sealed for, so that nothing else sealed with the same key
/// reads as one.
const PURPOSE: &str = "tavern-handoff/1";

impl Tavern {
    /// A code that signs the browser in on `world`'s address with `token`.
    pub fn handoff_code(&self, token: &str, world: &Slug) -> Option<String> {
        sealed::seal(
            &self.secrets,
            PURPOSE,
            HANDOFF_SECONDS,
            &[world.as_str(), token],
        )
        .ok()
    }

    /// The token a code holds, if it is for `world` and still fresh.
    pub fn redeem_handoff(&self, code: &str, world: &Slug) -> Option<String> {
        let fields = sealed::open(&self.secrets, PURPOSE, code, Timestamp::now())?;
        token_for(&fields, world)
    }
}

/// The token of an opened code, if it is for `world`.
fn token_for(fields: &[String], world: &Slug) -> Option<String> {
    match fields {
        [slug, token] if slug == world.as_str() && !token.is_empty() => Some(token.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    #[test]
    fn a_code_is_for_one_world_and_holds_a_token() {
        let fields = ["dragon".to_owned(), "tvn_abc".to_owned()];
        assert_eq!(
            token_for(&fields, &slug("dragon")).as_deref(),
            Some("tvn_abc")
        );
        assert_eq!(token_for(&fields, &slug("wyvern")), None);
        assert_eq!(token_for(&fields[..1], &slug("dragon")), None);
        let empty = ["dragon".to_owned(), String::new()];
        assert_eq!(token_for(&empty, &slug("dragon")), None);
    }
}

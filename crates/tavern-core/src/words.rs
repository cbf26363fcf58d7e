//! How things are told to people: times, other worlds' names (never
//! leaked to a stranger), and the errors several resources share.

use jiff::Timestamp;
use tavern_store::Instance;
use tavern_types::UserId;

use crate::error::CoreError;

/// A time for people: UTC, to the minute.
pub fn minutes(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A world's name as a user may see it: its slug for an admin or for its
/// owner, "another world" for anyone else (a game master never learns the
/// names of another's worlds).
pub(crate) fn world_name_for(world: Option<&Instance>, viewer: UserId, admin: bool) -> String {
    world
        .filter(|w| admin || w.owner == viewer)
        .map_or_else(|| "another world".to_owned(), |w| w.slug.to_string())
}

pub(crate) fn being_destroyed(i: &Instance) -> CoreError {
    CoreError::Conflict {
        code: "being_destroyed",
        message: format!("{} is being destroyed", i.slug),
    }
}

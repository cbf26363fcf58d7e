//! Discord accounts linked to Tavern users: who a Discord account acts as,
//! and linking one with a one-time code. The bot's commands and their
//! wording belong to the HTTP edge (tavern-http's `bot`), which calls the
//! same operations as the API with the linked user as the caller.

use tavern_store::{NewEvent, now};
use tavern_types::Username;

use crate::auth::{Caller, token_hash};
use crate::error::CoreError;
use crate::policy::supporters::normalize_link_code;
use crate::tavern::Tavern;

/// How linking a Discord account with a code ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscordLink {
    /// The account now acts as this user.
    Linked(Username),
    /// What was given is not shaped like a link code.
    NotACode,
    /// No such code, or it was used or has expired.
    UnknownCode,
}

impl Tavern {
    /// The user a Discord account is linked to, as a caller; `None` when
    /// it is linked to nobody.
    pub async fn discord_caller(&self, discord_user: &str) -> Result<Option<Caller>, CoreError> {
        Ok(self
            .store
            .user_by_discord(discord_user)
            .await?
            .map(|user| Caller { user }))
    }

    /// Links `discord_user` to the user a one-time link code was made for
    /// (`tavern user link-code`), using the code up.
    pub async fn link_discord(
        &self,
        discord_user: &str,
        code: &str,
    ) -> Result<DiscordLink, CoreError> {
        let Some(code) = normalize_link_code(code) else {
            return Ok(DiscordLink::NotACode);
        };
        let Some(id) = self.store.take_link_code(&token_hash(&code), now()).await? else {
            return Ok(DiscordLink::UnknownCode);
        };
        let user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                what: "user",
                key: id.to_string(),
            })?;
        self.store
            .link_discord(
                user.id,
                Some(discord_user),
                &NewEvent::success(
                    user.username.as_str(),
                    "user.discord_link",
                    format!("user:{}", user.username),
                ),
            )
            .await?;
        Ok(DiscordLink::Linked(user.username))
    }
}

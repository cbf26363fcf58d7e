//! The narrow port the proxy reaches Tavern through: the route table and
//! activity counters, who a visitor is, waking and starting a world,
//! signing in, and a world's backups; and its implementation over the
//! core service. The proxy
//! sees neither the store nor the rest of the service.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tavern_core::activity::Activity;
use tavern_core::routes::RouteTable;
use tavern_core::{BackupDownload, BackupView, Caller, CoreError, DownloadFormat, Tavern};
use tavern_types::{DesiredState, Slug};
use tokio::sync::watch;

/// What the proxy asks of Tavern.
#[async_trait]
pub trait TavernPort: Send + Sync + 'static {
    /// The route table as it changes.
    fn routes(&self) -> watch::Receiver<Arc<RouteTable>>;
    /// Where the proxy counts open connections to worlds.
    fn activity(&self) -> Activity;
    /// The dashboard's address, for links on the proxy's pages.
    fn site_url(&self) -> String;
    /// Who holds the session `token`, and whether they may run `world`
    /// (its owner, or an admin); `None` for no valid session.
    async fn visitor(&self, token: &str, world: &Slug) -> Option<Visitor>;
    /// Starts `world` as the holder of `token`.
    async fn start(&self, token: &str, world: &Slug) -> Result<(), Note>;
    /// Wakes a sleeping `world` for a visitor, as its wake-on-visit policy
    /// allows.
    async fn wake_for_visitor(&self, world: &Slug) -> Result<(), Note>;
    /// Signs in within the sign-in rate limits: a new session token, or
    /// (for an account with a second factor) where its code is asked for.
    async fn sign_in(&self, username: &str, password: &str, ip: IpAddr) -> Result<SignedIn, Note>;
    /// The session token a dashboard handoff `code` carries, when it is
    /// for `world` and still fresh.
    fn redeem_handoff(&self, code: &str, world: &Slug) -> Option<String>;
    /// The backups of `world`, newest first, for the holder of `token`: its
    /// game master or an admin (`NotTheirs` for anyone else,
    /// `Unauthenticated` for no valid session).
    async fn world_backups(
        &self,
        token: Option<&str>,
        world: &Slug,
    ) -> Result<Vec<BackupView>, Note>;
    /// A complete backup of `world` to download (a zip of Foundry's data
    /// when `zip`), never with Tavern's secrets; refused as
    /// [`TavernPort::world_backups`] is, and `NotTheirs` for a backup of
    /// another world.
    async fn world_backup(
        &self,
        token: Option<&str>,
        world: &Slug,
        id: &str,
        zip: bool,
    ) -> Result<BackupDownload, Note>;
}

/// A signed-in visitor of a world's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visitor {
    pub username: String,
    /// May start and stop this world.
    pub runs_it: bool,
}

/// A right password on a world's standby page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedIn {
    /// The new session's token.
    Token(String),
    /// The account's second factor is asked for on the dashboard, at this
    /// path of it (which holds a short-lived sealed ticket, not the
    /// password), and the sign-in carried back to the world from there.
    NeedsCode(String),
}

/// What the standby page tells a visitor after something they asked
/// for: why it was refused, or that a sign-in should have taken. Carried
/// across a redirect in the page's `note` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    SignedIn,
    HandoffExpired,
    SignInFailed,
    RateLimited,
    NoLicenseFree,
    QuotaExceeded,
    /// Only the world's game master may start it.
    NotTheirs,
    Unauthenticated,
    Failed,
}

impl Note {
    const ALL: [Note; 9] = [
        Note::SignedIn,
        Note::HandoffExpired,
        Note::SignInFailed,
        Note::RateLimited,
        Note::NoLicenseFree,
        Note::QuotaExceeded,
        Note::NotTheirs,
        Note::Unauthenticated,
        Note::Failed,
    ];

    /// Its value in the page's address.
    pub fn code(self) -> &'static str {
        match self {
            Note::SignedIn => "signed_in",
            Note::HandoffExpired => "handoff_expired",
            Note::SignInFailed => "signin_failed",
            Note::RateLimited => "rate_limited",
            Note::NoLicenseFree => "no_license_available",
            Note::QuotaExceeded => "quota_exceeded",
            Note::NotTheirs => "not_found",
            Note::Unauthenticated => "unauthenticated",
            Note::Failed => "failed",
        }
    }

    /// The note a page's address carries; one it does not know reads as
    /// a failure.
    pub fn from_code(code: &str) -> Note {
        Note::ALL
            .into_iter()
            .find(|n| n.code() == code)
            .unwrap_or(Note::Failed)
    }

    /// Why starting or waking a world was refused.
    fn refused(e: &CoreError) -> Note {
        match e {
            CoreError::NoLicenseFree(_) => Note::NoLicenseFree,
            CoreError::Quota(_) => Note::QuotaExceeded,
            CoreError::NotFound { .. } => Note::NotTheirs,
            CoreError::Unauthenticated => Note::Unauthenticated,
            _ => Note::Failed,
        }
    }
}

#[async_trait]
impl TavernPort for Tavern {
    fn routes(&self) -> watch::Receiver<Arc<RouteTable>> {
        Tavern::routes(self)
    }

    fn activity(&self) -> Activity {
        Tavern::activity(self)
    }

    fn site_url(&self) -> String {
        self.settings().site_url()
    }

    async fn visitor(&self, token: &str, world: &Slug) -> Option<Visitor> {
        let caller = self.authenticate(token).await.ok()?;
        let runs_it = self.get_instance(&caller, world.as_str()).await.is_ok();
        Some(Visitor {
            username: caller.user.username.to_string(),
            runs_it,
        })
    }

    async fn start(&self, token: &str, world: &Slug) -> Result<(), Note> {
        let caller = self
            .authenticate(token)
            .await
            .map_err(|_| Note::Unauthenticated)?;
        self.set_desired(&caller, world.as_str(), DesiredState::Running)
            .await
            .map(drop)
            .map_err(|e| Note::refused(&e))
    }

    async fn wake_for_visitor(&self, world: &Slug) -> Result<(), Note> {
        Tavern::wake_for_visitor(self, world.as_str())
            .await
            .map_err(|e| Note::refused(&e))
    }

    async fn sign_in(&self, username: &str, password: &str, ip: IpAddr) -> Result<SignedIn, Note> {
        match Tavern::sign_in(self, username, password, None, Some(ip)).await {
            Ok(tavern_core::SignIn::Done(token, _)) => Ok(SignedIn::Token(token)),
            Ok(tavern_core::SignIn::NeedsCode(ticket)) => Ok(SignedIn::NeedsCode(format!(
                "auth/login/code?ticket={ticket}"
            ))),
            Err(CoreError::RateLimited(_)) => Err(Note::RateLimited),
            Err(_) => Err(Note::SignInFailed),
        }
    }

    fn redeem_handoff(&self, code: &str, world: &Slug) -> Option<String> {
        Tavern::redeem_handoff(self, code, world)
    }

    async fn world_backups(
        &self,
        token: Option<&str>,
        world: &Slug,
    ) -> Result<Vec<BackupView>, Note> {
        let caller = caller_of(self, token).await?;
        self.list_backups(&caller, Some(world.as_str()))
            .await
            .map_err(|e| Note::refused(&e))
    }

    async fn world_backup(
        &self,
        token: Option<&str>,
        world: &Slug,
        id: &str,
        zip: bool,
    ) -> Result<BackupDownload, Note> {
        let caller = caller_of(self, token).await?;
        // One not theirs, or no backup at all: the same answer.
        let found = self
            .get_backup(&caller, id)
            .await
            .map_err(|_| Note::NotTheirs)?;
        if found.backup.slug != *world {
            return Err(Note::NotTheirs);
        }
        let format = match zip {
            true => DownloadFormat::Zip,
            false => DownloadFormat::TarZst,
        };
        self.open_backup(&caller, id, false, false, format)
            .await
            .map_err(|e| Note::refused(&e))
    }
}

/// Who holds the session `token`.
async fn caller_of(tavern: &Tavern, token: Option<&str>) -> Result<Caller, Note> {
    let token = token.ok_or(Note::Unauthenticated)?;
    tavern
        .authenticate(token)
        .await
        .map_err(|_| Note::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_survive_the_address_and_strangers_read_as_failures() {
        for note in Note::ALL {
            assert_eq!(Note::from_code(note.code()), note);
        }
        assert_eq!(Note::from_code("conflict"), Note::Failed);
        assert_eq!(Note::from_code(""), Note::Failed);
    }
}

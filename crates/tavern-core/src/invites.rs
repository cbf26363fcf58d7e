//! Invitations: an admin invites someone (a role, a tier, an expiry and a
//! number of uses); the code, shown once and stored hashed, lets each
//! invitee create their own account and signs them in.

use jiff::{SignedDuration, Timestamp};
use tavern_store::{Invite, NewEvent, StoreError, User, now};
use tavern_types::{InviteId, Role, UserId};

use crate::auth::Caller;
use crate::auth::{self, token_hash};
use crate::checks;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// The longest an invitation may last, and how many accounts it may make.
pub const MAX_INVITE_DAYS: u32 = 90;
pub const MAX_INVITE_USES: u32 = 1000;

/// What an admin asks for.
#[derive(Clone, Debug)]
pub struct NewInvite {
    /// `gm` (default) or `admin`.
    pub role: Option<String>,
    pub tier: Option<String>,
    /// Default 1.
    pub uses: Option<u32>,
    /// Default 7 days.
    pub expires_in_hours: Option<u32>,
}

/// An invitation as people see it (never its code, after creation).
#[derive(Clone, Debug)]
pub struct InviteView {
    pub invite: Invite,
    /// Where the invitee goes: `<public address>/auth/invite/<code>`; only
    /// when just created.
    pub url: Option<String>,
    pub code: Option<String>,
}

impl InviteView {
    /// Used up or expired at `at`.
    pub fn spent(&self, at: Timestamp) -> bool {
        self.invite.uses >= self.invite.max_uses || self.invite.expires_at <= at
    }
}

fn not_found() -> CoreError {
    CoreError::NotFound {
        what: "invite",
        key: "(this code)".into(),
    }
}

impl Tavern {
    /// The public address of the bare domain, where invitations point.
    fn public_base(&self) -> String {
        let s = &self.settings;
        let port = s.public_port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}", s.public_scheme, s.domain)
    }

    /// Creates an invitation (admins only); its code is in the answer,
    /// this once.
    pub async fn create_invite(
        &self,
        caller: &Caller,
        new: NewInvite,
    ) -> Result<InviteView, CoreError> {
        caller.require_admin("invite people")?;
        let role: Role = new.role.as_deref().unwrap_or("gm").parse().map_err(
            |e: tavern_types::ParseEnumError| {
                CoreError::invalid("invalid_role", "role", e.to_string())
            },
        )?;
        let tier = new.tier.map(|t| self.check_tier(&t)).transpose()?;
        let uses = new.uses.unwrap_or(1);
        if !(1..=MAX_INVITE_USES).contains(&uses) {
            return Err(CoreError::invalid(
                "invalid_field",
                "uses",
                format!("uses must be 1 to {MAX_INVITE_USES}"),
            ));
        }
        let hours = new.expires_in_hours.unwrap_or(7 * 24);
        if !(1..=MAX_INVITE_DAYS * 24).contains(&hours) {
            return Err(CoreError::invalid(
                "invalid_field",
                "expires_in_hours",
                format!(
                    "expires_in_hours must be 1 to {} ({MAX_INVITE_DAYS} days)",
                    MAX_INVITE_DAYS * 24
                ),
            ));
        }
        let code = auth::random_secret();
        let at = now();
        let invite = Invite {
            id: InviteId::new(),
            code_hash: token_hash(&code),
            role,
            tier,
            max_uses: uses,
            uses: 0,
            expires_at: at + SignedDuration::from_hours(i64::from(hours)),
            created_by: caller.name(),
            created_at: at,
        };
        self.store
            .create_invite(
                &invite,
                &NewEvent::success(
                    caller.name(),
                    "invite.create",
                    format!("invite:{}", invite.id),
                )
                .with_detail(format!("role {role}, {uses} use(s), {hours} h")),
            )
            .await?;
        Ok(InviteView {
            url: Some(format!("{}/auth/invite/{code}", self.public_base())),
            code: Some(code),
            invite,
        })
    }

    /// Every invitation, spent ones too (admins only).
    pub async fn list_invites(&self, caller: &Caller) -> Result<Vec<InviteView>, CoreError> {
        caller.require_admin("see invitations")?;
        Ok(self
            .store
            .list_invites()
            .await?
            .into_iter()
            .map(|invite| InviteView {
                invite,
                url: None,
                code: None,
            })
            .collect())
    }

    /// Withdraws an invitation (admins only).
    pub async fn revoke_invite(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        caller.require_admin("withdraw invitations")?;
        let id: InviteId = id.parse().map_err(|_| CoreError::NotFound {
            what: "invite",
            key: id.to_owned(),
        })?;
        Ok(self
            .store
            .delete_invite(
                id,
                &NewEvent::success(caller.name(), "invite.revoke", format!("invite:{id}")),
            )
            .await?)
    }

    /// What an invitation offers, for whoever holds its code; not found
    /// once it is used up or expired.
    pub async fn invite_by_code(&self, code: &str) -> Result<Invite, CoreError> {
        let invite = self
            .store
            .invite_by_code(&token_hash(code.trim()))
            .await?
            .ok_or_else(not_found)?;
        if invite.uses >= invite.max_uses || invite.expires_at <= now() {
            return Err(not_found());
        }
        Ok(invite)
    }

    /// Creates the invitee's account with the invitation's role and tier,
    /// spending one use, and signs them in.
    pub async fn accept_invite(
        &self,
        code: &str,
        username: &str,
        password: &str,
    ) -> Result<(String, User), CoreError> {
        if self.settings.auth.passwords_off {
            return Err(crate::users::passwords_off());
        }
        let invite = self.invite_by_code(code).await?;
        let username = checks::username("username", username)?;
        auth::check_password(password)?;
        self.check_username_free(&username).await?;
        let user = User {
            id: UserId::new(),
            username,
            role: invite.role,
            password_hash: Some(self.passwords.hash(password.to_owned()).await?),
            created_at: now(),
            tier: invite.tier.clone(),
            email: None,
        };
        self.store
            .accept_invite(
                &invite.code_hash,
                &user,
                &NewEvent::success(
                    user.username.as_str(),
                    "invite.accept",
                    format!("invite:{}", invite.id),
                )
                .with_detail(format!("user {} ({})", user.username, user.role)),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => not_found(),
                e => e.into(),
            })?;
        let token = self.issue_token(&user, "invite").await?;
        Ok((token, user))
    }
}

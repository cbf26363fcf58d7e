//! Users and signing in: the first admin at start-up, tokens, passwords,
//! accounts and their quota tiers.

use std::net::IpAddr;

use tavern_store::{ApiToken, NewEvent, User, now};
use tavern_types::{Role, TokenId, UserId, Username};

use crate::auth::{self, Caller};
use crate::checks;
use crate::error::CoreError;
use crate::policy::quotas::Tier;
use crate::second_factor::SignIn;
use crate::tavern::Tavern;

pub struct NewUser {
    pub username: String,
    pub role: String,
    pub password: String,
    pub tier: Option<String>,
}

/// Why a password signs nobody in here.
pub(crate) fn passwords_off() -> CoreError {
    CoreError::Forbidden(
        "passwords are off on this Tavern: sign in with your community's account (Discord or \
         its identity provider) instead"
            .into(),
    )
}

impl Tavern {
    /// On an empty store, creates the admin `admin` and a token for it;
    /// answers the token's secret (to show once), or `None` if users exist.
    pub async fn bootstrap(&self) -> Result<Option<String>, CoreError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let admin = User {
            id: UserId::new(),
            username: checks::username("username", "admin")?,
            role: Role::Admin,
            password_hash: None,
            created_at: now(),
            tier: None,
            email: None,
        };
        self.store
            .create_user(
                &admin,
                &NewEvent::success("system", "user.create", "user:admin").with_detail("bootstrap"),
            )
            .await?;
        let secret = self.issue_token(&admin, "bootstrap").await?;
        Ok(Some(secret))
    }

    pub(crate) async fn issue_token(&self, user: &User, label: &str) -> Result<String, CoreError> {
        let event = NewEvent::success(
            user.username.as_str(),
            "token.create",
            format!("user:{}", user.username),
        )
        .with_detail(label);
        self.mint_token(user, label, &event).await
    }

    /// A new token for `user`, stored by its hash with `event`.
    async fn mint_token(
        &self,
        user: &User,
        label: &str,
        event: &NewEvent,
    ) -> Result<String, CoreError> {
        let (secret, hash) = auth::new_token();
        let token = ApiToken {
            id: TokenId::new(),
            user_id: user.id,
            token_hash: hash,
            label: label.to_owned(),
            created_at: now(),
        };
        self.store.create_token(&token, event).await?;
        Ok(secret)
    }

    /// The caller a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, CoreError> {
        if !token.starts_with(auth::TOKEN_PREFIX) {
            return Err(CoreError::Unauthenticated);
        }
        match self.store.token_by_hash(&auth::token_hash(token)).await? {
            Some((_, user)) => Ok(Caller { user }),
            None => Err(CoreError::Unauthenticated),
        }
    }

    /// Signs out: the token stops working at once.
    pub async fn logout(&self, token: &str) -> Result<(), CoreError> {
        let caller = self.authenticate(token).await?;
        let name = caller.name();
        match self
            .store
            .delete_token(
                &auth::token_hash(token),
                &NewEvent::success(&name, "auth.logout", format!("user:{name}")),
            )
            .await
        {
            // Signed out twice at once: the token is gone either way.
            Ok(()) | Err(tavern_store::StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a username and password within the sign-in rate limits (the
    /// API's, the dashboard's and the worlds' standby pages alike; `ip` is
    /// the client's address, `None` in-process) and issues a new token; an
    /// account with a second factor needs its `code` too, and without it
    /// answers a ticket for [`Tavern::sign_in_with_ticket`]. Refusals are
    /// logged without the password.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<SignIn, CoreError> {
        if let Err(wait) = self.logins.check(username, ip) {
            tracing::warn!(username = %username.escape_debug(), ?ip, "sign-in rate-limited");
            return Err(CoreError::RateLimited(wait.as_secs().max(1)));
        }
        let auth = &self.settings.auth;
        if !auth.password_allowed(username) {
            return Err(passwords_off());
        }
        let result = self.check_password(username, password).await;
        // Only a wrong name or password counts against the pair.
        if let Err(CoreError::InvalidCredentials) = &result {
            self.logins.record(username, ip, false);
            tracing::warn!(username = %username.escape_debug(), ?ip, "sign-in failed");
        }
        let user = result?;
        if auth.passwords_off && user.role != Role::Admin {
            return Err(passwords_off());
        }
        let has_factor = self.confirmed_factor(user.id).await?.is_some();
        let method = match (has_factor, code) {
            (false, _) => "password",
            (true, None) => return Ok(SignIn::NeedsCode(self.ticket(user.id)?)),
            (true, Some(code)) => self.check_code(&user, code, ip).await?.method(),
        };
        self.logins.record(username, ip, true);
        let token = self.sign_in_token(&user, method).await?;
        Ok(SignIn::Done(token, user))
    }

    /// The user whose password this is.
    async fn check_password(&self, username: &str, password: &str) -> Result<User, CoreError> {
        let user = match Username::parse(username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            // Spend the same effort as a real check so timing does not tell
            // which usernames exist.
            let _ = self.passwords.hash(password.to_owned()).await;
            return Err(CoreError::InvalidCredentials);
        };
        let Some(hash) = user.password_hash.clone() else {
            let _ = self.passwords.hash(password.to_owned()).await;
            return Err(CoreError::InvalidCredentials);
        };
        if !self.passwords.verify(password.to_owned(), hash).await? {
            return Err(CoreError::InvalidCredentials);
        }
        Ok(user)
    }

    /// A new session token for a sign-in, recorded in the audit log as
    /// `auth.login` with how it was made (`method`).
    pub(crate) async fn sign_in_token(
        &self,
        user: &User,
        method: &str,
    ) -> Result<String, CoreError> {
        let event = NewEvent::success(
            user.username.as_str(),
            "auth.login",
            format!("user:{}", user.username),
        )
        .with_detail(method);
        self.mint_token(user, "login", &event).await
    }

    pub async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User, CoreError> {
        caller.require_admin("create users")?;
        let username = checks::username("username", &new.username)?;
        let role: Role = new
            .role
            .parse()
            .map_err(|e: tavern_types::ParseEnumError| {
                CoreError::invalid("invalid_role", "role", e.to_string())
            })?;
        auth::check_password(&new.password)?;
        let tier = new.tier.map(|t| self.check_tier(&t)).transpose()?;
        self.check_username_free(&username).await?;
        let user = User {
            id: UserId::new(),
            username,
            role,
            password_hash: Some(self.passwords.hash(new.password).await?),
            created_at: now(),
            tier,
            email: None,
        };
        self.store
            .create_user(
                &user,
                &NewEvent::success(
                    caller.name(),
                    "user.create",
                    format!("user:{}", user.username),
                )
                .with_detail(format!("role {role}")),
            )
            .await?;
        Ok(user)
    }

    /// Admins see everyone; a game master sees only themself.
    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<User>, CoreError> {
        if caller.is_admin() {
            Ok(self.store.list_users().await?)
        } else {
            Ok(vec![caller.user.clone()])
        }
    }

    /// Refuses a username someone has already (an account made by an
    /// admin, or through an invitation).
    pub(crate) async fn check_username_free(&self, username: &Username) -> Result<(), CoreError> {
        if self.store.user_by_name(username).await?.is_some() {
            return Err(CoreError::Conflict {
                code: "username_taken",
                message: format!("the username {username} is taken"),
            });
        }
        Ok(())
    }

    pub(crate) async fn user_named(
        &self,
        field: &'static str,
        name: &str,
    ) -> Result<User, CoreError> {
        let username = checks::username(field, name)?;
        self.store.user_by_name(&username).await?.ok_or_else(|| {
            CoreError::invalid(
                "unknown_user",
                field,
                format!("there is no user {username}"),
            )
        })
    }

    /// The quota tier that applies to `user`: none for admins; the tier
    /// a Ko-fi subscription gives them while it lasts; else the user's own
    /// if it is configured, else the default tier.
    pub(crate) async fn tier_of(&self, user: &User) -> Result<Option<(String, Tier)>, CoreError> {
        if user.role == Role::Admin {
            return Ok(None);
        }
        let economy = &self.settings.economy;
        let supporter = self.supporter_tier_of(user.id).await?.map(|(t, _)| t);
        let name = supporter
            .as_ref()
            .into_iter()
            .chain(user.tier.as_ref())
            .find(|t| economy.tiers.contains_key(*t))
            .or(economy.default_tier.as_ref());
        Ok(name.and_then(|n| economy.tiers.get(n).map(|t| (n.clone(), t.clone()))))
    }

    pub(crate) fn check_tier(&self, name: &str) -> Result<String, CoreError> {
        let tiers = &self.settings.economy.tiers;
        if tiers.contains_key(name) {
            return Ok(name.to_owned());
        }
        let known: Vec<&str> = tiers.keys().map(String::as_str).collect();
        Err(CoreError::invalid(
            "unknown_tier",
            "tier",
            if known.is_empty() {
                format!("there is no tier {name:?}: no [tiers.NAME] is configured")
            } else {
                format!(
                    "there is no tier {name:?}; configured: {}",
                    known.join(", ")
                )
            },
        ))
    }

    /// Sets a user's quota tier (admins only); `None` for the default.
    pub async fn set_user_tier(
        &self,
        caller: &Caller,
        username: &str,
        tier: Option<String>,
    ) -> Result<User, CoreError> {
        caller.require_admin("set tiers")?;
        let user = self.user_named("username", username).await?;
        let tier = tier.map(|t| self.check_tier(&t)).transpose()?;
        let detail = tier.clone().unwrap_or_else(|| "default".into());
        Ok(self
            .store
            .set_user_tier(
                user.id,
                tier.as_deref(),
                &NewEvent::success(
                    caller.name(),
                    "user.tier",
                    format!("user:{}", user.username),
                )
                .with_detail(format!("tier {detail}")),
            )
            .await?)
    }

    /// Changes a user's tier and e-mail address (admins only) and their
    /// own notification webhook (themselves, or an admin); `None` leaves
    /// one as it is. All are checked before any changes.
    pub async fn update_user(
        &self,
        caller: &Caller,
        username: &str,
        tier: Option<Option<String>>,
        email: Option<Option<String>>,
        webhook_url: Option<Option<String>>,
    ) -> Result<User, CoreError> {
        if tier.is_some() || email.is_some() {
            caller.require_admin("change users")?;
        }
        let mut user = self.user_named("username", username).await?;
        if user.id != caller.user.id {
            caller.require_admin("change other users")?;
        }
        if let Some(Some(t)) = &tier {
            self.check_tier(t)?;
        }
        if let Some(Some(e)) = &email {
            checks::email(e)?;
        }
        if let Some(Some(w)) = &webhook_url {
            checks::webhook(w)?;
        }
        if let Some(email) = email {
            user = self
                .set_user_email(caller, username, email.as_deref())
                .await?;
        }
        if let Some(url) = webhook_url {
            self.set_user_webhook(caller, username, url.as_deref())
                .await?;
        }
        if let Some(tier) = tier {
            user = self.set_user_tier(caller, username, tier).await?;
        }
        Ok(user)
    }
}

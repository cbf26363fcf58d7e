//! A password account's second factor: setting up TOTP (the secret sealed
//! at rest, confirmed by a first right code, with one-time recovery codes),
//! the second step of a sign-in (a code, never accepted twice, under the
//! same rate limits as passwords) and the sealed ticket that carries a
//! right password over to that step without the password.

use std::net::IpAddr;

use jiff::Timestamp;
use tavern_store::{NewEvent, TotpFactor, User, now};
use tavern_types::{Role, UserId};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::sealed;
use crate::tavern::Tavern;
use crate::totp;

/// How long after a right password its code may come.
const TICKET_SECONDS: i64 = 300;
/// What tickets are sealed for.
const TICKET: &str = "tavern-second-step/1";
/// What outside sign-ins under way are sealed for, and for how long.
const FLOW: &str = "tavern-sign-in-flow/1";
pub const SIGN_IN_FLOW_SECONDS: u32 = 600;

/// How a password sign-in went.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the new token and its user.
    Done(String, User),
    /// The password was right; the account's code is asked for next, with
    /// this ticket (sealed; it names the user and lasts five minutes).
    NeedsCode(String),
}

/// How the second step of a sign-in was passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Passed {
    Code,
    RecoveryCode,
}

impl Passed {
    /// The sign-in's method, for the audit log.
    pub(crate) fn method(self) -> &'static str {
        match self {
            Passed::Code => "password and totp",
            Passed::RecoveryCode => "password and recovery code",
        }
    }
}

/// A user's second factor as they may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondFactor {
    /// A confirmed TOTP factor is asked for at every password sign-in.
    pub enabled: bool,
    pub recovery_codes_left: u32,
    /// The community requires one of this user (an admin, by `[auth]`).
    pub required: bool,
    /// Only password accounts have one.
    pub has_password: bool,
}

/// A TOTP set-up waiting for its first code: what the app needs.
#[derive(Clone, Debug)]
pub struct TotpEnrolment {
    /// The secret in base 32, for typing in.
    pub secret: String,
    /// The `otpauth://` address, for the QR code.
    pub otpauth_url: String,
}

impl Tavern {
    /// `user`'s TOTP factor once it is confirmed (one waiting for its
    /// first code is asked for nowhere).
    pub(crate) async fn confirmed_factor(
        &self,
        user: UserId,
    ) -> Result<Option<TotpFactor>, CoreError> {
        Ok(self
            .store
            .totp(user)
            .await?
            .filter(|f| f.confirmed_at.is_some()))
    }

    /// The caller's second factor.
    pub async fn second_factor(&self, caller: &Caller) -> Result<SecondFactor, CoreError> {
        let enabled = self.confirmed_factor(caller.user.id).await?.is_some();
        Ok(SecondFactor {
            enabled,
            recovery_codes_left: if enabled {
                self.store.recovery_codes_left(caller.user.id).await?
            } else {
                0
            },
            required: self.factor_required(&caller.user),
            has_password: caller.user.password_hash.is_some(),
        })
    }

    fn factor_required(&self, user: &User) -> bool {
        self.settings.auth.require_totp_for_admins
            && user.role == Role::Admin
            && user.password_hash.is_some()
    }

    /// Whether the caller must set up a second factor before anything
    /// else on the dashboard.
    pub async fn must_set_up_second_factor(&self, caller: &Caller) -> Result<bool, CoreError> {
        if !self.factor_required(&caller.user) {
            return Ok(false);
        }
        Ok(self.confirmed_factor(caller.user.id).await?.is_none())
    }

    /// Starts setting up TOTP (again, when an earlier start was never
    /// confirmed): a new secret, for the caller's app.
    pub async fn begin_totp(&self, caller: &Caller) -> Result<TotpEnrolment, CoreError> {
        if caller.user.password_hash.is_none() {
            return Err(CoreError::Conflict {
                code: "no_password",
                message: "your account signs in without a password, so it has no second factor \
                          to set up"
                    .into(),
            });
        }
        let secret = totp::new_secret();
        let sealed = self
            .secrets
            .seal(&secret)
            .map_err(|e| CoreError::internal("seal second factor", e))?;
        let name = caller.name();
        let factor = TotpFactor {
            user: caller.user.id,
            secret_sealed: sealed,
            created_at: now(),
            confirmed_at: None,
            last_step: None,
        };
        match self
            .store
            .begin_totp(
                &factor,
                &NewEvent::success(&name, "user.totp_begin", format!("user:{name}")),
            )
            .await
        {
            Err(tavern_store::StoreError::Conflict { .. }) => Err(CoreError::Conflict {
                code: "second_factor_exists",
                message: "you have a second factor already; remove it first to set up another"
                    .into(),
            }),
            other => other.map_err(CoreError::from),
        }?;
        Ok(TotpEnrolment {
            secret: totp::secret_text(&secret),
            otpauth_url: totp::otpauth_url(&secret, &name, &self.settings.domain),
        })
    }

    /// Confirms the set-up with its first right code; answers the recovery
    /// codes, shown this once.
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, CoreError> {
        let name = caller.name();
        self.code_attempts(&name, None)?;
        let pending = self
            .store
            .totp(caller.user.id)
            .await?
            .filter(|f| f.confirmed_at.is_none())
            .ok_or_else(|| CoreError::Conflict {
                code: "no_second_factor_pending",
                message: "there is no second factor waiting for its first code: start again".into(),
            })?;
        let secret = self.open_secret(&pending)?;
        let Some(step) = totp::check(&secret, code, unix_now()) else {
            self.logins.record(&name, None, false);
            return Err(CoreError::WrongCode);
        };
        let (codes, hashes) = totp::new_recovery_codes();
        let confirmed = self
            .store
            .confirm_totp(
                caller.user.id,
                step,
                now(),
                &hashes,
                &NewEvent::success(&name, "user.totp_on", format!("user:{name}")),
            )
            .await?;
        if !confirmed {
            return Err(CoreError::Conflict {
                code: "no_second_factor_pending",
                message: "there is no second factor waiting for its first code: start again".into(),
            });
        }
        Ok(codes)
    }

    /// New recovery codes for the caller (the old ones stop working),
    /// given a current code.
    pub async fn new_recovery_codes(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, CoreError> {
        self.second_step(&caller.user, code, None).await?;
        let name = caller.name();
        let (codes, hashes) = totp::new_recovery_codes();
        self.store
            .replace_recovery_codes(
                caller.user.id,
                &hashes,
                &NewEvent::success(&name, "user.recovery_codes", format!("user:{name}")),
            )
            .await?;
        Ok(codes)
    }

    /// Removes a second factor: the caller's own (`username` `None`),
    /// given a current code or a recovery code; or, by an admin, anyone's
    /// by name (someone who lost their app and their recovery codes).
    pub async fn remove_totp(
        &self,
        caller: &Caller,
        username: Option<&str>,
        code: Option<&str>,
    ) -> Result<(), CoreError> {
        let user = match username {
            Some(other) => {
                caller.require_admin("remove another user's second factor")?;
                self.user_named("username", other).await?
            }
            None => {
                let code = code.ok_or_else(|| {
                    CoreError::invalid(
                        "code_required",
                        "code",
                        "give a current code from your app, or a recovery code",
                    )
                })?;
                self.second_step(&caller.user, code, None).await?;
                caller.user.clone()
            }
        };
        let removed = self
            .store
            .remove_totp(
                user.id,
                &NewEvent::success(
                    caller.name(),
                    "user.totp_off",
                    format!("user:{}", user.username),
                ),
            )
            .await?;
        if removed {
            Ok(())
        } else {
            Err(CoreError::NotFound {
                what: "second factor",
                key: user.username.to_string(),
            })
        }
    }

    /// Finishes a sign-in whose password was right: the ticket it got and
    /// the account's code.
    pub async fn sign_in_with_ticket(
        &self,
        ticket: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<(String, User), CoreError> {
        let id = self.open_ticket(ticket).ok_or_else(|| {
            CoreError::invalid(
                "ticket_expired",
                "ticket",
                "that sign-in took too long: enter your password again",
            )
        })?;
        let user = self
            .store
            .user(id)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let passed = self.second_step(&user, code, ip).await?;
        self.logins.record(user.username.as_str(), ip, true);
        let token = self.sign_in_token(&user, passed.method()).await?;
        Ok((token, user))
    }

    /// The second step of a sign-in (or of changing the factor): a right
    /// code of a step not used before, or an unused recovery code. Rate
    /// limited and counted as passwords are. Answers how it was passed.
    pub(crate) async fn second_step(
        &self,
        user: &User,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, CoreError> {
        self.code_attempts(user.username.as_str(), ip)?;
        self.check_code(user, code, ip).await
    }

    /// [`Self::second_step`] within an attempt the limits let through
    /// already (a password sign-in's).
    pub(crate) async fn check_code(
        &self,
        user: &User,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Passed, CoreError> {
        let name = user.username.as_str();
        let Some(factor) = self.confirmed_factor(user.id).await? else {
            return Err(CoreError::NotFound {
                what: "second factor",
                key: name.to_owned(),
            });
        };
        let passed = if totp::looks_like_code(code) {
            let secret = self.open_secret(&factor)?;
            match totp::check(&secret, code, unix_now()) {
                Some(step) => self
                    .store
                    .use_totp_step(user.id, step)
                    .await?
                    .then_some(Passed::Code),
                None => None,
            }
        } else {
            self.store
                .use_recovery_code(
                    user.id,
                    &totp::recovery_hash(code),
                    &NewEvent::success(name, "user.recovery_code_used", format!("user:{name}")),
                )
                .await?
                .then_some(Passed::RecoveryCode)
        };
        match passed {
            Some(how) => Ok(how),
            None => {
                self.logins.record(name, ip, false);
                tracing::warn!(username = %name, ?ip, "sign-in: wrong second-factor code");
                Err(CoreError::WrongCode)
            }
        }
    }

    fn code_attempts(&self, username: &str, ip: Option<IpAddr>) -> Result<(), CoreError> {
        self.logins.check(username, ip).map_err(|wait| {
            tracing::warn!(username = %username.escape_debug(), ?ip, "second-factor codes rate-limited");
            CoreError::RateLimited(wait.as_secs().max(1))
        })
    }

    fn open_secret(&self, factor: &TotpFactor) -> Result<Vec<u8>, CoreError> {
        self.secrets
            .open(&factor.secret_sealed)
            .map_err(|e| CoreError::internal("open second factor", e))
    }

    /// A ticket for the second step of `user`'s sign-in.
    pub(crate) fn ticket(&self, user: UserId) -> Result<String, CoreError> {
        sealed::seal(&self.secrets, TICKET, TICKET_SECONDS, &[&user.to_string()])
    }

    fn open_ticket(&self, ticket: &str) -> Option<UserId> {
        let fields = sealed::open(&self.secrets, TICKET, ticket, Timestamp::now())?;
        fields.first()?.parse().ok()
    }

    /// A sign-in with an outside provider under way (its `state`, `nonce`,
    /// PKCE verifier and where it goes next), sealed for the browser to
    /// carry to the provider and back: ten minutes.
    pub fn seal_sign_in_flow(&self, fields: &[&str]) -> Result<String, CoreError> {
        sealed::seal(&self.secrets, FLOW, i64::from(SIGN_IN_FLOW_SECONDS), fields)
    }

    /// The fields of a sealed sign-in flow, if it is one and fresh.
    pub fn open_sign_in_flow(&self, text: &str) -> Option<Vec<String>> {
        sealed::open(&self.secrets, FLOW, text, Timestamp::now())
    }
}

fn unix_now() -> u64 {
    u64::try_from(Timestamp::now().as_second()).unwrap_or(0)
}

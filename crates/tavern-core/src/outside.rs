//! Signing in with an outside account (an OpenID Connect provider's or
//! Discord's): who it is in Tavern (the user it was linked to; else, if
//! allowed, the user whose address the provider vouches for; else, if
//! allowed, a new game master), which role its groups give, accepting an
//! invitation with one, and linking and unlinking. Discord accounts are
//! linked where the bot links them (the user's Discord id). The protocol
//! itself is the HTTP edge's (tavern-sso); this decides.

use std::net::IpAddr;

use jiff::Timestamp;
use tavern_store::{Identity, Invite, NewEvent, StoreError, User, now};
use tavern_types::{Role, UserId, Username};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// Tavern's name for Discord, whose accounts are linked as the bot links
/// them.
pub const DISCORD: &str = "discord";

/// What a provider says of who signed in (its checked ID token, or
/// Discord's API).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsideAccount {
    /// The provider, as Tavern names it (`oidc`, `discord`).
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// A name to make a username from, for a new account.
    pub name: Option<String>,
    pub groups: Vec<String>,
}

/// What a provider's accounts may do (`[auth.oidc]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsidePolicy {
    /// Someone with no Tavern account becomes a game master (of `tier`).
    pub sign_up: bool,
    pub tier: Option<String>,
    /// An account not linked yet is linked to the user with its e-mail
    /// address, when the provider vouches for the address.
    pub link_verified_email: bool,
    /// Members of any of these groups are admins, everyone else a game
    /// master (set at every sign-in); empty: roles are Tavern's own.
    pub admin_groups: Vec<String>,
    /// Only members of these groups may sign in at all; empty: anyone.
    pub allowed_groups: Vec<String>,
    /// With `sign_up`, only members of these groups may sign up (a Discord
    /// guild, or its roles); empty: anyone.
    pub sign_up_groups: Vec<String>,
}

/// An outside account linked to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedAccount {
    pub provider: String,
    pub subject: String,
    /// When (not kept for Discord accounts, which the bot links too).
    pub linked_at: Option<Timestamp>,
}

fn in_any(account: &OutsideAccount, groups: &[String]) -> bool {
    account.groups.iter().any(|g| groups.contains(g))
}

/// Whether the account may use this Tavern at all (`allowed_groups`),
/// however it comes: signing in, or accepting an invitation.
pub fn allowed(account: &OutsideAccount, policy: &OutsidePolicy) -> Result<(), &'static str> {
    if !policy.allowed_groups.is_empty() && !in_any(account, &policy.allowed_groups) {
        return Err("your account is not in a group allowed to use this Tavern");
    }
    Ok(())
}

/// Who an outside sign-in is, decided from what the store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The user the account is linked to.
    SignIn(UserId),
    /// The user with the vouched-for address: link, then sign in.
    Link(UserId),
    /// A new account.
    SignUp,
    /// Nobody (the reason, for the person).
    Refuse(&'static str),
}

/// Decides who an outside sign-in is: `linked` is the user the account is
/// linked to, `by_email` the user with its address (if any).
pub fn decide(
    account: &OutsideAccount,
    policy: &OutsidePolicy,
    linked: Option<&User>,
    by_email: Option<&User>,
) -> Decision {
    if let Err(why) = allowed(account, policy) {
        return Decision::Refuse(why);
    }
    if let Some(user) = linked {
        return Decision::SignIn(user.id);
    }
    if let (true, true, Some(user)) = (policy.link_verified_email, account.email_verified, by_email)
    {
        return Decision::Link(user.id);
    }
    if policy.sign_up {
        if policy.sign_up_groups.is_empty() || in_any(account, &policy.sign_up_groups) {
            return Decision::SignUp;
        }
        return Decision::Refuse(
            "only members of the community (with the role it asks for) may sign up here: \
             ask your community's admin for an invitation",
        );
    }
    Decision::Refuse(
        "no Tavern account is linked to this account: sign in with your password and link it on \
         your account page, or ask your community's admin for an invitation",
    )
}

/// The role the account's groups give, when groups decide roles.
pub fn role_of(account: &OutsideAccount, policy: &OutsidePolicy) -> Option<Role> {
    if policy.admin_groups.is_empty() {
        return None;
    }
    Some(if in_any(account, &policy.admin_groups) {
        Role::Admin
    } else {
        Role::Gm
    })
}

/// A username made from what the provider says (its name, else its
/// address's local part, else `player`): lowercase letters, digits and
/// dashes, at most 28 characters (room for a number to make it unique).
pub fn username_base(account: &OutsideAccount) -> String {
    let source = account
        .name
        .clone()
        .or_else(|| {
            account
                .email
                .as_ref()
                .map(|e| e.split('@').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    let mut name = String::new();
    for c in source.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name.trim_matches('-').chars().take(28).collect();
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        "player".to_owned()
    } else {
        name
    }
}

impl Tavern {
    /// Signs in (or up) with an outside account the edge has checked;
    /// recorded as `auth.login` with the provider.
    pub async fn sign_in_outside(
        &self,
        account: &OutsideAccount,
        policy: &OutsidePolicy,
        ip: Option<IpAddr>,
    ) -> Result<(String, User), CoreError> {
        let linked = self.linked_user(account).await?;
        let by_email = match (&linked, &account.email) {
            (None, Some(email)) if account.email_verified => {
                self.store.user_by_email(&email.to_lowercase()).await?
            }
            _ => None,
        };
        let user = match decide(account, policy, linked.as_ref(), by_email.as_ref()) {
            Decision::SignIn(_) => linked.ok_or(CoreError::Unauthenticated)?,
            Decision::Link(_) => {
                let user = by_email.ok_or(CoreError::Unauthenticated)?;
                self.link(&user, account, "linked by its verified e-mail address")
                    .await?;
                user
            }
            Decision::SignUp => self.sign_up_outside(account, policy).await?,
            Decision::Refuse(why) => {
                tracing::warn!(provider = %account.provider, ?ip, "outside sign-in refused: {why}");
                return Err(CoreError::Forbidden(why.to_owned()));
            }
        };
        let user = match role_of(account, policy) {
            Some(role) if role != user.role => self.set_role(&user, role).await?,
            _ => user,
        };
        let token = self.sign_in_token(&user, &account.provider).await?;
        Ok((token, user))
    }

    async fn sign_up_outside(
        &self,
        account: &OutsideAccount,
        policy: &OutsidePolicy,
    ) -> Result<User, CoreError> {
        let tier = policy
            .tier
            .clone()
            .map(|t| self.check_tier(&t))
            .transpose()?;
        let role = role_of(account, policy).unwrap_or(Role::Gm);
        self.new_outside_user(account, role, tier, None).await
    }

    /// Accepts an invitation with an outside account (one its provider's
    /// `policy` allows): a new user with the invitation's role and tier,
    /// named after the account and linked to it, signed in.
    pub async fn accept_invite_outside(
        &self,
        code: &str,
        account: &OutsideAccount,
        policy: &OutsidePolicy,
    ) -> Result<(String, User), CoreError> {
        allowed(account, policy).map_err(|why| CoreError::Forbidden(why.to_owned()))?;
        let invite = self.invite_by_code(code).await?;
        if self.linked_user(account).await?.is_some() {
            return Err(CoreError::Conflict {
                code: "account_linked",
                message: "that account signs in to Tavern already: sign in with it instead".into(),
            });
        }
        let user = self
            .new_outside_user(account, invite.role, invite.tier.clone(), Some(&invite))
            .await?;
        let token = self.sign_in_token(&user, &account.provider).await?;
        Ok((token, user))
    }

    /// A new user for an outside account (by an invitation, spending one
    /// use, or signing up), named after it, and linked to it.
    async fn new_outside_user(
        &self,
        account: &OutsideAccount,
        role: Role,
        tier: Option<String>,
        invite: Option<&Invite>,
    ) -> Result<User, CoreError> {
        let base = username_base(account);
        for n in 1..=50u32 {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let username = Username::parse(&candidate)
                .map_err(|e| CoreError::internal("make a username", e))?;
            let user = User {
                id: UserId::new(),
                username,
                role,
                password_hash: None,
                created_at: now(),
                tier: tier.clone(),
                email: None,
            };
            let by = user.username.as_str();
            let created = match invite {
                Some(invite) => {
                    let event =
                        NewEvent::success(by, "invite.accept", format!("invite:{}", invite.id))
                            .with_detail(format!(
                                "user {} ({}) with {}",
                                user.username, user.role, account.provider
                            ));
                    self.store
                        .accept_invite(&invite.code_hash, &user, &event)
                        .await
                        .map(|_| ())
                }
                None => {
                    let event =
                        NewEvent::success(by, "user.create", format!("user:{}", user.username))
                            .with_detail(format!("signed up with {}", account.provider));
                    self.store.create_user(&user, &event).await
                }
            };
            match created {
                Ok(()) => {
                    let how = if invite.is_some() {
                        "accepted an invitation"
                    } else {
                        "signed up"
                    };
                    self.link(&user, account, how).await?;
                    return Ok(user);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) if invite.is_some() => {
                    return Err(CoreError::NotFound {
                        what: "invite",
                        key: "(this code)".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict {
            code: "username_taken",
            message: format!("no free username near {base}"),
        })
    }

    /// The user an outside account is linked to.
    async fn linked_user(&self, account: &OutsideAccount) -> Result<Option<User>, CoreError> {
        Ok(if account.provider == DISCORD {
            self.store.user_by_discord(&account.subject).await?
        } else {
            self.store
                .user_by_identity(&account.provider, &account.subject)
                .await?
        })
    }

    /// A user's linked outside accounts.
    async fn linked_accounts(&self, user: UserId) -> Result<Vec<LinkedAccount>, CoreError> {
        let mut all: Vec<LinkedAccount> = self
            .store
            .identities(user)
            .await?
            .into_iter()
            .map(|i| LinkedAccount {
                provider: i.provider,
                subject: i.subject,
                linked_at: Some(i.linked_at),
            })
            .collect();
        if let Some(id) = self.store.discord_of(user).await? {
            all.push(LinkedAccount {
                provider: DISCORD.to_owned(),
                subject: id,
                linked_at: None,
            });
        }
        Ok(all)
    }

    /// Gives `user` the role their provider's groups say.
    async fn set_role(&self, user: &User, role: Role) -> Result<User, CoreError> {
        Ok(self
            .store
            .set_user_role(
                user.id,
                role,
                &NewEvent::success("system", "user.role", format!("user:{}", user.username))
                    .with_detail(format!("{role}, as the identity provider's groups say")),
            )
            .await?)
    }

    async fn link(
        &self,
        user: &User,
        account: &OutsideAccount,
        how: &str,
    ) -> Result<(), CoreError> {
        let event = NewEvent::success(
            user.username.as_str(),
            "user.link",
            format!("user:{}", user.username),
        )
        .with_detail(format!("{}: {how}", account.provider));
        let taken = || CoreError::Conflict {
            code: "account_linked",
            message: "that account is linked to another Tavern user already".into(),
        };
        if account.provider == DISCORD {
            if let Some(other) = self.store.user_by_discord(&account.subject).await?
                && other.id != user.id
            {
                return Err(taken());
            }
            return Ok(self
                .store
                .link_discord(user.id, Some(&account.subject), &event)
                .await?);
        }
        let identity = Identity {
            provider: account.provider.clone(),
            subject: account.subject.clone(),
            user: user.id,
            linked_at: now(),
        };
        match self.store.link_identity(&identity, &event).await {
            Err(StoreError::Conflict { .. }) => Err(taken()),
            other => other.map_err(CoreError::from),
        }
    }

    /// Links an outside account to the caller (who signed in otherwise).
    pub async fn link_outside(
        &self,
        caller: &Caller,
        account: &OutsideAccount,
    ) -> Result<(), CoreError> {
        if self
            .linked_accounts(caller.user.id)
            .await?
            .iter()
            .any(|i| i.provider == account.provider)
        {
            return Err(CoreError::Conflict {
                code: "account_linked",
                message: "you have an account of this provider linked already: unlink it first"
                    .into(),
            });
        }
        self.link(&caller.user, account, "linked by its user").await
    }

    /// The caller's linked outside accounts.
    pub async fn outside_accounts(&self, caller: &Caller) -> Result<Vec<LinkedAccount>, CoreError> {
        self.linked_accounts(caller.user.id).await
    }

    /// Unlinks a user's account of `provider`: the caller's own, or (an
    /// admin) anyone's by name.
    pub async fn unlink_outside(
        &self,
        caller: &Caller,
        username: Option<&str>,
        provider: &str,
    ) -> Result<(), CoreError> {
        let user = match username {
            Some(name) => {
                caller.require_admin("unlink another user's account")?;
                self.user_named("username", name).await?
            }
            None => caller.user.clone(),
        };
        let event = NewEvent::success(
            caller.name(),
            "user.unlink",
            format!("user:{}", user.username),
        )
        .with_detail(provider.to_owned());
        let unlinked = if provider == DISCORD {
            let linked = self.store.discord_of(user.id).await?.is_some();
            if linked {
                self.store.link_discord(user.id, None, &event).await?;
            }
            linked
        } else {
            self.store
                .unlink_identity(user.id, provider, &event)
                .await?
        };
        if unlinked {
            Ok(())
        } else {
            Err(CoreError::NotFound {
                what: "linked account",
                key: format!("{}:{provider}", user.username),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: UserId::new(),
            username: Username::parse(name).unwrap(),
            role: Role::Gm,
            password_hash: None,
            created_at: now(),
            tier: None,
            email: Some(format!("{name}@example.org")),
        }
    }

    fn account(verified: bool, groups: &[&str]) -> OutsideAccount {
        OutsideAccount {
            provider: "oidc".into(),
            subject: "s1".into(),
            email: Some("ann@example.org".into()),
            email_verified: verified,
            name: Some("Ann Smith".into()),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn a_linked_account_signs_in_and_an_address_links_only_when_vouched_for_and_allowed() {
        let ann = user("ann");
        let open = OutsidePolicy::default();
        assert_eq!(
            decide(&account(false, &[]), &open, Some(&ann), None),
            Decision::SignIn(ann.id)
        );
        // An address alone never links.
        assert!(matches!(
            decide(&account(true, &[]), &open, None, Some(&ann)),
            Decision::Refuse(_)
        ));
        let by_mail = OutsidePolicy {
            link_verified_email: true,
            ..open.clone()
        };
        assert!(matches!(
            decide(&account(false, &[]), &by_mail, None, Some(&ann)),
            Decision::Refuse(_)
        ));
        assert_eq!(
            decide(&account(true, &[]), &by_mail, None, Some(&ann)),
            Decision::Link(ann.id)
        );
        let sign_up = OutsidePolicy {
            sign_up: true,
            ..open.clone()
        };
        assert_eq!(
            decide(&account(false, &[]), &sign_up, None, None),
            Decision::SignUp
        );
        // Groups gate everything, a linked account too.
        let gated = OutsidePolicy {
            allowed_groups: vec!["players".into()],
            ..sign_up
        };
        assert!(matches!(
            decide(&account(true, &["other"]), &gated, Some(&ann), None),
            Decision::Refuse(_)
        ));
        assert_eq!(
            decide(&account(true, &["players"]), &gated, None, None),
            Decision::SignUp
        );
        // An invitation does not let in an account the groups keep out.
        assert!(allowed(&account(true, &["other"]), &gated).is_err());
        assert!(allowed(&account(true, &["players"]), &gated).is_ok());
    }

    #[test]
    fn groups_give_roles_only_when_asked_to() {
        let policy = OutsidePolicy {
            admin_groups: vec!["tavern-admins".into()],
            ..Default::default()
        };
        assert_eq!(
            role_of(&account(true, &["tavern-admins"]), &policy),
            Some(Role::Admin)
        );
        assert_eq!(
            role_of(&account(true, &["players"]), &policy),
            Some(Role::Gm)
        );
        assert_eq!(
            role_of(
                &account(true, &["tavern-admins"]),
                &OutsidePolicy::default()
            ),
            None
        );
    }

    #[test]
    fn only_members_of_the_sign_up_groups_sign_up_and_linked_accounts_need_none() {
        let ann = user("ann");
        let guild = OutsidePolicy {
            sign_up: true,
            sign_up_groups: vec!["guild".into(), "players".into()],
            ..OutsidePolicy::default()
        };
        assert_eq!(
            decide(&account(false, &["players"]), &guild, None, None),
            Decision::SignUp
        );
        assert!(matches!(
            decide(&account(false, &["other"]), &guild, None, None),
            Decision::Refuse(_)
        ));
        assert!(matches!(
            decide(&account(false, &[]), &guild, None, None),
            Decision::Refuse(_)
        ));
        // Someone already linked signs in, in the guild or not.
        assert_eq!(
            decide(&account(false, &[]), &guild, Some(&ann), None),
            Decision::SignIn(ann.id)
        );
    }

    #[test]
    fn usernames_are_made_from_names_or_addresses() {
        assert_eq!(username_base(&account(true, &[])), "ann-smith");
        let mut a = account(true, &[]);
        a.name = None;
        a.email = Some("Bob.Jones+x@example.org".into());
        assert_eq!(username_base(&a), "bob-jones-x");
        a.email = None;
        assert_eq!(username_base(&a), "player");
        a.name = Some("--Élodie  Ü--".into());
        assert_eq!(username_base(&a), "lodie");
        a.name = Some("x".repeat(60));
        assert_eq!(username_base(&a).len(), 28);
        for name in ["Ann Smith", "a--b", "ÅÄÖ", "9", "-"] {
            a.name = Some(name.into());
            assert!(Username::parse(&username_base(&a)).is_ok(), "{name}");
        }
    }
}

//! Signing in with an outside account (an OpenID Connect provider's): who
//! it is in Tavern (the user it was linked to; else, if allowed, the user
//! whose address the provider vouches for; else, if allowed, a new game
//! master), which role its groups give, and linking and unlinking. The
//! protocol itself is the HTTP edge's (tavern-sso); this decides.

use std::net::IpAddr;

use tavern_store::{Identity, NewEvent, User, now};
use tavern_types::{Role, UserId, Username};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// What a provider's checked ID token says of who signed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsideAccount {
    /// The provider, as Tavern names it (`oidc`).
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
    if !policy.allowed_groups.is_empty()
        && !account
            .groups
            .iter()
            .any(|g| policy.allowed_groups.contains(g))
    {
        return Decision::Refuse("your account is not in a group allowed to use this Tavern");
    }
    if let Some(user) = linked {
        return Decision::SignIn(user.id);
    }
    if let (true, true, Some(user)) = (policy.link_verified_email, account.email_verified, by_email)
    {
        return Decision::Link(user.id);
    }
    if policy.sign_up {
        return Decision::SignUp;
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
    Some(
        if account
            .groups
            .iter()
            .any(|g| policy.admin_groups.contains(g))
        {
            Role::Admin
        } else {
            Role::Gm
        },
    )
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
        let linked = self
            .store
            .user_by_identity(&account.provider, &account.subject)
            .await?;
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
                role: role_of(account, policy).unwrap_or(Role::Gm),
                password_hash: None,
                created_at: now(),
                tier: tier.clone(),
                email: None,
            };
            let created = self
                .store
                .create_user(
                    &user,
                    &NewEvent::success(
                        user.username.as_str(),
                        "user.create",
                        format!("user:{}", user.username),
                    )
                    .with_detail(format!("signed up with {}", account.provider)),
                )
                .await;
            match created {
                Ok(()) => {
                    self.link(&user, account, "signed up").await?;
                    return Ok(user);
                }
                Err(tavern_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict {
            code: "username_taken",
            message: format!("no free username near {base}"),
        })
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
        let identity = Identity {
            provider: account.provider.clone(),
            subject: account.subject.clone(),
            user: user.id,
            linked_at: now(),
        };
        let event = NewEvent::success(
            user.username.as_str(),
            "user.link",
            format!("user:{}", user.username),
        )
        .with_detail(format!("{}: {how}", account.provider));
        match self.store.link_identity(&identity, &event).await {
            Err(tavern_store::StoreError::Conflict { .. }) => Err(CoreError::Conflict {
                code: "account_linked",
                message: "that account is linked to another Tavern user already".into(),
            }),
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
            .store
            .identities(caller.user.id)
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
    pub async fn outside_accounts(&self, caller: &Caller) -> Result<Vec<Identity>, CoreError> {
        Ok(self.store.identities(caller.user.id).await?)
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
        let unlinked = self
            .store
            .unlink_identity(
                user.id,
                provider,
                &NewEvent::success(
                    caller.name(),
                    "user.unlink",
                    format!("user:{}", user.username),
                )
                .with_detail(provider.to_owned()),
            )
            .await?;
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

//! Supporters: Ko-fi's payment notices (checked against the verification
//! token, recorded once per transaction), matched to users by a link code
//! in the message, the user's e-mail address or an earlier payment; link
//! codes; and the supporters an admin sees.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use subtle::ConstantTimeEq as _;
use tavern_store::{NewEvent, Payment, User, now};
use tavern_types::{UserId, Username};

use crate::auth::Caller;
use crate::auth::token_hash;
use crate::checks;
use crate::error::CoreError;
use crate::policy::supporters as policy;
use crate::settings::KofiSettings;
use crate::tavern::Tavern;

/// How long a link code may be used.
pub const LINK_CODE_MINUTES: i64 = 60;

/// A Ko-fi payment notice as it arrived (the JSON of its `data` field),
/// before it is checked.
#[derive(Clone, Debug, Default)]
pub struct KofiNotice {
    pub verification_token: String,
    pub message_id: String,
    pub kofi_transaction_id: String,
    pub timestamp: String,
    /// `type`: Donation, Subscription, Commission or Shop Order.
    pub kind: String,
    pub from_name: String,
    pub email: Option<String>,
    pub amount: String,
    pub currency: String,
    pub is_subscription_payment: bool,
    pub is_first_subscription_payment: bool,
    pub tier_name: Option<String>,
    pub message: Option<String>,
}

/// What became of a notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KofiReceipt {
    /// Recorded now; for this user when known.
    Recorded { user: Option<Username> },
    /// That transaction was recorded before: nothing changed.
    Replayed,
}

/// One supporter as an admin sees them: a user, or a payer not yet
/// matched to one (by e-mail address, else by name).
#[derive(Clone, Debug)]
pub struct SupporterView {
    pub user: Option<Username>,
    pub from_name: String,
    pub email: Option<String>,
    pub payments: usize,
    /// Totals per currency, in hundredths.
    pub totals: BTreeMap<String, i64>,
    pub last_paid_at: Timestamp,
    /// The quota tier their subscription gives, and until when.
    pub tier: Option<(String, Timestamp)>,
    /// Credit this month, in the usage currency.
    pub credit: f64,
}

fn bad(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::invalid("malformed_payment", field, message)
}

/// Checks a notice's fields and makes the payment to record.
fn payment_of(n: &KofiNotice, at: Timestamp) -> Result<Payment, CoreError> {
    let required = |field: &'static str, v: &str| {
        if v.trim().is_empty() || v.len() > 200 || policy::clean_text(v, 200) != v.trim() {
            Err(bad(
                field,
                format!("{field} must be 1 to 200 characters, without controls"),
            ))
        } else {
            Ok(v.trim().to_owned())
        }
    };
    let kind = policy::payment_kind(&n.kind).ok_or_else(|| {
        bad(
            "type",
            format!(
                "type {:?} is none of Donation, Subscription, Commission, Shop Order",
                n.kind
            ),
        )
    })?;
    let amount_cents = policy::amount_cents(n.amount.trim())
        .ok_or_else(|| bad("amount", format!("amount {:?} is not like 3.00", n.amount)))?;
    let currency = n.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad(
            "currency",
            format!("currency {:?} is not a code like USD", n.currency),
        ));
    }
    let paid_at: Timestamp = n.timestamp.trim().parse().map_err(|_| {
        bad(
            "timestamp",
            format!(
                "timestamp {:?} is not like 2026-11-26T13:04:30Z",
                n.timestamp
            ),
        )
    })?;
    // An address that is not one (controls, spaces, reordering marks) is
    // not kept: it could match nobody, and would only mislead when shown.
    let email = match n.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(e) if e.len() > 254 => {
            return Err(bad("email", "email is longer than 254 characters"));
        }
        Some(e) if e.chars().any(|c| c.is_whitespace() || c.is_control()) => None,
        Some(e) => {
            let cleaned = policy::clean_text(e, 254);
            (cleaned == e)
                .then(|| checks::email(&cleaned).ok())
                .flatten()
        }
    };
    Ok(Payment {
        transaction: required("kofi_transaction_id", &n.kofi_transaction_id)?,
        message_id: required("message_id", &n.message_id)?,
        kind,
        from_name: policy::clean_text(&n.from_name, 200),
        email,
        amount_cents,
        currency,
        tier_name: n
            .tier_name
            .as_deref()
            .map(|t| policy::clean_text(t, 200))
            .filter(|t| !t.is_empty()),
        first_subscription: n.is_first_subscription_payment,
        paid_at,
        recorded_at: at,
        user: None,
    })
}

/// `3.50 USD`.
fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

impl Tavern {
    fn kofi(&self) -> Result<&KofiSettings, CoreError> {
        self.settings.kofi.as_ref().ok_or(CoreError::NotFound {
            what: "Ko-fi webhook",
            key: "[kofi] verification_token is not configured".into(),
        })
    }

    /// Takes a Ko-fi notice: refused (unauthenticated) unless its token is
    /// the configured one, compared in constant time; recorded once per
    /// transaction; given to its supporter's user when known, with every
    /// earlier payment from the same address that waited for them.
    pub async fn kofi_payment(&self, notice: &KofiNotice) -> Result<KofiReceipt, CoreError> {
        let kofi = self.kofi()?;
        let given = notice.verification_token.as_bytes();
        if !bool::from(given.ct_eq(kofi.verification_token.as_bytes())) {
            tracing::warn!("a Ko-fi notice with a wrong verification token was refused");
            return Err(CoreError::Unauthenticated);
        }
        let at = now();
        let payment = payment_of(notice, at)?;
        let recorded = self
            .store
            .record_payment(
                &payment,
                &NewEvent::success(
                    "kofi",
                    "payment.record",
                    format!("payment:{}", payment.transaction),
                )
                .with_detail(format!(
                    "{} of {} from {}",
                    payment.kind.as_str(),
                    money(payment.amount_cents, &payment.currency),
                    payment.from_name
                )),
            )
            .await?;
        if !recorded {
            // Ko-fi sends a notice again when it had no answer: if matching
            // its supporter failed that first time, it is tried again.
            let waiting = self
                .store
                .payment(&payment.transaction)
                .await?
                .is_some_and(|p| p.user.is_none());
            if waiting
                && let Some(user) = self.payer_of(&payment, notice.message.as_deref()).await?
            {
                self.assign_to(&user, &payment).await?;
            }
            return Ok(KofiReceipt::Replayed);
        }
        let user = self.payer_of(&payment, notice.message.as_deref()).await?;
        if let Some(user) = &user {
            self.assign_to(user, &payment).await?;
        }
        Ok(KofiReceipt::Recorded {
            user: user.map(|u| u.username),
        })
    }

    /// Gives `user` this payment and those waiting from the same address.
    async fn assign_to(&self, user: &User, payment: &Payment) -> Result<(), CoreError> {
        self.store
            .assign_payments(
                user.id,
                Some(&payment.transaction),
                payment.email.as_deref(),
                &NewEvent::success("kofi", "payment.assign", format!("user:{}", user.username)),
            )
            .await?;
        Ok(())
    }

    /// Who a payment is from: the user whose link code its message holds,
    /// else the user with its e-mail address, else the user an earlier
    /// payment from that address went to.
    async fn payer_of(
        &self,
        payment: &Payment,
        message: Option<&str>,
    ) -> Result<Option<User>, CoreError> {
        if let Some(code) = message.and_then(policy::find_link_code) {
            match self.store.take_link_code(&token_hash(&code), now()).await? {
                Some(id) => return Ok(self.store.user(id).await?),
                None => tracing::warn!(
                    payment = %payment.transaction,
                    "a Ko-fi message held an unknown or expired link code"
                ),
            }
        }
        let Some(email) = payment.email.as_deref() else {
            return Ok(None);
        };
        if let Some(user) = self.store.user_by_email(email).await? {
            return Ok(Some(user));
        }
        match self.store.payer(email).await? {
            Some(id) => Ok(self.store.user(id).await?),
            None => Ok(None),
        }
    }

    /// A new one-time code that ties something outside Tavern (a Ko-fi
    /// message, a Discord account) to the caller, for an hour.
    pub async fn new_link_code(&self, caller: &Caller) -> Result<(String, Timestamp), CoreError> {
        let code = policy::link_code(rand::random());
        let hash = token_hash(&policy::normalize_link_code(&code).expect("a code we made"));
        let expires_at = now() + SignedDuration::from_mins(LINK_CODE_MINUTES);
        self.store
            .create_link_code(
                &hash,
                caller.user.id,
                expires_at,
                &NewEvent::success(
                    caller.user.username.as_str(),
                    "user.link_code",
                    format!("user:{}", caller.user.username),
                ),
            )
            .await?;
        Ok((code, expires_at))
    }

    /// Sets or clears a user's e-mail address (admins only): Ko-fi payments
    /// from it count for them, those already received included.
    pub async fn set_user_email(
        &self,
        caller: &Caller,
        username: &str,
        email: Option<&str>,
    ) -> Result<User, CoreError> {
        caller.require_admin("set e-mail addresses")?;
        let target = self.user_named("user", username).await?;
        let email = email.map(checks::email).transpose()?;
        let event = NewEvent::success(
            caller.user.username.as_str(),
            "user.email",
            format!("user:{}", target.username),
        );
        let user = self
            .store
            .set_user_email(target.id, email.as_deref(), &event)
            .await
            .map_err(|e| match e {
                tavern_store::StoreError::Conflict { .. } => CoreError::Conflict {
                    code: "email_taken",
                    message: "another user has that e-mail address".into(),
                },
                e => e.into(),
            })?;
        if let Some(e) = &email {
            let n = self
                .store
                .assign_payments(
                    user.id,
                    None,
                    Some(e),
                    &NewEvent::success(
                        caller.user.username.as_str(),
                        "payment.assign",
                        format!("user:{}", user.username),
                    ),
                )
                .await?;
            if n > 0 {
                tracing::info!(user = %user.username, payments = n, "earlier Ko-fi payments now count for this user");
            }
        }
        Ok(user)
    }

    /// The quota tier a supporter's subscription gives `user` now.
    pub(crate) async fn supporter_tier_of(
        &self,
        user: UserId,
    ) -> Result<Option<(String, Timestamp)>, CoreError> {
        let Some(kofi) = self.settings.kofi.as_ref().filter(|k| !k.tiers.is_empty()) else {
            return Ok(None);
        };
        let payments = self.store.list_payments(Some(user)).await?;
        Ok(policy::supporter_tier(&payments, &kofi.tiers, now()))
    }

    /// Credit per user in `[from, to)` (only `owner`'s when given).
    pub(crate) async fn credits(
        &self,
        owner: Option<UserId>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<BTreeMap<UserId, f64>, CoreError> {
        let payments = self.store.list_payments(owner).await?;
        let tiers = self.kofi_tiers();
        let mut by_user: BTreeMap<UserId, Vec<Payment>> = BTreeMap::new();
        for p in payments {
            if let Some(u) = p.user {
                by_user.entry(u).or_default().push(p);
            }
        }
        Ok(by_user
            .into_iter()
            .map(|(u, ps)| {
                let c =
                    policy::credit_between(&ps, &tiers, &self.settings.usage_currency, from, to);
                (u, c)
            })
            .collect())
    }

    fn kofi_tiers(&self) -> BTreeMap<String, String> {
        self.settings
            .kofi
            .as_ref()
            .map(|k| k.tiers.clone())
            .unwrap_or_default()
    }

    /// Everyone who has paid through Ko-fi, latest payment first (admins
    /// only).
    pub async fn supporters(&self, caller: &Caller) -> Result<Vec<SupporterView>, CoreError> {
        caller.require_admin("see supporters")?;
        let payments = self.store.list_payments(None).await?;
        let tiers = self.kofi_tiers();
        let (from, to) = crate::policy::quotas::month_of(now());
        let mut groups: BTreeMap<String, Vec<Payment>> = BTreeMap::new();
        for p in payments {
            let key = match (p.user, &p.email) {
                (Some(u), _) => format!("user:{u}"),
                (None, Some(e)) => format!("email:{e}"),
                (None, None) => format!("name:{}", p.from_name),
            };
            groups.entry(key).or_default().push(p);
        }
        let users: BTreeMap<UserId, Username> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        let mut out: Vec<SupporterView> = groups
            .into_values()
            .map(|ps| {
                let latest = ps.iter().max_by_key(|p| p.paid_at).expect("a group");
                let mut totals = BTreeMap::new();
                for p in &ps {
                    *totals.entry(p.currency.clone()).or_insert(0) += p.amount_cents;
                }
                SupporterView {
                    user: latest.user.and_then(|u| users.get(&u).cloned()),
                    from_name: latest.from_name.clone(),
                    email: latest.email.clone(),
                    payments: ps.len(),
                    totals,
                    last_paid_at: latest.paid_at,
                    tier: policy::supporter_tier(&ps, &tiers, now()),
                    credit: policy::credit_between(
                        &ps,
                        &tiers,
                        &self.settings.usage_currency,
                        from,
                        to,
                    ),
                }
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.last_paid_at));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tavern_store::PaymentKind;

    use super::*;

    fn notice() -> KofiNotice {
        KofiNotice {
            verification_token: "t".into(),
            message_id: "3a1fac0c-f960-4506-a60e-824979a74e74".into(),
            kofi_transaction_id: "0a1fac0c-f960-4506-a60e-824979a74e71".into(),
            timestamp: "2022-08-21T13:04:30Z".into(),
            kind: "Donation".into(),
            from_name: "Ko-fi Team".into(),
            email: Some(" Someone@Example.com ".into()),
            amount: "3.00".into(),
            currency: "USD".into(),
            message: Some("Good luck with the integration!".into()),
            ..KofiNotice::default()
        }
    }

    #[test]
    fn a_notice_becomes_a_payment() {
        let p = payment_of(&notice(), now()).unwrap();
        assert_eq!(p.kind, PaymentKind::Donation);
        assert_eq!(p.amount_cents, 300);
        assert_eq!(p.email.as_deref(), Some("someone@example.com"));
        assert_eq!(p.paid_at.to_string(), "2022-08-21T13:04:30Z");
        assert_eq!(p.user, None);
    }

    #[test]
    fn malformed_notices_are_refused_by_field() {
        type Spoil = fn(&mut KofiNotice);
        let cases: [(&str, Spoil); 6] = [
            ("type", |n| n.kind = "Gift".into()),
            ("amount", |n| n.amount = "three".into()),
            ("currency", |n| n.currency = "dollars".into()),
            ("timestamp", |n| n.timestamp = "yesterday".into()),
            ("kofi_transaction_id", |n| {
                n.kofi_transaction_id = " ".into();
            }),
            ("message_id", |n| n.message_id = String::new()),
        ];
        for (field, spoil) in cases {
            let mut n = notice();
            spoil(&mut n);
            match payment_of(&n, now()) {
                Err(CoreError::Invalid { field: f, code, .. }) => {
                    assert_eq!((f, code), (field, "malformed_payment"));
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn money_reads_naturally() {
        assert_eq!(money(350, "USD"), "3.50 USD");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
    }
}

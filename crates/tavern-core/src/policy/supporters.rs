//! What supporters' payments buy, and reading Ko-fi's notices: a donation
//! is credit against the month's cost; a subscription to a Ko-fi tier that
//! `[kofi.tiers]` maps puts its payer on that quota tier until 35 days after
//! the last payment. Pure: payments, settings and a clock in.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tavern_store::{Payment, PaymentKind};

/// How long one subscription payment keeps its tier: a month and a few
/// days' grace for a late renewal.
pub const TIER_DAYS: i64 = 35;

/// The quota tier `payments` (one user's) give at `now`: that of the
/// latest mapped subscription payment, if it is recent enough, with the
/// moment it lapses.
pub fn supporter_tier(
    payments: &[Payment],
    tiers: &BTreeMap<String, String>,
    now: Timestamp,
) -> Option<(String, Timestamp)> {
    let (tier, paid_at) = payments
        .iter()
        .filter(|p| p.kind == PaymentKind::Subscription)
        .filter_map(|p| {
            let tier = tiers.get(p.tier_name.as_deref()?)?;
            Some((tier, p.paid_at))
        })
        .max_by_key(|(_, paid_at)| *paid_at)?;
    let until = paid_at + SignedDuration::from_hours(24 * TIER_DAYS);
    (until > now).then(|| (tier.clone(), until))
}

/// Whether a payment is credit: donations, and subscriptions to a Ko-fi
/// tier that maps to no quota tier. Commissions and shop orders pay for
/// something else.
pub fn is_credit(p: &Payment, tiers: &BTreeMap<String, String>) -> bool {
    match p.kind {
        PaymentKind::Donation => true,
        PaymentKind::Subscription => p.tier_name.as_ref().is_none_or(|t| !tiers.contains_key(t)),
        PaymentKind::Commission | PaymentKind::ShopOrder => false,
    }
}

/// The credit `payments` give in `[from, to)`, in `currency` (payments in
/// another currency are not converted and count for nothing).
pub fn credit_between(
    payments: &[Payment],
    tiers: &BTreeMap<String, String>,
    currency: &str,
    from: Timestamp,
    to: Timestamp,
) -> f64 {
    let cents: i64 = payments
        .iter()
        .filter(|p| from <= p.paid_at && p.paid_at < to)
        .filter(|p| p.currency.eq_ignore_ascii_case(currency))
        .filter(|p| is_credit(p, tiers))
        .map(|p| p.amount_cents)
        .sum();
    cents as f64 / 100.0
}

/// Ko-fi's `type`.
pub fn payment_kind(s: &str) -> Option<PaymentKind> {
    match s {
        "Donation" => Some(PaymentKind::Donation),
        "Subscription" => Some(PaymentKind::Subscription),
        "Commission" => Some(PaymentKind::Commission),
        "Shop Order" => Some(PaymentKind::ShopOrder),
        _ => None,
    }
}

/// Ko-fi's `amount` ("3.00") in hundredths; `None` unless it is digits
/// with at most two decimals, and not absurdly large.
pub fn amount_cents(s: &str) -> Option<i64> {
    let (whole, frac) = match s.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (s, ""),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 12 || frac.len() > 2 || !digits(whole) || !digits(frac) {
        return None;
    }
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    Some(whole.parse::<i64>().ok()? * 100 + frac)
}

/// Whether a character may change how text around it is shown or read:
/// controls (CR, LF, NUL, escapes…), the bidirectional overrides and
/// isolates that reorder text on screen, and invisible joiners and marks.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Free text from outside (a supporter's name, say), as Tavern keeps it:
/// controls and reordering characters become spaces, runs of whitespace
/// one space, trimmed, at most `max_chars` characters.
pub fn clean_text(s: &str, max_chars: usize) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if unsafe_char(c) { ' ' } else { c })
        .collect();
    spaced
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max_chars)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// The characters of a link code: no 0/O or 1/I to misread.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters after the `TAV-` prefix (50 bits).
const CODE_LEN: usize = 10;

/// A link code from 10 random choices: `TAV-XXXXX-XXXXX`.
pub fn link_code(random: [u8; CODE_LEN]) -> String {
    let c: String = random
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    format!("TAV-{}-{}", &c[..5], &c[5..])
}

/// A link code as it is hashed: uppercase, without its dashes or spaces;
/// `None` unless it has the shape of one.
pub fn normalize_link_code(s: &str) -> Option<String> {
    let upper = s.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix("TAV")?;
    let body: String = rest.chars().filter(|c| *c != '-' && *c != ' ').collect();
    (body.len() == CODE_LEN && body.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        .then(|| format!("TAV{body}"))
}

/// The first link code written in a free-text message (a Ko-fi note).
pub fn find_link_code(message: &str) -> Option<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find_map(normalize_link_code)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pay(kind: PaymentKind, tier: Option<&str>, cents: i64, paid_at: Timestamp) -> Payment {
        Payment {
            transaction: format!("t{cents}{paid_at}"),
            message_id: "m".into(),
            kind,
            from_name: "Jo".into(),
            email: None,
            amount_cents: cents,
            currency: "USD".into(),
            tier_name: tier.map(str::to_owned),
            first_subscription: false,
            paid_at,
            recorded_at: paid_at,
            user: None,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tiers() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("Bronze".into(), "supporter".into()),
            ("Gold".into(), "patron".into()),
        ])
    }

    #[test]
    fn the_latest_mapped_subscription_sets_the_tier_for_35_days() {
        let t = tiers();
        let ps = [
            pay(
                PaymentKind::Subscription,
                Some("Gold"),
                1000,
                ts("2026-09-01T00:00:00Z"),
            ),
            pay(
                PaymentKind::Subscription,
                Some("Bronze"),
                300,
                ts("2026-10-01T00:00:00Z"),
            ),
            // Unmapped, and later: it changes nothing.
            pay(
                PaymentKind::Subscription,
                Some("Tin"),
                100,
                ts("2026-10-20T00:00:00Z"),
            ),
            pay(PaymentKind::Donation, None, 500, ts("2026-10-21T00:00:00Z")),
        ];
        let (tier, until) = supporter_tier(&ps, &t, ts("2026-10-15T00:00:00Z")).unwrap();
        assert_eq!(tier, "supporter");
        assert_eq!(until, ts("2026-11-05T00:00:00Z"));
        assert!(supporter_tier(&ps, &t, ts("2026-11-04T23:59:59Z")).is_some());
        assert_eq!(supporter_tier(&ps, &t, ts("2026-11-05T00:00:00Z")), None);
        assert_eq!(
            supporter_tier(&ps, &BTreeMap::new(), ts("2026-10-15T00:00:00Z")),
            None
        );
        assert_eq!(supporter_tier(&[], &t, ts("2026-10-15T00:00:00Z")), None);
    }

    #[test]
    fn credit_is_donations_and_unmapped_subscriptions_of_the_window_in_its_currency() {
        let t = tiers();
        let at = ts("2026-11-10T00:00:00Z");
        let mut euro = pay(PaymentKind::Donation, None, 700, at);
        euro.currency = "EUR".into();
        let ps = [
            pay(PaymentKind::Donation, None, 350, at),
            pay(PaymentKind::Subscription, Some("Tin"), 100, at),
            pay(PaymentKind::Subscription, None, 200, at),
            pay(PaymentKind::Subscription, Some("Gold"), 1000, at),
            pay(PaymentKind::ShopOrder, None, 2000, at),
            pay(PaymentKind::Commission, None, 3000, at),
            pay(PaymentKind::Donation, None, 900, ts("2026-10-31T23:59:59Z")),
            pay(PaymentKind::Donation, None, 900, ts("2026-12-01T00:00:00Z")),
            euro,
        ];
        let (from, to) = (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
        assert_eq!(credit_between(&ps, &t, "USD", from, to), 6.5);
        assert_eq!(credit_between(&ps, &t, "usd", from, to), 6.5);
        assert_eq!(credit_between(&ps, &t, "EUR", from, to), 7.0);
    }

    #[test]
    fn amounts_are_read_strictly() {
        assert_eq!(amount_cents("3.00"), Some(300));
        assert_eq!(amount_cents("3.5"), Some(350));
        assert_eq!(amount_cents("10"), Some(1000));
        assert_eq!(amount_cents("0.01"), Some(1));
        for bad in [
            "",
            ".5",
            "3.",
            "3.001",
            "-3.00",
            "3,00",
            "1e3",
            "abc",
            "9999999999999",
        ] {
            assert_eq!(amount_cents(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn kinds_are_kofis_words() {
        assert_eq!(payment_kind("Donation"), Some(PaymentKind::Donation));
        assert_eq!(payment_kind("Shop Order"), Some(PaymentKind::ShopOrder));
        assert_eq!(payment_kind("donation"), None);
    }

    #[test]
    fn link_codes_are_found_in_messages() {
        let code = link_code([7; 10]);
        assert!(code.starts_with("TAV-") && code.len() == 15, "{code}");
        let norm = normalize_link_code(&code).unwrap();
        assert_eq!(normalize_link_code(&code.to_lowercase()).unwrap(), norm);
        assert_eq!(
            find_link_code(&format!("Thanks! my code: {code}.")).unwrap(),
            norm
        );
        assert_eq!(find_link_code("Thanks for the games!"), None);
        assert_eq!(find_link_code("TAV-SHORT"), None);
        // 0 and 1 are not in the alphabet.
        assert_eq!(normalize_link_code("TAV-00000-11111"), None);
    }

    proptest! {
        #[test]
        fn every_code_reads_back(random in any::<[u8; 10]>()) {
            let code = link_code(random);
            let norm = normalize_link_code(&code).unwrap();
            prop_assert_eq!(find_link_code(&format!("x {code} y")), Some(norm));
        }

        /// Cleaned text holds no control or reordering character, no
        /// doubled or outer whitespace, and keeps every other character.
        #[test]
        fn cleaned_text_is_safe_to_show(s in any::<String>(), max in 0usize..300) {
            let c = clean_text(&s, max);
            prop_assert!(c.chars().count() <= max);
            prop_assert!(!c.chars().any(unsafe_char));
            prop_assert_eq!(c.trim(), c.as_str());
            prop_assert!(!c.contains("  "));
            let kept: String = s.chars().filter(|c| !unsafe_char(*c) && !c.is_whitespace()).collect();
            let shown: String = c.chars().filter(|c| !c.is_whitespace()).collect();
            prop_assert!(kept.starts_with(&shown));
        }

        #[test]
        fn amounts_round_trip(cents in 0i64..1_000_000_000) {
            let s = format!("{}.{:02}", cents / 100, cents % 100);
            prop_assert_eq!(amount_cents(&s), Some(cents));
        }
    }
}

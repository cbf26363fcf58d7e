//! Quotas from tiers: how many worlds a game master may have, how many may
//! run at once, and how many hours they may run in a calendar month (UTC).
//! A limit left out is no limit. Admins' own worlds have no quota.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use tavern_store::UsageInterval;

/// The limits of one tier (`[tiers.NAME]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tier {
    pub max_instances: Option<u32>,
    pub max_running: Option<u32>,
    pub monthly_hours: Option<u32>,
    /// The library packages its worlds may use, by id (`*`: all); `None`:
    /// every package.
    pub packages: Option<Vec<String>>,
}

/// Which limit a request would go beyond, for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: &'static str,
    pub message: String,
}

fn exceeded(limit: &'static str, tier: &str, message: String) -> Exceeded {
    Exceeded {
        limit,
        message: format!("{message} (limit {limit} of tier {tier})"),
    }
}

/// May the owner create one more world, owning `owned` now?
pub fn check_create(tier_name: &str, tier: &Tier, owned: usize) -> Result<(), Exceeded> {
    match tier.max_instances {
        Some(max) if owned >= max as usize => Err(exceeded(
            "max_instances",
            tier_name,
            format!("you have {owned} worlds and may have {max}"),
        )),
        _ => Ok(()),
    }
}

/// May the owner run one more world, running `running` others now and
/// having used `used` this month?
pub fn check_start(
    tier_name: &str,
    tier: &Tier,
    running: usize,
    used: SignedDuration,
) -> Result<(), Exceeded> {
    if let Some(max) = tier.max_running
        && running >= max as usize
    {
        return Err(exceeded(
            "max_running",
            tier_name,
            format!(
                "{running} of your worlds run or are scheduled now and you may run {max} at once"
            ),
        ));
    }
    if let Some(hours) = tier.monthly_hours
        && used >= SignedDuration::from_hours(i64::from(hours))
    {
        return Err(exceeded(
            "monthly_hours",
            tier_name,
            format!(
                "your worlds ran {:.1} hours this month and may run {hours}",
                used.as_secs_f64() / 3600.0
            ),
        ));
    }
    Ok(())
}

/// The calendar month (UTC) that holds `t`, as `[first, next first)`.
pub fn month_of(t: Timestamp) -> (Timestamp, Timestamp) {
    let z = t.to_zoned(TimeZone::UTC);
    let first = z
        .first_of_month()
        .and_then(|f| f.start_of_day())
        .unwrap_or_else(|_| z.clone());
    let next = first.checked_add(1.month()).unwrap_or_else(|_| z.clone());
    (first.timestamp(), next.timestamp())
}

/// The running time of `intervals` inside `[from, to)`, open intervals
/// counted up to `now`.
pub fn used_between(
    intervals: &[UsageInterval],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> SignedDuration {
    intervals
        .iter()
        .map(|i| {
            let start = i.started_at.max(from);
            let end = i.stopped_at.unwrap_or(now).min(to);
            if end > start {
                end.duration_since(start)
            } else {
                SignedDuration::ZERO
            }
        })
        .fold(SignedDuration::ZERO, |a, b| a.saturating_add(b))
}

#[cfg(test)]
mod tests {
    use tavern_types::{InstanceId, UserId};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn interval(from: &str, to: Option<&str>) -> UsageInterval {
        UsageInterval {
            instance: InstanceId::new(),
            slug: "w".into(),
            owner: UserId::new(),
            license: None,
            started_at: at(from),
            stopped_at: to.map(at),
            reason: None,
        }
    }

    #[test]
    fn limits_name_themselves_and_none_is_no_limit() {
        let tier = Tier {
            max_instances: Some(2),
            max_running: Some(1),
            monthly_hours: Some(10),
            packages: None,
        };
        assert!(check_create("free", &tier, 1).is_ok());
        let e = check_create("free", &tier, 2).unwrap_err();
        assert_eq!(e.limit, "max_instances");
        assert!(e.message.contains("tier free"), "{}", e.message);
        assert!(check_start("free", &tier, 0, SignedDuration::from_hours(9)).is_ok());
        assert_eq!(
            check_start("free", &tier, 1, SignedDuration::ZERO)
                .unwrap_err()
                .limit,
            "max_running"
        );
        assert_eq!(
            check_start("free", &tier, 0, SignedDuration::from_hours(10))
                .unwrap_err()
                .limit,
            "monthly_hours"
        );
        let open = Tier::default();
        assert!(check_create("x", &open, 10_000).is_ok());
        assert!(check_start("x", &open, 10_000, SignedDuration::from_hours(10_000)).is_ok());
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(
            month_of(at("2026-11-23T07:00:00Z")),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            month_of(at("2026-12-31T23:59:59Z")),
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn usage_is_clipped_to_the_month_and_open_intervals_run_to_now() {
        let (from, to) = month_of(at("2026-11-23T07:00:00Z"));
        let now = at("2026-11-23T07:00:00Z");
        let intervals = vec![
            // 2 h in October, 1 h in November.
            interval("2026-10-31T22:00:00Z", Some("2026-11-01T01:00:00Z")),
            interval("2026-11-10T10:00:00Z", Some("2026-11-10T13:30:00Z")),
            // Still running: 2 h so far.
            interval("2026-11-23T05:00:00Z", None),
        ];
        assert_eq!(
            used_between(&intervals, from, to, now),
            SignedDuration::from_mins(60 + 210 + 120)
        );
    }
}

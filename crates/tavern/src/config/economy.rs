//! How keys and time are shared out: `[licenses]` (pre-emption,
//! reservations), `[sessions]`, `[idle]`, `[tiers.NAME]` and `[usage]`.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LicensesConfig {
    /// When no key is free, stop a world that has had no players for
    /// `preempt_grace_minutes` and give its key to the start.
    pub preempt_idle: bool,
    pub preempt_grace_minutes: u64,
    /// A key reserved for a session within this many minutes is not handed
    /// to an ad-hoc start.
    pub reservation_horizon_minutes: u64,
}

impl Default for LicensesConfig {
    fn default() -> Self {
        Self {
            preempt_idle: false,
            preempt_grace_minutes: 10,
            reservation_horizon_minutes: 240,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// A running world without players sleeps after this many minutes
    /// (unless it has a timeout of its own).
    pub timeout_minutes: u64,
    /// Who wakes a sleeping world by visiting it: `owner`, `anyone`, `off`.
    pub wake_on_visit: tavern_types::WakeOnVisit,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            timeout_minutes: 30,
            wake_on_visit: tavern_types::WakeOnVisit::Owner,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// A session's world starts this many minutes early.
    pub lead_minutes: u64,
    /// A session's key stays reserved this many minutes after its end.
    pub grace_minutes: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            lead_minutes: 10,
            grace_minutes: 30,
        }
    }
}

/// One quota tier; a limit left out is no limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TierConfig {
    pub max_instances: Option<u32>,
    pub max_running: Option<u32>,
    pub monthly_hours: Option<u32>,
    /// The library packages its worlds may use, by id (`"*"`: all);
    /// left out: every package.
    pub packages: Option<Vec<String>>,
    /// The tier of users who have none (at most one tier).
    pub default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// What an hour of a running world costs (for the usage report).
    pub rate_per_hour: f64,
    /// The currency the rate is in, as shown.
    pub currency: String,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            rate_per_hour: 0.0,
            currency: "EUR".into(),
        }
    }
}

impl Config {
    /// Reservations, pre-emption and quota tiers, for the core.
    pub fn economy(&self) -> tavern_core::Economy {
        let mins = |m: u64| jiff::SignedDuration::from_mins(i64::try_from(m).unwrap_or(i64::MAX));
        tavern_core::Economy {
            horizon: mins(self.licenses.reservation_horizon_minutes),
            preempt_grace: self
                .licenses
                .preempt_idle
                .then(|| mins(self.licenses.preempt_grace_minutes)),
            session_lead: mins(self.sessions.lead_minutes),
            session_grace: mins(self.sessions.grace_minutes),
            tiers: self
                .tiers
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        tavern_core::policy::quotas::Tier {
                            max_instances: t.max_instances,
                            max_running: t.max_running,
                            monthly_hours: t.monthly_hours,
                            packages: t.packages.clone(),
                        },
                    )
                })
                .collect(),
            default_tier: self
                .tiers
                .iter()
                .find(|(_, t)| t.default)
                .map(|(n, _)| n.clone()),
        }
    }
}

impl Config {
    /// `[usage]`, `[idle]`, `[licenses]`, `[sessions]` and the tiers.
    pub(super) fn check_economy(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.usage.rate_per_hour.is_finite() && self.usage.rate_per_hour >= 0.0,
            "invalid configuration: usage.rate_per_hour must be a number, 0 or more"
        );
        anyhow::ensure!(
            !self.usage.currency.trim().is_empty() && self.usage.currency.len() <= 8,
            "invalid configuration: usage.currency must be a short name like EUR"
        );
        anyhow::ensure!(
            (1..=7 * 24 * 60).contains(&self.idle.timeout_minutes),
            "invalid configuration: idle.timeout_minutes must be between 1 and 10080 (a week)"
        );
        let (l, se) = (&self.licenses, &self.sessions);
        anyhow::ensure!(
            l.preempt_grace_minutes <= 24 * 60,
            "invalid configuration: licenses.preempt_grace_minutes must be at most 1440"
        );
        anyhow::ensure!(
            l.reservation_horizon_minutes <= 7 * 24 * 60,
            "invalid configuration: licenses.reservation_horizon_minutes must be at most 10080 (a week)"
        );
        anyhow::ensure!(
            se.lead_minutes <= 24 * 60 && se.grace_minutes <= 24 * 60,
            "invalid configuration: sessions.lead_minutes and sessions.grace_minutes must be at most 1440"
        );
        for name in self.tiers.keys() {
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "invalid configuration: tier name {name:?} must be 1 to 32 lowercase letters, digits or dashes"
            );
        }
        let defaults: Vec<&String> = self
            .tiers
            .iter()
            .filter(|(_, t)| t.default)
            .map(|(n, _)| n)
            .collect();
        anyhow::ensure!(
            defaults.len() <= 1,
            "invalid configuration: only one tier may be the default, not {}",
            defaults
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        );
        Ok(())
    }
}

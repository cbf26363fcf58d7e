//! The usage report: a month of running time per user and per world, per
//! license key, and its cost at the configured rate less each user's
//! credit. Admins see everyone; a game master only themselves.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use tavern_store::now;
use tavern_types::{InstanceId, UserId, Username};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::policy::usage::{self, UserUsage};
use crate::tavern::Tavern;

/// A month's usage as people see it.
#[derive(Clone, Debug)]
pub struct UsageView {
    /// `YYYY-MM`.
    pub month: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub rate_per_hour: f64,
    pub currency: String,
    pub users: Vec<(Username, UserUsage)>,
    /// Hours per key label (`None`: no key recorded).
    pub licenses: Vec<(Option<String>, f64)>,
    pub hours: f64,
    pub cost: f64,
    /// Bytes each user's worlds hold in object storage, as last counted
    /// (now, not over the month); `None` when worlds have no object
    /// storage.
    pub stored: Option<BTreeMap<UserId, u64>>,
}

/// `YYYY-MM` as the UTC month `[first, next first)`.
fn parse_month(month: &str) -> Result<(Timestamp, Timestamp), CoreError> {
    let bad = || {
        CoreError::invalid(
            "invalid_month",
            "month",
            format!("{month:?} is not a month like 2026-11"),
        )
    };
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let date = Date::new(
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        1,
    )
    .map_err(|_| bad())?;
    let first = date.to_zoned(TimeZone::UTC).map_err(|_| bad())?;
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    Ok((first.timestamp(), next.timestamp()))
}

impl Tavern {
    /// Usage in `month` (`YYYY-MM`, default this month, UTC): everyone's,
    /// or `user`'s. A game master sees only their own (another user's is
    /// not found).
    pub async fn usage_report(
        &self,
        caller: &Caller,
        month: Option<&str>,
        user: Option<&str>,
    ) -> Result<UsageView, CoreError> {
        let (from, to) = match month {
            Some(m) => parse_month(m)?,
            None => crate::policy::quotas::month_of(now()),
        };
        let month = from.to_zoned(TimeZone::UTC).strftime("%Y-%m").to_string();
        let owner: Option<UserId> = match (user, caller.is_admin()) {
            (Some(name), true) => Some(self.user_named("user", name).await?.id),
            (Some(name), false) if name != caller.user.username.as_str() => {
                return Err(CoreError::NotFound {
                    what: "user",
                    key: name.to_owned(),
                });
            }
            (_, false) => Some(caller.user.id),
            (None, true) => None,
        };
        let intervals = self.store.list_usage(owner, from, to).await?;
        let rate = self.settings.usage_rate;
        let credits = self.credits(owner, from, to).await?;
        let mut summary = usage::summarize(&intervals, from, to, now(), rate, |u| {
            credits.get(&u).copied().unwrap_or(0.0)
        });
        let stored = match &self.uploads {
            Some(_) => Some(self.stored_bytes(owner).await?),
            None => None,
        };
        // Those who ran nothing this month but store something are shown.
        for (user, _) in stored.iter().flatten().filter(|(_, b)| **b > 0) {
            if summary.users.iter().all(|u| u.user != *user) {
                summary.users.push(UserUsage {
                    user: *user,
                    hours: 0.0,
                    worlds: Vec::new(),
                    cost: 0.0,
                    credit: credits.get(user).copied().unwrap_or(0.0),
                    due: 0.0,
                });
            }
        }
        let mut users = Vec::with_capacity(summary.users.len());
        for u in summary.users {
            let name = match self.store.user(u.user).await? {
                Some(found) => found.username,
                None => Username::parse("deleted").expect("a valid name"),
            };
            users.push((name, u));
        }
        users.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let labels = self.store.list_licenses().await?;
        let licenses = summary
            .licenses
            .into_iter()
            .map(|(id, h)| {
                let label = id.map(|id| {
                    labels
                        .iter()
                        .find(|l| l.id == id)
                        .map_or_else(|| format!("removed key {id}"), |l| l.label.clone())
                });
                (label, h)
            })
            .collect();
        Ok(UsageView {
            month,
            from,
            to,
            rate_per_hour: rate,
            currency: self.settings.usage_currency.clone(),
            users,
            licenses,
            hours: summary.hours,
            cost: summary.cost,
            stored,
        })
    }

    /// Bytes in object storage per owner (`owner`'s only, when given),
    /// over the worlds there are now.
    async fn stored_bytes(
        &self,
        owner: Option<UserId>,
    ) -> Result<BTreeMap<UserId, u64>, CoreError> {
        let owners: BTreeMap<InstanceId, UserId> = self
            .store
            .list_instances(owner)
            .await?
            .into_iter()
            .map(|i| (i.id, i.owner))
            .collect();
        let mut stored = BTreeMap::new();
        for place in self.store.list_storage_places().await? {
            if let Some(user) = owners.get(&place.instance) {
                let b: &mut u64 = stored.entry(*user).or_default();
                *b = b.saturating_add(place.bytes.unwrap_or(0));
            }
        }
        Ok(stored)
    }
}

/// One license key on the licenses board: which world held it, when.
#[derive(Clone, Debug)]
pub struct LicenseLane {
    pub label: String,
    /// Running intervals on this key, oldest first; `to` is `None` while
    /// the world still runs.
    pub held: Vec<Held>,
}

#[derive(Clone, Debug)]
pub struct Held {
    pub slug: String,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
}

impl Tavern {
    /// Every key's running intervals within `[from, to)`, for the admins'
    /// board: one lane per key, a removed key's lane kept while it shows.
    pub async fn license_board(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<LicenseLane>, CoreError> {
        caller.require_admin("see the licenses board")?;
        let licenses = self.store.list_licenses().await?;
        let mut intervals = self.store.list_usage(None, from, to).await?;
        intervals.sort_by_key(|i| i.started_at);
        let lane = |label: String| LicenseLane {
            label,
            held: Vec::new(),
        };
        let mut lanes: Vec<(tavern_types::LicenseId, LicenseLane)> = licenses
            .iter()
            .map(|l| (l.id, lane(l.label.clone())))
            .collect();
        for i in intervals {
            let Some(id) = i.license else { continue };
            let at = match lanes.iter().position(|(l, _)| *l == id) {
                Some(at) => at,
                None => {
                    lanes.push((id, lane(format!("removed key {id}"))));
                    lanes.len() - 1
                }
            };
            lanes[at].1.held.push(Held {
                slug: i.slug,
                from: i.started_at,
                to: i.stopped_at,
            });
        }
        Ok(lanes.into_iter().map(|(_, lane)| lane).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_month;

    #[test]
    fn months_are_read_strictly() {
        let (from, to) = parse_month("2026-11").unwrap();
        assert_eq!(from.to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(to.to_string(), "2026-12-01T00:00:00Z");
        let (_, to) = parse_month("2026-12").unwrap();
        assert_eq!(to.to_string(), "2027-01-01T00:00:00Z");
        for bad in ["2026-13", "2026-1", "26-11", "november", "2026-11-01", ""] {
            let e = parse_month(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_month", "{bad}");
        }
    }
}

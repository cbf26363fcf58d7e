//! The columns the client prints for the answers more than one command
//! shows: worlds, license keys, users, supporters, sessions and events.

use tavern_api::{EventJson, InstanceJson, LicenseJson, SessionJson, SupporterJson, UserJson};

use super::output::{Cell, Column};

/// A world's state as people say it (the dashboard's words).
pub(crate) fn state_word(i: &InstanceJson) -> Option<&'static str> {
    Some(tavern_types::state_word(
        i.state.parse().ok()?,
        i.desired_state.parse().ok()?,
    ))
}

pub(crate) const INSTANCE_COLUMNS: &[Column<InstanceJson>] = &[
    Column::new("WORLD", |i| Cell::text(&i.slug)),
    Column::new("OWNER", |i| Cell::text(&i.owner)),
    Column::new("STATE", |i| Cell::maybe(state_word(i))),
    Column::new("PLAYERS", |i| Cell::text(i.players)),
    Column::new("RELEASE", |i| Cell::maybe(i.release.as_ref())),
    Column::new("LICENSE", |i| {
        Cell::maybe(i.license.as_ref().map(|l| &l.label))
    }),
    Column::new("URL", |i| Cell::text(&i.url)),
];

/// Every field of one instance, for `instance show`.
pub(crate) const INSTANCE_FIELDS: &[Column<InstanceJson>] = &[
    Column::new("world", |i| Cell::text(&i.slug)),
    Column::new("owner", |i| Cell::text(&i.owner)),
    Column::new("url", |i| Cell::text(&i.url)),
    Column::new("state", |i| Cell::maybe(state_word(i))),
    Column::new("reason", |i| Cell::maybe(i.state_reason.as_ref())),
    Column::new("players", |i| Cell::text(i.players)),
    Column::new("foundry world", |i| Cell::maybe(i.world.as_ref())),
    Column::new("foundry", |i| Cell::maybe(i.foundry_version.as_ref())),
    Column::new("release", |i| Cell::maybe(i.release.as_ref())),
    Column::new("runtime", |i| Cell::text(&i.runtime)),
    Column::new("license key", |i| {
        Cell::maybe(i.license.as_ref().map(|l| &l.label))
    }),
    Column::new("idle timeout (min)", |i| {
        Cell::maybe(i.idle_timeout_minutes)
    }),
    Column::new("wake on visit", |i| Cell::maybe(i.wake_on_visit.as_ref())),
    Column::new("created", |i| Cell::at(&i.created_at)),
];

pub(crate) const LICENSE_COLUMNS: &[Column<LicenseJson>] = &[
    Column::new("ID", |l| Cell::text(&l.id)),
    Column::new("LABEL", |l| Cell::text(&l.label)),
    Column::new("KEY", |l| Cell::text(&l.last4)),
    Column::new("OWNER", |l| Cell::maybe(l.owner.as_ref())),
    Column::new("ADDED", |l| Cell::at(&l.created_at)),
];

pub(crate) const USER_COLUMNS: &[Column<UserJson>] = &[
    Column::new("USERNAME", |u| Cell::text(&u.username)),
    Column::new("ROLE", |u| Cell::text(&u.role)),
    Column::new("TIER", |u| Cell::maybe(u.tier.as_ref())),
    Column::new("EMAIL", |u| Cell::maybe(u.email.as_ref())),
    Column::new("CREATED", |u| Cell::at(&u.created_at)),
];

pub(crate) const SUPPORTER_COLUMNS: &[Column<SupporterJson>] = &[
    Column::new("USER", |s| Cell::maybe(s.user.as_ref())),
    Column::new("NAME", |s| Cell::text(&s.from_name)),
    Column::new("EMAIL", |s| Cell::maybe(s.email.as_ref())),
    Column::new("PAYMENTS", |s| Cell::text(s.payments)),
    Column::new("LAST PAID", |s| Cell::at(&s.last_paid_at)),
    Column::new("TIER", |s| Cell::maybe(s.tier.as_ref())),
    Column::new("UNTIL", |s| Cell::at_maybe(s.tier_until.as_ref())),
    Column::new("CREDIT", |s| Cell::Number(s.credit)),
];

pub(crate) const SESSION_COLUMNS: &[Column<SessionJson>] = &[
    Column::new("ID", |s| Cell::text(&s.id)),
    Column::new("WORLD", |s| Cell::text(&s.instance)),
    Column::new("START", |s| Cell::at(&s.start)),
    Column::new("END", |s| Cell::at(&s.end)),
    Column::new("LICENSE", |s| Cell::text(&s.license.label)),
    Column::new("STARTED", |s| Cell::YesNo(s.prepared)),
];

pub(crate) const EVENT_COLUMNS: &[Column<EventJson>] = &[
    Column::new("TIME", |e| Cell::at(&e.at)),
    Column::new("ACTOR", |e| Cell::text(&e.actor)),
    Column::new("ACTION", |e| Cell::text(&e.action)),
    Column::new("TARGET", |e| Cell::text(&e.target)),
    Column::new("OUTCOME", |e| Cell::text(&e.outcome)),
    Column::new("DETAIL", |e| Cell::maybe(e.detail.as_ref())),
];

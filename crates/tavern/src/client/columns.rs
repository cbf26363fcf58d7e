//! The columns the client prints for each kind of answer.

use super::output::Column;

pub(crate) const INSTANCE_COLUMNS: &[Column] = &[
    ("WORLD", "slug"),
    ("OWNER", "owner"),
    ("STATE", "state_word"),
    ("PLAYERS", "players"),
    ("RELEASE", "release"),
    ("LICENSE", "license.label"),
    ("URL", "url"),
];

/// Every field of one instance, for `instance show`.
pub(crate) const INSTANCE_FIELDS: &[Column] = &[
    ("world", "slug"),
    ("owner", "owner"),
    ("url", "url"),
    ("state", "state_word"),
    ("reason", "state_reason"),
    ("players", "players"),
    ("foundry world", "world"),
    ("foundry", "foundry_version"),
    ("release", "release"),
    ("runtime", "runtime"),
    ("license key", "license.label"),
    ("idle timeout (min)", "idle_timeout_minutes"),
    ("wake on visit", "wake_on_visit"),
    ("created", "created_at"),
];

pub(crate) const LICENSE_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("LABEL", "label"),
    ("KEY", "last4"),
    ("OWNER", "owner"),
    ("ADDED", "created_at"),
];

pub(crate) const USER_COLUMNS: &[Column] = &[
    ("USERNAME", "username"),
    ("ROLE", "role"),
    ("TIER", "tier"),
    ("EMAIL", "email"),
    ("CREATED", "created_at"),
];

pub(crate) const SUPPORTER_COLUMNS: &[Column] = &[
    ("USER", "user"),
    ("NAME", "from_name"),
    ("EMAIL", "email"),
    ("PAYMENTS", "payments"),
    ("LAST PAID", "last_paid_at"),
    ("TIER", "tier"),
    ("UNTIL", "tier_until"),
    ("CREDIT", "credit"),
];

pub(crate) const SESSION_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("WORLD", "instance"),
    ("START", "start"),
    ("END", "end"),
    ("LICENSE", "license.label"),
    ("STARTED", "prepared"),
];

pub(crate) const EVENT_COLUMNS: &[Column] = &[
    ("TIME", "at"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("TARGET", "target"),
    ("OUTCOME", "outcome"),
    ("DETAIL", "detail"),
];

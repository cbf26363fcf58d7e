//! Deployment facts the service is configured with: where worlds are
//! reached, which runtimes run them, how keys are shared out, and the
//! settings of backups, Ko-fi and notifications.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::SignedDuration;
use tavern_backup::retention::Policy;
use tavern_backup::target::Target;
use tavern_types::{RuntimeKind, Scheme, Slug};

use crate::policy::quotas::Tier;

/// Deployment facts the service needs to describe things.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How players reach worlds.
    pub public_scheme: Scheme,
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    /// The public port when it is not the scheme's default.
    pub public_port: Option<u16>,
    /// The runtime a new instance gets when none is named.
    pub default_runtime: RuntimeKind,
    /// The runtimes this server offers (`process`, and `docker` when a
    /// Docker engine is configured).
    pub runtimes: Vec<RuntimeKind>,
    /// Where the `license.json` Foundry signed for each key is kept, sealed
    /// (`DATA_DIR/licenses`).
    pub license_vault: std::path::PathBuf,
    /// Where uploads for imports wait until they are read
    /// (`DATA_DIR/imports`).
    pub imports_dir: std::path::PathBuf,
    /// Reservations, pre-emption and quotas.
    pub economy: Economy,
    /// Worlds live at `<domain>/<slug>/` (Foundry's routePrefix) instead of
    /// `<slug>.<domain>`.
    pub path_routing: bool,
    /// A running world without players sleeps after this long, unless it
    /// has a timeout of its own.
    pub idle_timeout: SignedDuration,
    /// Backups (none: this server takes none).
    pub backups: Option<crate::settings::BackupSettings>,
    /// What an hour of a running world costs, and in which currency.
    pub usage_rate: f64,
    pub usage_currency: String,
    /// Ko-fi's webhook (none: this server takes no payments).
    pub kofi: Option<crate::settings::KofiSettings>,
    /// Where notifications go, and how they are retried.
    pub notify: crate::settings::NotifySettings,
    /// Tavern keeps a DNS record for each world's host (`[dns] mode =
    /// "per-world"`), and each world's page says how it fares.
    pub dns_per_world: bool,
    /// The package library and the defaults new worlds get.
    pub packages: PackageSettings,
    /// How people sign in.
    pub auth: AuthSettings,
}

/// How people sign in (`[auth]`).
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// Admins who sign in with a password must have a second factor: until
    /// they set one up, the dashboard shows them nothing else.
    pub require_totp_for_admins: bool,
    /// Passwords sign nobody in (nor accept invitations) but these
    /// break-glass admins: the community's accounts do.
    pub passwords_off: bool,
    pub break_glass_admins: Vec<String>,
}

impl AuthSettings {
    /// Whether `username` may sign in with a password at all (an admin's
    /// role is checked once the password is).
    pub fn password_allowed(&self, username: &str) -> bool {
        !self.passwords_off || self.break_glass_admins.iter().any(|a| a == username)
    }
}

/// Where the package library is, and what new worlds get.
#[derive(Clone, Debug, Default)]
pub struct PackageSettings {
    /// `DATA_DIR/packages`.
    pub dir: PathBuf,
    /// Each new world's packages: `(kind, id)`, the kind when the id names
    /// two.
    pub defaults: Vec<(Option<tavern_foundry::manifest::PackageKind>, String)>,
}

/// How keys are shared out: reservations, pre-emption, session windows and
/// quota tiers.
#[derive(Clone, Debug)]
pub struct Economy {
    /// A key reserved for a session within this long is not handed to an
    /// ad-hoc start.
    pub horizon: SignedDuration,
    /// When no key is free, stop a world that has had no players for
    /// `preempt_grace` and give its key to the start (off: `None`).
    pub preempt_grace: Option<SignedDuration>,
    /// A session's world starts this long before the session.
    pub session_lead: SignedDuration,
    /// A session's key stays reserved this long after its end.
    pub session_grace: SignedDuration,
    /// Quota tiers by name.
    pub tiers: BTreeMap<String, Tier>,
    /// The tier of users who have none (no quota when `None`).
    pub default_tier: Option<String>,
}

impl Default for Economy {
    fn default() -> Self {
        Self {
            horizon: SignedDuration::from_hours(4),
            preempt_grace: None,
            session_lead: SignedDuration::from_mins(10),
            session_grace: SignedDuration::from_mins(30),
            tiers: BTreeMap::new(),
            default_tier: None,
        }
    }
}

impl Settings {
    /// The host players use for a world.
    pub fn instance_host(&self, slug: &Slug) -> String {
        if self.path_routing {
            self.domain.clone()
        } else {
            format!("{slug}.{}", self.domain)
        }
    }

    /// The port players' browsers connect to (Foundry's `proxyPort`).
    pub fn public_port_or_default(&self) -> u16 {
        self.public_port
            .unwrap_or(self.public_scheme.default_port())
    }

    pub fn instance_url(&self, slug: &Slug) -> String {
        let port = self.port_suffix();
        if self.path_routing {
            format!("{}://{}{port}/{slug}/", self.public_scheme, self.domain)
        } else {
            format!("{}://{slug}.{}{port}/", self.public_scheme, self.domain)
        }
    }

    /// The origin a world's pages are served from (`https://<host>[:port]`).
    pub fn world_origin(&self, slug: &Slug) -> String {
        format!(
            "{}://{}{}",
            self.public_scheme,
            self.instance_host(slug),
            self.port_suffix()
        )
    }

    /// An origin pattern every world's pages match (`https://*.<domain>`,
    /// or the domain's own origin with path routing), as S3's CORS rules
    /// take one.
    pub fn every_world_origin(&self) -> String {
        let host = match self.path_routing {
            true => self.domain.clone(),
            false => format!("*.{}", self.domain),
        };
        format!("{}://{host}{}", self.public_scheme, self.port_suffix())
    }

    /// The dashboard's address (the bare domain), ending in `/`.
    pub fn site_url(&self) -> String {
        format!(
            "{}://{}{}/",
            self.public_scheme,
            self.domain,
            self.port_suffix()
        )
    }

    fn port_suffix(&self) -> String {
        self.public_port
            .map(|p| format!(":{p}"))
            .unwrap_or_default()
    }
}

/// How backups are taken and kept.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// Where archives and repositories go.
    pub target: Target,
    /// How new backups are kept: archives, or snapshots in each world's
    /// repository.
    pub format: tavern_types::BackupFormat,
    /// When the repositories drop the data no snapshot needs any more.
    pub prune_schedule: Option<croner::Cron>,
    /// Where archives are written before they are verified and published
    /// (`DATA_DIR/tmp/backups`).
    pub staging: PathBuf,
    /// Threads that compress.
    pub threads: u32,
    /// Which backups of a world to keep (pre-destroy backups aside).
    pub retention: Policy,
    /// Back a world up each time it stops.
    pub after_stop: bool,
    /// How long a destroyed world's last backup is kept.
    pub keep_destroyed: SignedDuration,
    /// A game master's manual backups of one world are this far apart at
    /// least (admins are not throttled).
    pub manual_interval: SignedDuration,
    /// When every world is backed up (in the server's time zone).
    pub schedule: Option<croner::Cron>,
}

/// Ko-fi, as configured.
#[derive(Clone)]
pub struct KofiSettings {
    /// The verification token Ko-fi sends with every notice (a secret).
    pub verification_token: String,
    /// Ko-fi tier names to quota tiers (`[kofi.tiers]`).
    pub tiers: BTreeMap<String, String>,
}

impl std::fmt::Debug for KofiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KofiSettings")
            .field("verification_token", &"***")
            .field("tiers", &self.tiers)
            .finish()
    }
}

/// How notifications go out.
#[derive(Clone)]
pub struct NotifySettings {
    /// The community's Discord webhook URL (a secret: it holds a token).
    pub community_webhook: Option<String>,
    /// The first retry's wait, doubling up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// A notification not delivered this long after it was raised is
    /// given up.
    pub give_up_after: SignedDuration,
    /// Owners are reminded this long before a session begins.
    pub reminder_before: SignedDuration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            community_webhook: None,
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            give_up_after: SignedDuration::from_hours(48),
            reminder_before: SignedDuration::from_mins(30),
        }
    }
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySettings")
            .field(
                "community_webhook",
                &self.community_webhook.as_ref().map(|_| "***"),
            )
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("give_up_after", &self.give_up_after)
            .field("reminder_before", &self.reminder_before)
            .finish()
    }
}

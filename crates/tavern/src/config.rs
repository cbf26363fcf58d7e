//! Configuration of `tavern serve`: defaults, then `tavern.toml` (the file
//! named by `--config`/`TAVERN_CONFIG`, else `./tavern.toml` if present),
//! then `TAVERN_<SECTION>_<KEY>` variables, then flags. Unknown keys and bad
//! values are errors that name the key and where it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use tavern_types::{RuntimeKind, Scheme};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub runtime: RuntimeConfig,
    pub kubernetes: KubernetesConfig,
    pub licenses: LicensesConfig,
    pub sessions: SessionsConfig,
    pub idle: IdleConfig,
    pub tls: TlsConfig,
    pub backups: BackupsConfig,
    pub usage: UsageConfig,
    pub kofi: KofiConfig,
    pub discord: DiscordConfig,
    pub notifications: NotificationsConfig,
    /// Quota tiers by name (`[tiers.NAME]`).
    pub tiers: BTreeMap<String, TierConfig>,
    pub log: LogConfig,
}

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

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Off,
    Files,
    Acme,
}

/// How an ACME CA checks that Tavern answers for a host.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// Over TLS on the public listener (port 443): needs nothing else.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Over plain HTTP on `http_listen` (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `off`, `files` (cert_file and key_file) or `acme`.
    pub mode: TlsMode,
    /// PEM certificate chain (a wildcard for `*.<domain>` is common).
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// A plain-HTTP listener that redirects to HTTPS (e.g. `0.0.0.0:80`).
    pub http_listen: Option<SocketAddr>,
    /// The ACME CA's directory (Let's Encrypt by default).
    pub acme_directory: String,
    /// Contact address given to the CA (expiry warnings).
    pub acme_email: Option<String>,
    /// A PEM root certificate for the CA's own HTTPS, for a private CA.
    pub acme_ca_file: Option<PathBuf>,
    /// `tls-alpn-01` (port 443 only) or `http-01` (needs http_listen).
    pub acme_challenge: AcmeChallenge,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            cert_file: None,
            key_file: None,
            http_listen: None,
            acme_directory: tavern_proxy::acme::LETS_ENCRYPT.into(),
            acme_email: None,
            acme_ca_file: None,
            acme_challenge: AcmeChallenge::TlsAlpn01,
        }
    }
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

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// The community's Discord webhook: notifications go there.
    pub webhook_url: Option<String>,
    /// The same, read from a file.
    pub webhook_url_file: Option<PathBuf>,
    /// The bot application's public key (hex, from Discord's developer
    /// portal): it signs every interaction. Set, the bot answers at
    /// `/discord/interactions`.
    #[serde(deserialize_with = "text_or_number")]
    pub public_key: Option<String>,
    /// The bot application's id.
    #[serde(deserialize_with = "text_or_number")]
    pub application_id: Option<String>,
    /// The bot's token, for `tavern discord register`.
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    /// Discord's REST API.
    pub api_base: String,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_url_file: None,
            public_key: None,
            application_id: None,
            bot_token: None,
            bot_token_file: None,
            api_base: "https://discord.com/api/v10".into(),
        }
    }
}

impl DiscordConfig {
    /// The bot's settings, or `None` when no public key is configured.
    pub fn settings(&self) -> anyhow::Result<Option<tavern_core::discord::DiscordSettings>> {
        let Some(key) = &self.public_key else {
            return Ok(None);
        };
        let public_key: [u8; 32] = hex::decode(key.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .context("invalid configuration: discord.public_key must be 64 hex digits (the application's public key)")?;
        let application_id = self
            .application_id
            .clone()
            .filter(|a| !a.trim().is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
            .context(
                "invalid configuration: discord.public_key needs discord.application_id (digits)",
            )?;
        anyhow::ensure!(
            self.api_base.starts_with("https://") || self.api_base.starts_with("http://"),
            "invalid configuration: discord.api_base must be an http(s) address"
        );
        Ok(Some(tavern_core::discord::DiscordSettings {
            public_key,
            application_id,
            bot_token: secret_value("discord.bot_token", &self.bot_token, &self.bot_token_file)?,
            api_base: self.api_base.trim_end_matches('/').to_owned(),
        }))
    }
}

/// Shows whether the webhook is set, not the address.
impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field(
                "webhook_url",
                &self.webhook_url.as_ref().map(|_| "<hidden>"),
            )
            .field("webhook_url_file", &self.webhook_url_file)
            .field("public_key", &self.public_key)
            .field("application_id", &self.application_id)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<hidden>"))
            .field("bot_token_file", &self.bot_token_file)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// An optional value people write as text that may look like a number
/// (Discord's ids are digits; environment variables read as numbers).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Whole(u64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::Text(s) => s,
        Raw::Whole(n) => n.to_string(),
    }))
}

/// A secret from the configuration itself or from a file it names.
fn secret_value(
    key: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    let v = match (value, file) {
        (Some(v), None) => v.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "invalid configuration: cannot read {key}_file {}",
                    path.display()
                )
            })?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            anyhow::bail!("invalid configuration: set {key} or {key}_file, not both")
        }
    };
    anyhow::ensure!(!v.is_empty(), "invalid configuration: {key} is empty");
    Ok(Some(v))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The first retry of a failed delivery waits this long, doubling up
    /// to `retry_max_seconds`.
    pub retry_initial_seconds: u64,
    pub retry_max_seconds: u64,
    /// A notification still undelivered this long after it was raised is
    /// given up.
    pub give_up_hours: u32,
    /// Owners are reminded this long before a session begins.
    pub reminder_minutes: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            retry_initial_seconds: 5,
            retry_max_seconds: 600,
            give_up_hours: 48,
            reminder_minutes: 30,
        }
    }
}

impl Config {
    /// Where notifications go and how they are retried.
    pub fn notify_settings(&self) -> anyhow::Result<tavern_core::NotifySettings> {
        let n = &self.notifications;
        Ok(tavern_core::NotifySettings {
            community_webhook: secret_value(
                "discord.webhook_url",
                &self.discord.webhook_url,
                &self.discord.webhook_url_file,
            )?,
            retry_initial: Duration::from_secs(n.retry_initial_seconds),
            retry_max: Duration::from_secs(n.retry_max_seconds),
            give_up_after: jiff::SignedDuration::from_hours(i64::from(n.give_up_hours)),
            reminder_before: jiff::SignedDuration::from_mins(i64::from(n.reminder_minutes)),
        })
    }
}

#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KofiConfig {
    /// The token Ko-fi sends with each payment notice (its webhooks page);
    /// unset: `POST /webhooks/kofi` takes nothing.
    pub verification_token: Option<String>,
    /// The same, read from a file.
    pub verification_token_file: Option<PathBuf>,
    /// Ko-fi membership tier names to quota tiers (`[tiers.NAME]`).
    pub tiers: BTreeMap<String, String>,
}

/// Shows everything but the token.
impl std::fmt::Debug for KofiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KofiConfig")
            .field(
                "verification_token",
                &self.verification_token.as_ref().map(|_| "<hidden>"),
            )
            .field("verification_token_file", &self.verification_token_file)
            .field("tiers", &self.tiers)
            .finish()
    }
}

impl KofiConfig {
    /// The webhook's settings, or `None` when no token is configured.
    pub fn settings(&self) -> anyhow::Result<Option<tavern_core::KofiSettings>> {
        let Some(token) = secret_value(
            "kofi.verification_token",
            &self.verification_token,
            &self.verification_token_file,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(tavern_core::KofiSettings {
            verification_token: token,
            tiers: self.tiers.clone(),
        }))
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupsConfig {
    /// Where archives go: a directory (default `DATA_DIR/backups`) or
    /// `s3://BUCKET/PREFIX`.
    pub target: Option<String>,
    /// S3-compatible storage: endpoint URL (AWS itself when unset), region,
    /// and credentials (else the usual `AWS_*` variables).
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// When every world is backed up (cron: minute hour day month weekday,
    /// in the server's time zone); empty: never on a schedule.
    pub schedule: String,
    /// Retention of each world's backups.
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// Back a world up each time it stops.
    pub after_stop: bool,
    /// Days a destroyed world's last backup is kept.
    pub keep_destroyed_days: u32,
    /// A game master's manual backups of one world are this far apart.
    pub manual_interval_minutes: u32,
    /// Threads that compress (0: one per core).
    pub threads: u32,
}

/// Shows everything but the S3 secret key.
impl std::fmt::Debug for BackupsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupsConfig")
            .field("target", &self.target)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("schedule", &self.schedule)
            .field("keep_last", &self.keep_last)
            .field("keep_daily", &self.keep_daily)
            .field("keep_weekly", &self.keep_weekly)
            .field("after_stop", &self.after_stop)
            .field("keep_destroyed_days", &self.keep_destroyed_days)
            .field("manual_interval_minutes", &self.manual_interval_minutes)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Default for BackupsConfig {
    fn default() -> Self {
        Self {
            target: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            schedule: "0 4 * * *".into(),
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            after_stop: true,
            keep_destroyed_days: 30,
            manual_interval_minutes: 10,
            threads: 0,
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
    /// The tier of users who have none (at most one tier).
    pub default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the one public listener: the dashboard, the API and
    /// every world.
    pub listen: SocketAddr,
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    pub data_dir: PathBuf,
    /// How people reach Tavern from outside, e.g. `https://tavern.example.org`;
    /// sets the scheme and port of the URLs Tavern shows.
    pub public_url: Option<String>,
    /// Largest API request body in bytes.
    pub body_limit: usize,
    /// Worlds at `<slug>.<domain>` (`host`) or at `<domain>/<slug>/` (`path`).
    pub routing: RoutingMode,
    /// Largest request body to a world in bytes (Foundry's uploads).
    pub world_body_limit: u64,
    /// Connections the public listener keeps at once; default: 10 000, or
    /// fewer if the process may not open files for so many.
    pub max_connections: Option<usize>,
    /// Connections from one client (an IPv4 address, an IPv6 /64).
    pub max_connections_per_client: usize,
    /// Seconds a new connection may stay silent, and then take to send a
    /// complete request head (also after each response, kept alive).
    pub header_timeout_seconds: u64,
    /// The key secrets are sealed with (32 random bytes), when replicas
    /// share it; default: `DATA_DIR/secret.key`, made on first start.
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    Host,
    Path,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "localhost".into(),
            data_dir: PathBuf::from("tavern-data"),
            public_url: None,
            body_limit: 1024 * 1024,
            routing: RoutingMode::Host,
            world_body_limit: 300 * 1024 * 1024,
            max_connections: None,
            max_connections_per_client: 256,
            header_timeout_seconds: 30,
            secret_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE?…`;
    /// default `sqlite://DATA_DIR/tavern.db`.
    pub url: Option<String>,
    /// Connections to PostgreSQL, at most.
    pub pool_size: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 10,
        }
    }
}

/// Where Tavern keeps its state.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreTarget {
    Sqlite(PathBuf),
    Postgres { url: String, pool_size: u32 },
}

/// A database URL fit for messages: the password, if any, hidden.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// Why a setting cannot be used by this build, and how to get a build
/// that can: each driver and adapter beyond processes, SQLite and local
/// backups is a cargo feature, all of them in `full` (the container
/// image's build).
pub fn not_built_in(setting: &str, feature: &str) -> String {
    format!(
        "invalid configuration: {setting} needs Tavern's `{feature}` feature, which this build was made without; build Tavern with `--features {feature}` or `--features full` (e.g. `cargo install --path crates/tavern --profile dist --features full`), or run its container image, which has them all"
    )
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The runtime new instances get: `process`, `docker` or `kubernetes`.
    pub kind: RuntimeKind,
    /// Run worlds in containers too (always on when `kind` is `docker`).
    pub docker_enabled: bool,
    /// Names this Tavern's containers (label `tavern.installation`, and in
    /// their names), so several Taverns can share one engine; default: from
    /// DATA_DIR's path.
    pub docker_installation: Option<String>,
    /// A release's image; `{version}` is replaced by the release.
    pub docker_image: String,
    /// The `stub` release's image (`scripts/stub-image.sh` builds it).
    pub docker_stub_image: String,
    /// The private network the containers and Tavern's proxy share.
    pub docker_network: String,
    /// Mounted read-only at `/data/Data/shared` in every container
    /// (default `DATA_DIR/shared`).
    pub docker_shared_dir: Option<PathBuf>,
    /// Memory and CPUs of each container.
    pub docker_memory_mb: u32,
    pub docker_cpus: f64,
    /// Publish each container's port on 127.0.0.1 (when Tavern cannot
    /// reach the private network, e.g. Docker Desktop).
    pub docker_publish: bool,
    /// Offer the `stub` release (the built-in stand-in for Foundry).
    pub stub_release: bool,
    /// Ports worlds listen on, `FROM-TO` (loopback; players come through Tavern).
    pub port_range: String,
    /// The Node.js binary releases run with (looked up in PATH).
    pub node: String,
    /// Between SIGTERM and SIGKILL when stopping a world.
    pub stop_grace_seconds: u64,
    /// How long a start may take before the world is `failed`.
    pub start_timeout_seconds: u64,
    /// This many crashes within `crash_window_minutes` mark a world `failed`.
    pub crash_limit: u32,
    pub crash_window_minutes: u64,
    /// The first restart after a crash waits this long; then twice as long each time.
    pub restart_backoff_millis: u64,
    /// How often the reconciler looks at everything when nothing changes.
    pub resync_seconds: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            kind: RuntimeKind::Process,
            docker_enabled: false,
            docker_installation: None,
            docker_image: "felddy/foundryvtt:{version}".into(),
            docker_stub_image: "tavern-foundry-stub:latest".into(),
            docker_network: "tavern".into(),
            docker_shared_dir: None,
            docker_memory_mb: 1024,
            docker_cpus: 1.0,
            docker_publish: false,
            stub_release: false,
            port_range: "30000-30999".into(),
            node: "node".into(),
            stop_grace_seconds: 30,
            start_timeout_seconds: 120,
            crash_limit: 5,
            crash_window_minutes: 10,
            restart_backoff_millis: 1000,
            resync_seconds: 5,
        }
    }
}

impl RuntimeConfig {
    /// Whether worlds may run in containers.
    pub fn docker(&self) -> bool {
        self.docker_enabled || self.kind == RuntimeKind::Docker
    }

    /// The runtimes this server offers.
    pub fn kinds(&self) -> Vec<RuntimeKind> {
        let mut kinds = vec![RuntimeKind::Process];
        if self.docker() {
            kinds.push(RuntimeKind::Docker);
        }
        if self.kind == RuntimeKind::Kubernetes {
            kinds.push(RuntimeKind::Kubernetes);
        }
        kinds
    }

    /// How the docker driver makes containers.
    #[cfg(feature = "docker")]
    pub fn docker_settings(&self, data_dir: &Path) -> tavern_runtime::docker::DockerSettings {
        let installation = self
            .docker_installation
            .clone()
            .unwrap_or_else(|| tavern_runtime::installation_for(data_dir));
        tavern_runtime::docker::DockerSettings {
            installation,
            image: self.docker_image.clone(),
            stub_image: self.docker_stub_image.clone(),
            network: self.docker_network.clone(),
            shared_dir: self
                .docker_shared_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("shared")),
            memory_bytes: i64::from(self.docker_memory_mb) * 1024 * 1024,
            nano_cpus: (self.docker_cpus * 1e9) as i64,
            publish: self.docker_publish,
        }
    }

    /// `port_range` as (from, to).
    pub fn ports(&self) -> anyhow::Result<(u16, u16)> {
        let bad = || {
            anyhow::anyhow!(
                "invalid configuration: runtime.port_range {:?} must look like 30000-30999",
                self.port_range
            )
        };
        let (a, b) = self.port_range.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        anyhow::ensure!(a > 0 && a <= b, bad());
        Ok((a, b))
    }
}

/// `[kubernetes]`: where and how worlds run when `runtime.kind` is
/// `kubernetes`. Tavern talks to the cluster as `kube` finds it: in a pod,
/// its service account; elsewhere `KUBECONFIG` or `~/.kube/config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// The namespace of the worlds' objects (one Tavern per namespace).
    pub namespace: String,
    /// Names this Tavern's objects (label `tavern.io/installation`);
    /// default: from DATA_DIR's path.
    pub installation: Option<String>,
    /// A release's image; `{version}` is replaced by the release.
    pub image: String,
    /// The `stub` release's image.
    pub stub_image: String,
    /// Tavern's own image: its init container writes each world's Config/.
    pub tavern_image: String,
    /// The data claims' storage class (default: the cluster's default).
    pub storage_class: Option<String>,
    /// Each world's data claim, e.g. `10Gi`.
    pub storage_size: String,
    /// A claim mounted read-only at /data/Data/shared in every world.
    pub shared_claim: Option<String>,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    /// `proxy`: Tavern's proxy forwards to each world's Service. `gateway`:
    /// an HTTPRoute per world on the cluster's Gateway carries the players.
    pub routes: RoutesMode,
    /// The Gateway the HTTPRoutes attach to (with `routes = "gateway"`).
    pub gateway: String,
    pub gateway_namespace: Option<String>,
    pub gateway_section: Option<String>,
    /// Tavern's own Service: a sleeping world's HTTPRoute points there.
    pub standby_service: String,
    pub standby_port: u16,
    /// With several replicas of Tavern: the Lease they elect a leader by
    /// (the leader runs the reconciler and the scheduler; every replica
    /// serves). Unset: this Tavern leads alone.
    pub lease: Option<String>,
    /// This replica's name in the election (default: its host name, which
    /// in a pod is the pod's name).
    pub identity: Option<String>,
    /// A leader that has not renewed for this long loses the lease; it
    /// renews `lease_grace_seconds` before that.
    pub lease_duration_seconds: u64,
    pub lease_grace_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoutesMode {
    #[default]
    Proxy,
    Gateway,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: "tavern".into(),
            installation: None,
            image: "felddy/foundryvtt:{version}".into(),
            stub_image: "tavern-foundry-stub:latest".into(),
            tavern_image: "tavern:latest".into(),
            storage_class: None,
            storage_size: "10Gi".into(),
            shared_claim: None,
            // felddy's Kubernetes example's requests and limits.
            cpu_request: "200m".into(),
            memory_request: "512Mi".into(),
            cpu_limit: "1".into(),
            memory_limit: "1Gi".into(),
            routes: RoutesMode::Proxy,
            gateway: "tavern".into(),
            gateway_namespace: None,
            gateway_section: None,
            standby_service: "tavern".into(),
            standby_port: 80,
            lease: None,
            identity: None,
            lease_duration_seconds: 15,
            lease_grace_seconds: 5,
        }
    }
}

impl KubernetesConfig {
    /// How the kubernetes driver makes worlds' objects.
    #[cfg(feature = "kubernetes")]
    pub fn settings(
        &self,
        data_dir: &Path,
    ) -> tavern_runtime::kubernetes::objects::KubernetesSettings {
        use tavern_runtime::kubernetes::objects::{GatewayRoutes, KubernetesSettings, Routes};
        KubernetesSettings {
            namespace: self.namespace.clone(),
            installation: self
                .installation
                .clone()
                .unwrap_or_else(|| tavern_runtime::installation_for(data_dir)),
            image: self.image.clone(),
            stub_image: self.stub_image.clone(),
            tavern_image: self.tavern_image.clone(),
            storage_class: self.storage_class.clone(),
            storage_size: self.storage_size.clone(),
            shared_claim: self.shared_claim.clone(),
            cpu_request: self.cpu_request.clone(),
            memory_request: self.memory_request.clone(),
            cpu_limit: self.cpu_limit.clone(),
            memory_limit: self.memory_limit.clone(),
            routes: match self.routes {
                RoutesMode::Proxy => Routes::Proxy,
                RoutesMode::Gateway => Routes::Gateway(GatewayRoutes {
                    gateway: self.gateway.clone(),
                    gateway_namespace: self.gateway_namespace.clone(),
                    section: self.gateway_section.clone(),
                    standby_service: self.standby_service.clone(),
                    standby_port: self.standby_port,
                }),
            },
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        // Namespaces, Services and Gateways are DNS labels; claims and
        // storage classes may have dots (DNS subdomains).
        let name = |what: &str, v: &str, dots: bool| -> anyhow::Result<()> {
            let ok = !v.is_empty()
                && v.len() <= if dots { 253 } else { 63 }
                && v.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && (dots || !v.contains('.'));
            anyhow::ensure!(
                ok,
                "invalid configuration: kubernetes.{what} {v:?} is not a Kubernetes name (lowercase letters, digits and -{})",
                if dots { ", and dots" } else { ", up to 63" }
            );
            Ok(())
        };
        name("namespace", &self.namespace, false)?;
        name("gateway", &self.gateway, false)?;
        name("standby_service", &self.standby_service, false)?;
        if let Some(v) = &self.gateway_namespace {
            name("gateway_namespace", v, false)?;
        }
        if let Some(v) = &self.gateway_section {
            name("gateway_section", v, false)?;
        }
        if let Some(v) = &self.shared_claim {
            name("shared_claim", v, true)?;
        }
        if let Some(v) = &self.storage_class {
            name("storage_class", v, true)?;
        }
        if let Some(v) = &self.lease {
            name("lease", v, true)?;
        }
        anyhow::ensure!(
            self.lease_grace_seconds >= 1 && self.lease_duration_seconds > self.lease_grace_seconds,
            "invalid configuration: kubernetes.lease_duration_seconds must be longer than kubernetes.lease_grace_seconds (at least 1)"
        );
        if let Some(id) = &self.installation {
            check_installation("kubernetes.installation", id)?;
        }
        anyhow::ensure!(
            self.image.contains("{version}"),
            "invalid configuration: kubernetes.image {:?} must contain {{version}}",
            self.image
        );
        for (what, v) in [
            ("storage_size", &self.storage_size),
            ("cpu_request", &self.cpu_request),
            ("memory_request", &self.memory_request),
            ("cpu_limit", &self.cpu_limit),
            ("memory_limit", &self.memory_limit),
        ] {
            anyhow::ensure!(
                is_quantity(v),
                "invalid configuration: kubernetes.{what} {v:?} is not a Kubernetes quantity (such as 500m, 2, 512Mi or 10Gi)"
            );
        }
        Ok(())
    }
}

/// An installation name: up to 32 letters, digits and `-` (it goes into
/// labels and names).
fn check_installation(key: &str, id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !id.is_empty()
            && id.len() <= 32
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "invalid configuration: {key} {id:?}: use up to 32 letters, digits and -"
    );
    Ok(())
}

/// Whether `v` is a Kubernetes quantity: a decimal number and an optional
/// suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki` … `Ei`, or an exponent).
fn is_quantity(v: &str) -> bool {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, suffix) = v.split_at(split);
    let number_ok = !number.is_empty()
        && number.chars().filter(|&c| c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    // A decimal exponent: `1e3`, `5E-1`.
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    number_ok
        && (exponent
            || matches!(
                suffix,
                "" | "m"
                    | "k"
                    | "M"
                    | "G"
                    | "T"
                    | "P"
                    | "E"
                    | "Ki"
                    | "Mi"
                    | "Gi"
                    | "Ti"
                    | "Pi"
                    | "Ei"
            ))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tavern=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Values given on the command line; `None` leaves lower layers alone.
#[derive(Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub domain: Option<String>,
    pub log_format: Option<LogFormat>,
    pub stub_release: bool,
}

/// Variables that belong to the client commands, not to `serve`.
const CLIENT_VARS: &[&str] = &["server", "token", "config", "ca_file"];

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "the config file {} does not exist",
                    path.display()
                );
                fig = fig.merge(Toml::file_exact(path));
            }
            None if Path::new("tavern.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("tavern.toml"));
            }
            None => {}
        }
        fig = fig.merge(Env::prefixed("TAVERN_").filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            if CLIENT_VARS.contains(&key.as_str()) {
                None
            } else if let Some(rest) = key.strip_prefix("tiers_") {
                // TAVERN_TIERS_<NAME>_<KEY>: tier names have no underscore.
                Some(format!("tiers.{}", rest.replacen('_', ".", 1)).into())
            } else {
                Some(key.replacen('_', ".", 1).into())
            }
        }));
        if let Some(v) = overrides.data_dir {
            fig = fig.merge(Serialized::default("server.data_dir", v));
        }
        if let Some(v) = overrides.listen {
            fig = fig.merge(Serialized::default("server.listen", v));
        }
        if let Some(v) = overrides.domain {
            fig = fig.merge(Serialized::default("server.domain", v));
        }
        if let Some(v) = overrides.log_format {
            fig = fig.merge(Serialized::default("log.format", v));
        }
        if overrides.stub_release {
            fig = fig.merge(Serialized::default("runtime.stub_release", true));
        }
        let config: Config = fig.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration: {}", all.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// A setting that needs a driver or adapter this build was made
    /// without (its cargo feature) is refused, saying how to get it.
    fn check_features(&self) -> anyhow::Result<()> {
        let wanted = [
            (
                "runtime.kind = \"docker\" (or runtime.docker_enabled)",
                "docker",
                self.runtime.docker(),
                cfg!(feature = "docker"),
            ),
            (
                "runtime.kind = \"kubernetes\"",
                "kubernetes",
                self.runtime.kind == RuntimeKind::Kubernetes,
                cfg!(feature = "kubernetes"),
            ),
            (
                "store.url = \"postgres://…\"",
                "postgres",
                self.store.url.as_deref().is_some_and(is_postgres),
                cfg!(feature = "postgres"),
            ),
            (
                "backups.target = \"s3://…\"",
                "s3",
                (self.backups.target.as_deref()).is_some_and(|t| t.starts_with("s3://")),
                cfg!(feature = "s3"),
            ),
        ];
        for (setting, feature, used, built) in wanted {
            anyhow::ensure!(!used || built, not_built_in(setting, feature));
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        let d = &self.server.domain;
        anyhow::ensure!(
            !d.is_empty()
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }),
            "invalid configuration: server.domain {d:?} is not a domain name"
        );
        self.check_features()?;
        self.runtime.ports()?;
        anyhow::ensure!(
            self.server.max_connections.is_none_or(|n| n >= 16)
                && self.server.max_connections_per_client >= 1
                && (1..=3600).contains(&self.server.header_timeout_seconds),
            "invalid configuration: server.max_connections must be at least 16, server.max_connections_per_client at least 1, and server.header_timeout_seconds between 1 and 3600"
        );
        anyhow::ensure!(
            self.runtime.docker_memory_mb >= 64
                && self.runtime.docker_cpus > 0.0
                && self.runtime.docker_cpus <= 256.0,
            "invalid configuration: runtime.docker_memory_mb must be at least 64 and runtime.docker_cpus between 0 and 256"
        );
        if let Some(id) = &self.runtime.docker_installation {
            check_installation("runtime.docker_installation", id)?;
        }
        self.kubernetes.validate()?;
        anyhow::ensure!(
            self.kubernetes.lease.is_none() || self.runtime.kind == RuntimeKind::Kubernetes,
            "invalid configuration: kubernetes.lease elects a leader among Taverns on a cluster: set runtime.kind = \"kubernetes\""
        );
        anyhow::ensure!(
            self.runtime.docker_image.contains("{version}"),
            "invalid configuration: runtime.docker_image {:?} must contain {{version}}",
            self.runtime.docker_image
        );
        anyhow::ensure!(
            self.runtime.crash_limit >= 1
                && self.runtime.stop_grace_seconds >= 1
                && self.runtime.start_timeout_seconds >= 1
                && self.runtime.resync_seconds >= 1,
            "invalid configuration: runtime.crash_limit, stop_grace_seconds, start_timeout_seconds and resync_seconds must be at least 1"
        );
        if let Some(url) = &self.store.url {
            if is_postgres(url) {
                #[cfg(feature = "postgres")]
                tavern_store_sql::check_postgres_url(url).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid configuration: store.url {:?}: {e}",
                        redact_url(url)
                    )
                })?;
            } else {
                anyhow::ensure!(
                    url.starts_with("sqlite://"),
                    "invalid configuration: store.url {:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE",
                    redact_url(url)
                );
            }
        }
        anyhow::ensure!(
            self.store.pool_size >= 1,
            "invalid configuration: store.pool_size must be at least 1"
        );
        self.backup_schedule()?;
        if let Some(t) = &self.backups.target {
            anyhow::ensure!(
                !t.trim().is_empty() && (t.starts_with("s3://") || Path::new(t).is_absolute()),
                "invalid configuration: backups.target {t:?}: use an absolute directory or s3://BUCKET/PREFIX"
            );
            if t.starts_with("s3://") {
                self.backup_target()?;
            }
        }
        anyhow::ensure!(
            self.usage.rate_per_hour.is_finite() && self.usage.rate_per_hour >= 0.0,
            "invalid configuration: usage.rate_per_hour must be a number, 0 or more"
        );
        anyhow::ensure!(
            !self.usage.currency.trim().is_empty() && self.usage.currency.len() <= 8,
            "invalid configuration: usage.currency must be a short name like EUR"
        );
        self.kofi.settings()?;
        self.discord.settings()?;
        let n = self.notify_settings()?;
        if let Some(url) = &n.community_webhook {
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "invalid configuration: discord.webhook_url must be an https:// address"
            );
        }
        anyhow::ensure!(
            self.notifications.retry_initial_seconds >= 1
                && self.notifications.retry_max_seconds >= self.notifications.retry_initial_seconds
                && self.notifications.give_up_hours >= 1,
            "invalid configuration: notifications.retry_initial_seconds and give_up_hours must be at least 1, retry_max_seconds at least retry_initial_seconds"
        );
        for (kofi, tier) in &self.kofi.tiers {
            anyhow::ensure!(
                self.tiers.contains_key(tier),
                "invalid configuration: kofi.tiers maps {kofi:?} to {tier:?}, which is no [tiers.NAME]"
            );
        }
        anyhow::ensure!(
            self.backups.keep_last >= 1,
            "invalid configuration: backups.keep_last must be at least 1 (the newest backup is always kept)"
        );
        if let Some(url) = &self.server.public_url {
            public_parts(url)?;
        }
        match self.tls.mode {
            TlsMode::Off => {}
            TlsMode::Files => anyhow::ensure!(
                self.tls.cert_file.is_some() && self.tls.key_file.is_some(),
                "invalid configuration: tls.mode = \"files\" needs tls.cert_file and tls.key_file"
            ),
            TlsMode::Acme => self.validate_acme()?,
        }
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
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .with_context(|| format!("invalid configuration: log.level {:?}", self.log.level))?;
        Ok(())
    }

    /// Certificates from a CA need names the CA can reach, and a way in.
    fn validate_acme(&self) -> anyhow::Result<()> {
        let tls = &self.tls;
        anyhow::ensure!(
            tls.cert_file.is_none() && tls.key_file.is_none(),
            "invalid configuration: tls.cert_file and tls.key_file are for tls.mode = \"files\", not \"acme\""
        );
        let names = std::iter::once(self.server.domain.clone()).chain(self.public_host());
        for name in names {
            let local = name == "localhost" || name.ends_with(".localhost");
            let ip = name.parse::<std::net::IpAddr>().is_ok();
            anyhow::ensure!(
                name.contains('.') && !local && !ip,
                "invalid configuration: tls.mode = \"acme\" needs a public domain name in server.domain (and server.public_url), not {name:?}"
            );
        }
        anyhow::ensure!(
            tls.acme_directory.starts_with("https://"),
            "invalid configuration: tls.acme_directory {:?} must be an https:// URL",
            tls.acme_directory
        );
        if let Some(email) = &tls.acme_email {
            anyhow::ensure!(
                email.split_once('@').is_some_and(|(a, b)| !a.is_empty()
                    && b.contains('.')
                    && !email.contains(char::is_whitespace)),
                "invalid configuration: tls.acme_email {email:?} is not an email address"
            );
        }
        if let Some(ca) = &tls.acme_ca_file {
            anyhow::ensure!(
                ca.is_file(),
                "invalid configuration: tls.acme_ca_file {} does not exist",
                ca.display()
            );
        }
        anyhow::ensure!(
            tls.acme_challenge != AcmeChallenge::Http01 || tls.http_listen.is_some(),
            "invalid configuration: tls.acme_challenge = \"http-01\" needs tls.http_listen (port 80)"
        );
        Ok(())
    }

    /// Where backups go: the directory or bucket named by
    /// `backups.target`, else `DATA_DIR/backups`.
    pub fn backup_target(&self) -> anyhow::Result<tavern_backup::target::Target> {
        let b = &self.backups;
        let target = match b.target.as_deref() {
            Some(url) if url.starts_with("s3://") => {
                let settings = tavern_backup::target::S3Settings {
                    endpoint: b.s3_endpoint.clone(),
                    region: b.s3_region.clone(),
                    access_key_id: b.s3_access_key_id.clone(),
                    secret_access_key: b.s3_secret_access_key.clone(),
                };
                tavern_backup::target::Target::s3(url, &settings)
            }
            Some(dir) => tavern_backup::target::Target::dir(Path::new(dir)),
            None => tavern_backup::target::Target::dir(&self.server.data_dir.join("backups")),
        };
        target.map_err(|e| anyhow::anyhow!("invalid configuration: backups.target: {e}"))
    }

    /// The backup schedule, if any.
    pub fn backup_schedule(&self) -> anyhow::Result<Option<croner::Cron>> {
        let pattern = self.backups.schedule.trim();
        if pattern.is_empty() {
            return Ok(None);
        }
        pattern.parse::<croner::Cron>().map(Some).map_err(|e| {
            anyhow::anyhow!(
                "invalid configuration: backups.schedule {pattern:?} is not a cron pattern (minute hour day month weekday): {e}"
            )
        })
    }

    /// How backups are taken and kept, for the core.
    pub fn backup_settings(&self) -> anyhow::Result<tavern_core::BackupSettings> {
        let b = &self.backups;
        let threads = match b.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        Ok(tavern_core::BackupSettings {
            target: self.backup_target()?,
            staging: self.server.data_dir.join("tmp").join("backups"),
            threads,
            retention: tavern_backup::retention::Policy {
                keep_last: b.keep_last,
                keep_daily: b.keep_daily,
                keep_weekly: b.keep_weekly,
            },
            after_stop: b.after_stop,
            keep_destroyed: jiff::SignedDuration::from_hours(i64::from(b.keep_destroyed_days) * 24),
            manual_interval: jiff::SignedDuration::from_mins(i64::from(b.manual_interval_minutes)),
            schedule: self.backup_schedule()?,
        })
    }

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

    /// The database: a PostgreSQL URL, or a SQLite file.
    pub fn store_target(&self) -> StoreTarget {
        match &self.store.url {
            Some(url) if is_postgres(url) => StoreTarget::Postgres {
                url: url.clone(),
                pool_size: self.store.pool_size,
            },
            Some(url) => StoreTarget::Sqlite(PathBuf::from(url.trim_start_matches("sqlite://"))),
            None => StoreTarget::Sqlite(self.server.data_dir.join("tavern.db")),
        }
    }

    /// Scheme and port people use to reach Tavern; without `public_url`,
    /// plain HTTP on the port actually bound (`bound`).
    pub fn public_scheme_and_port(&self, bound: SocketAddr) -> (Scheme, Option<u16>) {
        let scheme = match &self.server.public_url {
            Some(url) => return public_parts(url).unwrap_or((Scheme::Http, None)),
            None if self.tls.mode != TlsMode::Off => Scheme::Https,
            None => Scheme::Http,
        };
        let port = bound.port();
        (scheme, (port != scheme.default_port()).then_some(port))
    }
}

impl Config {
    /// The host name of `public_url`, if set (it serves the API too).
    pub fn public_host(&self) -> Option<String> {
        let url = self.server.public_url.as_deref()?;
        let (_, rest) = url.split_once("://")?;
        let host = rest.trim_end_matches('/');
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        Some(name.to_ascii_lowercase())
    }

    /// Where the API answers: `public_url`, else the bound address with a
    /// wildcard shown as `localhost`.
    pub fn api_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.server.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if self.tls.mode == TlsMode::Off {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}:{}", bound.port())
    }
}

/// `https://host[:port][/]` → ("https", port unless default).
fn public_parts(url: &str) -> anyhow::Result<(Scheme, Option<u16>)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid configuration: server.public_url {url:?} must look like https://tavern.example.org[:port]"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme: Scheme = scheme.parse().map_err(|_| bad())?;
    let host = rest.trim_end_matches('/');
    anyhow::ensure!(!host.is_empty() && !host.contains('/'), bad());
    let port = match host.rsplit_once(':') {
        Some((_, p)) => Some(p.parse::<u16>().map_err(|_| bad())?),
        None => None,
    };
    Ok((scheme, port.filter(|p| *p != scheme.default_port())))
}

#[cfg(test)]
// figment's Jail returns its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    /// The keys the settings tables of the docs name (their first column;
    /// `.key` continues the key before it; `tiers.NAME.…` stands for any
    /// tier).
    fn documented() -> std::collections::BTreeSet<String> {
        let docs = [
            include_str!("../../../docs/configuration.md"),
            include_str!("../../../docs/kubernetes.md"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for line in docs.iter().flat_map(|d| d.lines()) {
            let Some(first) = line.strip_prefix("| `").and_then(|l| l.split(" |").next()) else {
                continue;
            };
            let mut section = String::new();
            for name in first.split(", ") {
                let name = name.trim_matches('`');
                let full = match name.strip_prefix('.') {
                    Some(key) => format!("{section}.{key}"),
                    None => name.to_owned(),
                };
                section = full
                    .rsplit_once('.')
                    .map_or(String::new(), |(s, _)| s.to_owned());
                out.insert(full);
            }
        }
        out
    }

    /// Every key of the configuration, as `section.key`.
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    keys(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }

    #[test]
    fn the_docs_name_every_setting_and_only_real_ones() {
        let mut real = std::collections::BTreeSet::new();
        keys(
            "",
            &serde_json::to_value(Config::default()).unwrap(),
            &mut real,
        );
        let tier = serde_json::to_value(TierConfig::default()).unwrap();
        let docs = documented();
        let missing: Vec<&String> = real
            .iter()
            .filter(|k| *k != "tiers" && !docs.contains(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "settings the docs do not name: {missing:?}"
        );
        let unknown: Vec<&String> = docs
            .iter()
            .filter(|k| match k.strip_prefix("tiers.NAME.") {
                Some(field) => tier.get(field).is_none(),
                // A whole section, documented elsewhere.
                None if k.ends_with(".*") => !real.iter().any(|r| r.starts_with(&k[..k.len() - 1])),
                None => !real.contains(*k),
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "the docs name settings that do not exist: {unknown:?}"
        );
    }

    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(f());
            Ok(())
        });
        out.expect("the jail ran the closure")
    }

    #[test]
    fn runs_with_no_file_at_all() {
        let c = with_env(&[], || Config::load(None, Overrides::default()).unwrap());
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.store_target(),
            StoreTarget::Sqlite(PathBuf::from("tavern-data/tavern.db"))
        );
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[server]\ndomain = \"file.example\"\nlisten = \"127.0.0.1:9000\"\n[log]\nformat = \"json\"\n",
            )?;
            jail.set_env("TAVERN_SERVER_DOMAIN", "env.example");
            jail.set_env("TAVERN_RUNTIME_STUB_RELEASE", "true");
            jail.set_env("TAVERN_SERVER", "http://ignored-client-var");
            let c = Config::load(
                Some(Path::new("t.toml")),
                Overrides {
                    listen: Some("127.0.0.1:9001".parse().unwrap()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(c.server.domain, "env.example");
            assert_eq!(c.server.listen.port(), 9001);
            assert_eq!(c.log.format, LogFormat::Json);
            assert!(c.runtime.stub_release);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[server]\nlisten_on = \"x\"\n")?;
            let e = Config::load(Some(Path::new("a.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("listen_on"), "{e}");

            jail.create_file("b.toml", "[server]\nlisten = \"not an address\"\n")?;
            let e = Config::load(Some(Path::new("b.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("listen"), "{e}");

            jail.create_file("c.toml", "[nonsense]\nx = 1\n")?;
            let e = Config::load(Some(Path::new("c.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("nonsense"), "{e}");
            Ok(())
        });
        let e = with_env(&[("TAVERN_RUNTIME_KIND", "lxc")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        let e = e.to_string().to_lowercase();
        assert!(
            e.contains("runtime.kind") && e.contains("lxc") && e.contains("kubernetes"),
            "{e}"
        );
        let e = with_env(&[("TAVERN_SERVER_BODY_LIMIT", "lots")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(
            e.to_string().to_lowercase().contains("server.body_limit"),
            "{e}"
        );
        let e = with_env(&[("TAVERN_STORE_URL", "mysql://x")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("store.url"), "{e}");
        let e = with_env(&[("TAVERN_STORE_POOL_SIZE", "0")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("store.pool_size"), "{e}");
        let e = with_env(&[("TAVERN_USAGE_RATE_PER_HOUR", "-1")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("usage.rate_per_hour"), "{e}");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn postgres_urls_are_checked_and_named_without_their_password() {
        let e = with_env(
            &[(
                "TAVERN_STORE_URL",
                "postgres://tavern:hunter2@db:notaport/tavern",
            )],
            || Config::load(None, Overrides::default()).unwrap_err(),
        );
        let e = e.to_string();
        assert!(
            e.contains("store.url") && e.contains("tavern:***@db"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let c = with_env(
            &[
                ("TAVERN_STORE_URL", "postgresql://tavern@127.0.0.1/tavern"),
                ("TAVERN_STORE_POOL_SIZE", "3"),
            ],
            || Config::load(None, Overrides::default()).unwrap(),
        );
        assert_eq!(
            c.store_target(),
            StoreTarget::Postgres {
                url: "postgresql://tavern@127.0.0.1/tavern".into(),
                pool_size: 3
            }
        );
    }

    /// Each driver and adapter beyond processes, SQLite and directories is
    /// a cargo feature: a build with it takes the setting, a build without
    /// it refuses the setting and says which feature brings it.
    #[test]
    fn settings_need_the_features_this_build_has() {
        for (env, named, feature, built) in [
            (
                [("TAVERN_RUNTIME_KIND", "docker")].as_slice(),
                "runtime.kind",
                "docker",
                cfg!(feature = "docker"),
            ),
            (
                &[("TAVERN_RUNTIME_DOCKER_ENABLED", "true")],
                "runtime.docker_enabled",
                "docker",
                cfg!(feature = "docker"),
            ),
            (
                &[("TAVERN_RUNTIME_KIND", "kubernetes")],
                "runtime.kind",
                "kubernetes",
                cfg!(feature = "kubernetes"),
            ),
            (
                &[("TAVERN_STORE_URL", "postgres://tavern@db/tavern")],
                "store.url",
                "postgres",
                cfg!(feature = "postgres"),
            ),
            (
                &[
                    ("TAVERN_BACKUPS_TARGET", "s3://bucket/tavern"),
                    ("TAVERN_BACKUPS_S3_ENDPOINT", "http://127.0.0.1:9"),
                    ("TAVERN_BACKUPS_S3_REGION", "here"),
                ],
                "backups.target",
                "s3",
                cfg!(feature = "s3"),
            ),
        ] {
            let loaded = with_env(env, || Config::load(None, Overrides::default()));
            match (built, loaded) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(named) && e.contains(&format!("--features {feature}")),
                        "{env:?}: {e}"
                    );
                }
                (true, Err(e)) => panic!("{env:?} refused by a build with `{feature}`: {e}"),
                (false, Ok(_)) => panic!("{env:?} taken by a build without `{feature}`"),
            }
        }
    }

    #[test]
    fn the_kubernetes_section_from_file_and_env_and_its_bad_values_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "k.toml",
                "[runtime]\nkind = \"kubernetes\"\n[kubernetes]\nnamespace = \"worlds\"\nroutes = \"gateway\"\ngateway = \"public\"\nstorage_class = \"ebs.csi.aws.com\"\n",
            )?;
            jail.set_env("TAVERN_KUBERNETES_STORAGE_SIZE", "20Gi");
            jail.set_env("TAVERN_KUBERNETES_INSTALLATION", "prod");
            let loaded = Config::load(Some(Path::new("k.toml")), Overrides::default());
            #[cfg(not(feature = "kubernetes"))]
            assert!(loaded.is_err(), "a build without the driver refuses it");
            #[cfg(feature = "kubernetes")]
            {
                let c = loaded.unwrap();
                assert_eq!(
                    c.runtime.kinds(),
                    [RuntimeKind::Process, RuntimeKind::Kubernetes]
                );
                let s = c.kubernetes.settings(Path::new("/data"));
                assert_eq!(s.namespace, "worlds");
                assert_eq!(s.storage_size, "20Gi");
                assert_eq!(s.installation, "prod");
                assert_eq!(s.storage_class.as_deref(), Some("ebs.csi.aws.com"));
                let tavern_runtime::kubernetes::objects::Routes::Gateway(g) = s.routes else {
                    panic!("gateway routes")
                };
                assert_eq!(g.gateway, "public");
                assert_eq!(g.standby_service, "tavern");
            }
            Ok(())
        });
        for (var, value, named) in [
            (
                "TAVERN_KUBERNETES_NAMESPACE",
                "Worlds",
                "kubernetes.namespace",
            ),
            ("TAVERN_KUBERNETES_NAMESPACE", "a.b", "kubernetes.namespace"),
            (
                "TAVERN_KUBERNETES_MEMORY_LIMIT",
                "1GB",
                "kubernetes.memory_limit",
            ),
            (
                "TAVERN_KUBERNETES_CPU_REQUEST",
                "m",
                "kubernetes.cpu_request",
            ),
            (
                "TAVERN_KUBERNETES_IMAGE",
                "felddy/foundryvtt:13",
                "kubernetes.image",
            ),
            ("TAVERN_KUBERNETES_ROUTES", "ingress", "KUBERNETES.ROUTES"),
            (
                "TAVERN_KUBERNETES_INSTALLATION",
                "a b",
                "kubernetes.installation",
            ),
            (
                "TAVERN_KUBERNETES_SHARED_CLAIM",
                "-x",
                "kubernetes.shared_claim",
            ),
        ] {
            let e = with_env(&[(var, value)], || {
                Config::load(None, Overrides::default()).unwrap_err()
            });
            assert!(e.to_string().contains(named), "{var}={value}: {e}");
        }
        for good in ["500m", "2", "0.5", "512Mi", "10Gi", "1e3", "5E-1"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "1.2.3", "Gi", "1gi", "1e", "1 Gi", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn database_urls_lose_their_passwords_in_messages() {
        for (url, shown) in [
            (
                "postgres://tavern:s3cret@db.example:5432/tavern?sslmode=require",
                "postgres://tavern:***@db.example:5432/tavern?sslmode=require",
            ),
            (
                "postgresql://tavern@db/tavern",
                "postgresql://tavern@db/tavern",
            ),
            ("postgres://a:p@ss@db/x", "postgres://a:***@db/x"),
            ("sqlite:///var/lib/tavern.db", "sqlite:///var/lib/tavern.db"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn kofi_token_from_file_env_or_a_secret_file_and_tiers_that_exist() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "k.toml",
                "[tiers.supporter]\nmax_running = 2\n[kofi.tiers]\nBronze = \"supporter\"\n",
            )?;
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            assert!(c.kofi.settings().unwrap().is_none(), "no token: no webhook");

            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN", "tok-from-env");
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            let k = c.kofi.settings().unwrap().unwrap();
            assert_eq!(k.verification_token, "tok-from-env");
            assert_eq!(k.tiers["Bronze"], "supporter");
            assert!(!format!("{:?}", c.kofi).contains("tok-from-env"));
            assert!(!format!("{k:?}").contains("tok-from-env"));

            jail.create_file("token", "tok-from-file\n")?;
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "token");
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("not both"), "{err}");
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN", "");
            // An empty variable still counts as set; a file alone works.
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("not both"), "{err}");
            jail.clear_env();
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "token");
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            assert_eq!(
                c.kofi.settings().unwrap().unwrap().verification_token,
                "tok-from-file"
            );

            jail.create_file("unmapped.toml", "[kofi.tiers]\nBronze = \"gold\"\n")?;
            let err =
                Config::load(Some(Path::new("unmapped.toml")), Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("\"gold\", which is no [tiers.NAME]"),
                "{err}"
            );
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "missing");
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("cannot read kofi.verification_token_file"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn tiers_sessions_and_licenses_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[licenses]\npreempt_idle = true\n[sessions]\nlead_minutes = 15\n\
                 [tiers.free]\nmax_instances = 1\ndefault = true\n[tiers.supporter]\nmax_running = 2\n",
            )?;
            jail.set_env("TAVERN_TIERS_SUPPORTER_MONTHLY_HOURS", "40");
            jail.set_env("TAVERN_SESSIONS_GRACE_MINUTES", "45");
            let c = Config::load(Some(Path::new("t.toml")), Overrides::default()).unwrap();
            let e = c.economy();
            assert_eq!(e.default_tier.as_deref(), Some("free"));
            assert_eq!(e.tiers["free"].max_instances, Some(1));
            assert_eq!(e.tiers["supporter"].max_running, Some(2));
            assert_eq!(e.tiers["supporter"].monthly_hours, Some(40));
            assert_eq!(e.session_lead, jiff::SignedDuration::from_mins(15));
            assert_eq!(e.session_grace, jiff::SignedDuration::from_mins(45));
            assert_eq!(e.preempt_grace, Some(jiff::SignedDuration::from_mins(10)));
            assert_eq!(e.horizon, jiff::SignedDuration::from_hours(4));

            jail.create_file(
                "two.toml",
                "[tiers.a]\ndefault = true\n[tiers.b]\ndefault = true\n",
            )?;
            let err = Config::load(Some(Path::new("two.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("only one tier"), "{err}");
            jail.create_file("bad.toml", "[tiers.free]\nstorage_gb = 5\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("storage_gb"), "{err}");
            jail.create_file("name.toml", "[tiers.\"Gold Plus\"]\nmax_running = 1\n")?;
            let err = Config::load(Some(Path::new("name.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("Gold Plus"), "{err}");
            Ok(())
        });
        let c = with_env(&[], || Config::load(None, Overrides::default()).unwrap());
        let e = c.economy();
        assert_eq!((e.preempt_grace, e.default_tier), (None, None));
        assert!(e.tiers.is_empty());
    }

    #[test]
    fn api_url_is_public_url_or_a_reachable_address() {
        let mut c = Config::default();
        assert_eq!(
            c.api_url("0.0.0.0:8080".parse().unwrap()),
            "http://localhost:8080"
        );
        assert_eq!(c.api_url("[::1]:81".parse().unwrap()), "http://[::1]:81");
        c.server.public_url = Some("https://t.example.org/".into());
        assert_eq!(
            c.api_url("0.0.0.0:8080".parse().unwrap()),
            "https://t.example.org"
        );
    }

    #[test]
    fn public_url_sets_scheme_and_port() {
        assert_eq!(
            public_parts("https://t.example.org").unwrap(),
            (Scheme::Https, None)
        );
        assert_eq!(
            public_parts("https://t.example.org:8443/").unwrap(),
            (Scheme::Https, Some(8443))
        );
        assert_eq!(
            public_parts("http://t.example.org:80").unwrap(),
            (Scheme::Http, None)
        );
        assert!(public_parts("ftp://x").is_err());
        assert!(public_parts("https://x/path").is_err());
    }
}

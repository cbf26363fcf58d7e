//! The [`Tavern`] service: every operation a user can ask for, checked
//! against the caller's role and ownership, validated, and written with its
//! audit event. Game masters see only their own things; asking for another
//! game master's instance answers "not found", so names do not leak.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tavern_store::{
    ApiToken, Event, Instance, License, NewEvent, Observation, Session, Store, User, now,
};
use tavern_types::{
    DesiredState, LicenseId, LicenseKey, ObservedState, Role, Slug, TokenId, UserId, Username,
    WakeOnVisit,
};

use tavern_runtime::releases::Releases;
use tavern_runtime::{Runtime, foundry_config};
use tokio::sync::Notify;

use crate::CoreError;
use crate::auth::{self, Passwords};
use crate::policy::licenses::{Allocation, Facts, choose_license, choose_preemption, next_free_at};
use crate::policy::quotas::{self, Tier};
use crate::secrets::SecretBox;

/// The runtime drivers this version has.
pub const RUNTIME_KINDS: &[&str] = &["process", "docker", "kubernetes"];

/// Whether worlds of `runtime` keep their data on a cluster (Kubernetes
/// claims) rather than on this machine: backups reach it through the
/// runtime, and it cannot follow a world to another runtime.
pub(crate) fn data_on_cluster(runtime: &str) -> bool {
    runtime == "kubernetes"
}

/// The longest idle timeout one may set: a week.
const MAX_IDLE_MINUTES: u32 = 7 * 24 * 60;

/// Deployment facts the service needs to describe things.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `http` or `https`: how players reach worlds.
    pub public_scheme: String,
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    /// The public port when it is not the scheme's default.
    pub public_port: Option<u16>,
    /// The runtime a new instance gets when none is named.
    pub default_runtime: String,
    /// The runtimes this server offers (`process`, and `docker` when a
    /// Docker engine is configured).
    pub runtimes: Vec<String>,
    /// Where the `license.json` Foundry signed for each key is kept, sealed
    /// (`DATA_DIR/licenses`).
    pub license_vault: std::path::PathBuf,
    /// Reservations, pre-emption and quotas.
    pub economy: Economy,
    /// Worlds live at `<domain>/<slug>/` (Foundry's routePrefix) instead of
    /// `<slug>.<domain>`.
    pub path_routing: bool,
    /// A running world without players sleeps after this long, unless it
    /// has a timeout of its own.
    pub idle_timeout: SignedDuration,
    /// Backups (none: this server takes none).
    pub backups: Option<crate::BackupSettings>,
    /// What an hour of a running world costs, and in which currency.
    pub usage_rate: f64,
    pub usage_currency: String,
    /// Ko-fi's webhook (none: this server takes no payments).
    pub kofi: Option<crate::KofiSettings>,
    /// Where notifications go, and how they are retried.
    pub notify: crate::notifications::NotifySettings,
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
            .unwrap_or(if self.public_scheme == "https" {
                443
            } else {
                80
            })
    }

    pub fn instance_url(&self, slug: &Slug) -> String {
        let port = self.port_suffix();
        if self.path_routing {
            format!("{}://{}{port}/{slug}/", self.public_scheme, self.domain)
        } else {
            format!("{}://{slug}.{}{port}/", self.public_scheme, self.domain)
        }
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

/// An authenticated user on whose behalf the service acts.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    pub(crate) fn name(&self) -> String {
        self.user.username.to_string()
    }

    pub(crate) fn require_admin(&self, what: &str) -> Result<(), CoreError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!("only an admin may {what}")))
        }
    }
}

pub struct NewUser {
    pub username: String,
    pub role: String,
    pub password: String,
    pub tier: Option<String>,
}

pub struct NewInstance {
    pub slug: String,
    pub owner: Option<String>,
    pub release: Option<String>,
    pub license: Option<String>,
    pub runtime: Option<String>,
    pub idle_timeout_minutes: Option<u32>,
    pub wake_on_visit: Option<String>,
}

/// Changes to an instance's own settings: `None` leaves one as it is,
/// `Some(None)` returns it to the server's setting.
#[derive(Debug)]
pub struct InstanceUpdate {
    pub idle_timeout_minutes: Option<Option<u32>>,
    pub wake_on_visit: Option<Option<String>>,
    /// Another Foundry release: the world must be stopped; a pre-upgrade
    /// backup is taken first.
    pub release: Option<String>,
    /// Another runtime (`process` or `docker`): the world must be stopped;
    /// its data stays.
    pub runtime: Option<String>,
}

fn check_idle_minutes(m: u32) -> Result<u32, CoreError> {
    if (1..=MAX_IDLE_MINUTES).contains(&m) {
        Ok(m)
    } else {
        Err(CoreError::invalid(
            "invalid_field",
            "idle_timeout_minutes",
            format!("idle_timeout_minutes must be between 1 and {MAX_IDLE_MINUTES}"),
        ))
    }
}

fn parse_wake(s: &str) -> Result<WakeOnVisit, CoreError> {
    s.parse().map_err(|e: tavern_types::ParseEnumError| {
        CoreError::invalid("invalid_field", "wake_on_visit", e.to_string())
    })
}

pub struct NewLicense {
    pub label: String,
    pub key: String,
    pub owner: Option<String>,
}

/// An instance as people see it.
#[derive(Clone, Debug)]
pub struct InstanceView {
    pub instance: Instance,
    pub owner: Username,
    pub url: String,
    pub license: Option<(LicenseId, String)>,
    /// The Foundry admin key: only in the answer that created the instance.
    pub admin_key: Option<String>,
}

/// A license as people see it: never the key, only its last four characters.
#[derive(Clone, Debug)]
pub struct LicenseView {
    pub license: License,
    pub owner: Option<Username>,
}

/// What an admin sees at a glance: every key and the world on it, the
/// reservations to come, and the worlds that run or have failed.
#[derive(Clone, Debug)]
pub struct Overview {
    pub licenses: Vec<(LicenseView, Option<Instance>)>,
    /// Sessions whose window has not ended, by start.
    pub sessions: Vec<crate::SessionView>,
    pub running: Vec<InstanceView>,
    pub failed: Vec<InstanceView>,
    /// This month's usage, everyone's.
    pub usage: crate::UsageView,
    /// Everyone who has paid through Ko-fi, latest first.
    pub supporters: Vec<crate::SupporterView>,
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Tavern {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) secrets: SecretBox,
    pub(crate) passwords: Passwords,
    pub(crate) settings: Arc<Settings>,
    pub(crate) runtime: Arc<dyn Runtime>,
    releases: Arc<Releases>,
    /// Wakes the reconciler when desired state changes.
    pub(crate) wake: Arc<Notify>,
    /// Wakes the scheduler when sessions change.
    pub(crate) schedule_wake: Arc<Notify>,
    /// Open connections to each world, counted by the proxy.
    pub(crate) activity: crate::activity::Activity,
    /// Where worlds answer, for the proxy (the reconciler publishes it).
    pub(crate) routes: Arc<tokio::sync::watch::Sender<Arc<crate::routes::RouteTable>>>,
    /// Backups and restores under way.
    pub(crate) backup_work: Arc<crate::backups::BackupWork>,
}

/// What license decisions are made from: read once, decided on purely.
pub(crate) struct Snapshot {
    pub licenses: Vec<License>,
    pub instances: Vec<Instance>,
    /// Sessions whose window has not ended.
    pub sessions: Vec<Session>,
    pub now: Timestamp,
    pub horizon: SignedDuration,
}

impl Snapshot {
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            licenses: &self.licenses,
            instances: &self.instances,
            sessions: &self.sessions,
            now: self.now,
            horizon: self.horizon,
        }
    }

    /// A key's label, for messages (never the key).
    pub fn label(&self, id: LicenseId) -> String {
        self.licenses
            .iter()
            .find(|l| l.id == id)
            .map_or_else(|| id.to_string(), |l| l.label.clone())
    }
}

/// A time for people: UTC, to the minute.
pub(crate) fn minutes(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// What the caller can do when no key is free: only admins add keys.
fn advise_on_keys(e: CoreError, caller: &Caller) -> CoreError {
    match e {
        CoreError::Conflict { code, message } => CoreError::Conflict {
            code,
            message: if caller.is_admin() {
                format!("{message}; stop a world, or add a key")
            } else {
                format!(
                    "{message}; stop one of your worlds, wait for the key, or ask an admin for another"
                )
            },
        },
        other => other,
    }
}

fn reserved_error(label: &str, from: Timestamp) -> CoreError {
    CoreError::Conflict {
        code: "license_reserved",
        message: format!(
            "its license {label} is reserved for another world's session from {}",
            minutes(from)
        ),
    }
}

/// A world's name as a user may see it: its slug for an admin or for its
/// owner, "another world" for anyone else (a game master never learns the
/// names of another's worlds).
pub(crate) fn world_name_for(world: Option<&Instance>, viewer: UserId, admin: bool) -> String {
    world
        .filter(|w| admin || w.owner == viewer)
        .map_or_else(|| "another world".to_owned(), |w| w.slug.to_string())
}

pub(crate) fn being_destroyed(i: &Instance) -> CoreError {
    CoreError::Conflict {
        code: "being_destroyed",
        message: format!("{} is being destroyed", i.slug),
    }
}

fn parse_slug(s: &str) -> Result<Slug, CoreError> {
    Slug::parse(s).map_err(|e| {
        let code = if matches!(e, tavern_types::NameError::Reserved(_)) {
            "reserved_slug"
        } else {
            "invalid_slug"
        };
        CoreError::invalid(code, "slug", e.to_string())
    })
}

pub(crate) fn parse_username(field: &'static str, s: &str) -> Result<Username, CoreError> {
    Username::parse(s).map_err(|e| CoreError::invalid("invalid_username", field, e.to_string()))
}

fn parse_license_id(s: &str) -> Result<LicenseId, CoreError> {
    s.parse().map_err(|_| {
        CoreError::invalid(
            "invalid_field",
            "license",
            format!("{s:?} is not a license id"),
        )
    })
}

/// A key's label: 1 to 64 characters, none a control character, neither
/// the first nor the last a space (the API document's pattern says the
/// same).
pub fn check_label(label: &str) -> Result<String, CoreError> {
    if label.is_empty()
        || label.chars().count() > 64
        || label.chars().any(char::is_control)
        || label.starts_with(' ')
        || label.ends_with(' ')
    {
        return Err(CoreError::invalid(
            "invalid_field",
            "label",
            "a label needs 1 to 64 printable characters, not beginning or ending with a space",
        ));
    }
    Ok(label.to_owned())
}

fn check_release(release: &str) -> Result<String, CoreError> {
    let ok = !release.is_empty()
        && release.len() <= 32
        && release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(CoreError::invalid(
            "invalid_field",
            "release",
            format!("{release:?} is not a release name (like 12.331 or stub)"),
        ));
    }
    Ok(release.to_owned())
}

impl Tavern {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: SecretBox,
        settings: Settings,
        runtime: Arc<dyn Runtime>,
        releases: Arc<Releases>,
    ) -> Self {
        Self {
            store,
            secrets,
            passwords: Passwords::new(2),
            settings: Arc::new(settings),
            runtime,
            releases,
            wake: Arc::new(Notify::new()),
            schedule_wake: Arc::new(Notify::new()),
            routes: Arc::new(tokio::sync::watch::Sender::new(Arc::default())),
            activity: crate::activity::Activity::default(),
            backup_work: Arc::default(),
        }
    }

    /// The proxy's handle for counting open connections to worlds.
    pub fn activity(&self) -> crate::activity::Activity {
        self.activity.clone()
    }

    /// The route table as it changes.
    pub fn routes(&self) -> tokio::sync::watch::Receiver<Arc<crate::routes::RouteTable>> {
        self.routes.subscribe()
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Resolves when desired state changed (the reconciler waits on it).
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The Foundry releases this machine has installed.
    pub fn releases(&self) -> Vec<tavern_runtime::releases::ReleaseInfo> {
        self.releases.list()
    }

    /// Installs a Foundry release from its zip, read from `zip` (at most
    /// `limit` bytes; admins only): kept in a file beside the releases
    /// until unpacked, then removed. Answers what was installed.
    pub async fn install_release(
        &self,
        caller: &Caller,
        zip: impl tokio::io::AsyncRead + Unpin + Send,
        limit: u64,
    ) -> Result<tavern_runtime::releases::ReleaseInfo, CoreError> {
        use tavern_runtime::releases::ReleaseError;
        use tokio::io::AsyncReadExt as _;
        caller.require_admin("install releases")?;
        let root = self.releases.root().to_owned();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root)?;
            tempfile::Builder::new()
                .prefix(".upload-")
                .suffix(".zip")
                .tempfile_in(&root)
        })
        .await
        .map_err(|e| CoreError::internal("make an upload file", e))?
        .map_err(|e| CoreError::internal("make an upload file", e))?;
        let (std_file, path) = file.into_parts();
        let mut out = tokio::fs::File::from_std(std_file);
        let copied = tokio::io::copy(&mut zip.take(limit + 1), &mut out)
            .await
            .map_err(|e| {
                CoreError::invalid(
                    "invalid_release",
                    "zip",
                    format!("the upload broke off: {e}"),
                )
            })?;
        if copied > limit {
            return Err(CoreError::invalid(
                "invalid_release",
                "zip",
                format!(
                    "the zip is larger than {} (the most a release may be)",
                    tavern_types::words::size(limit)
                ),
            ));
        }
        out.sync_all()
            .await
            .map_err(|e| CoreError::internal("write the upload", e))?;
        drop(out);
        let releases = self.releases.clone();
        let version = tokio::task::spawn_blocking(move || {
            let installed = releases.install_zip(&path, |_, _| {});
            drop(path);
            installed
        })
        .await
        .map_err(|e| CoreError::internal("install a release", e))?
        .map_err(|e| match e {
            ReleaseError::Exists(v) => CoreError::Conflict {
                code: "release_exists",
                message: format!("release {v} is installed already"),
            },
            ReleaseError::Io { .. } => CoreError::internal("install a release", e),
            other => CoreError::invalid("invalid_release", "zip", other.to_string()),
        })?;
        self.store
            .append_event(&NewEvent::success(
                caller.name(),
                "release.add",
                format!("release:{version}"),
            ))
            .await?;
        let layout = self
            .releases
            .list()
            .into_iter()
            .find(|r| r.version == version)
            .map_or_else(String::new, |r| r.layout);
        Ok(tavern_runtime::releases::ReleaseInfo { version, layout })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ---- start-up ---------------------------------------------------------

    /// On an empty store, creates the admin `admin` and a token for it;
    /// answers the token's secret (to show once), or `None` if users exist.
    pub async fn bootstrap(&self) -> Result<Option<String>, CoreError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let admin = User {
            id: UserId::new(),
            username: parse_username("username", "admin")?,
            role: Role::Admin,
            password_hash: None,
            created_at: now(),
            tier: None,
            email: None,
        };
        self.store
            .create_user(
                &admin,
                &NewEvent::success("system", "user.create", "user:admin").with_detail("bootstrap"),
            )
            .await?;
        let secret = self.issue_token(&admin, "bootstrap").await?;
        Ok(Some(secret))
    }

    pub(crate) async fn issue_token(&self, user: &User, label: &str) -> Result<String, CoreError> {
        let (secret, hash) = auth::new_token();
        let token = ApiToken {
            id: TokenId::new(),
            user_id: user.id,
            token_hash: hash,
            label: label.to_owned(),
            created_at: now(),
        };
        self.store
            .create_token(
                &token,
                &NewEvent::success(
                    user.username.as_str(),
                    "token.create",
                    format!("user:{}", user.username),
                )
                .with_detail(label),
            )
            .await?;
        Ok(secret)
    }

    // ---- authentication ---------------------------------------------------

    /// The caller a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, CoreError> {
        if !token.starts_with(auth::TOKEN_PREFIX) {
            return Err(CoreError::Unauthenticated);
        }
        match self.store.token_by_hash(&auth::token_hash(token)).await? {
            Some((_, user)) => Ok(Caller { user }),
            None => Err(CoreError::Unauthenticated),
        }
    }

    /// Signs out: the token stops working at once.
    pub async fn logout(&self, token: &str) -> Result<(), CoreError> {
        let caller = self.authenticate(token).await?;
        let name = caller.name();
        match self
            .store
            .delete_token(
                &auth::token_hash(token),
                &NewEvent::success(&name, "auth.logout", format!("user:{name}")),
            )
            .await
        {
            // Signed out twice at once: the token is gone either way.
            Ok(()) | Err(tavern_store::StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a username and password and issues a new token.
    pub async fn login(&self, username: &str, password: &str) -> Result<(String, User), CoreError> {
        let user = match Username::parse(username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            // Spend the same effort as a real check so timing does not tell
            // which usernames exist.
            let _ = self.passwords.hash(password.to_owned()).await;
            return Err(CoreError::InvalidCredentials);
        };
        let Some(hash) = user.password_hash.clone() else {
            let _ = self.passwords.hash(password.to_owned()).await;
            return Err(CoreError::InvalidCredentials);
        };
        if !self.passwords.verify(password.to_owned(), hash).await? {
            return Err(CoreError::InvalidCredentials);
        }
        let token = self.issue_token(&user, "login").await?;
        Ok((token, user))
    }

    // ---- users ------------------------------------------------------------

    pub async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User, CoreError> {
        caller.require_admin("create users")?;
        let username = parse_username("username", &new.username)?;
        let role: Role = new
            .role
            .parse()
            .map_err(|e: tavern_types::ParseEnumError| {
                CoreError::invalid("invalid_role", "role", e.to_string())
            })?;
        auth::check_password(&new.password)?;
        let tier = new.tier.map(|t| self.check_tier(&t)).transpose()?;
        if self.store.user_by_name(&username).await?.is_some() {
            return Err(CoreError::Conflict {
                code: "username_taken",
                message: format!("the username {username} is taken"),
            });
        }
        let user = User {
            id: UserId::new(),
            username,
            role,
            password_hash: Some(self.passwords.hash(new.password).await?),
            created_at: now(),
            tier,
            email: None,
        };
        self.store
            .create_user(
                &user,
                &NewEvent::success(
                    caller.name(),
                    "user.create",
                    format!("user:{}", user.username),
                )
                .with_detail(format!("role {role}")),
            )
            .await?;
        Ok(user)
    }

    /// Admins see everyone; a game master sees only themself.
    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<User>, CoreError> {
        if caller.is_admin() {
            Ok(self.store.list_users().await?)
        } else {
            Ok(vec![caller.user.clone()])
        }
    }

    pub(crate) async fn user_named(
        &self,
        field: &'static str,
        name: &str,
    ) -> Result<User, CoreError> {
        let username = parse_username(field, name)?;
        self.store.user_by_name(&username).await?.ok_or_else(|| {
            CoreError::invalid(
                "unknown_user",
                field,
                format!("there is no user {username}"),
            )
        })
    }

    // ---- instances --------------------------------------------------------

    pub async fn create_instance(
        &self,
        caller: &Caller,
        new: NewInstance,
    ) -> Result<InstanceView, CoreError> {
        let slug = parse_slug(&new.slug)?;
        let owner = match &new.owner {
            Some(name) if name != caller.user.username.as_str() => {
                caller.require_admin("create instances for someone else")?;
                self.user_named("owner", name).await?
            }
            _ => caller.user.clone(),
        };
        let runtime = match &new.runtime {
            Some(r) => self.check_runtime(r)?,
            None => self.settings.default_runtime.clone(),
        };
        // Without a release named, the newest installed one: a world
        // without a release could not start.
        let release = match new.release.as_deref() {
            Some(r) => check_release(r)?,
            None => self
                .releases
                .list()
                .pop()
                .map(|r| r.version)
                .ok_or_else(|| {
                    CoreError::invalid(
                        "no_release",
                        "release",
                        "no Foundry release is installed on this server yet: an admin installs \
                         one first (`tavern release add --zip FILE`, or the dashboard's \
                         Releases page), or name one for a docker or kubernetes world",
                    )
                })?,
        };
        self.check_release_for(&runtime, &release)
            .map_err(|e| CoreError::invalid("unknown_release", "release", e))?;
        let release = Some(release);
        let idle_timeout_minutes = new
            .idle_timeout_minutes
            .map(check_idle_minutes)
            .transpose()?;
        let wake_on_visit = new.wake_on_visit.as_deref().map(parse_wake).transpose()?;
        let license = match &new.license {
            Some(id) => {
                let license = self
                    .usable_license(caller, &owner, parse_license_id(id)?)
                    .await?;
                Some(license)
            }
            None => None,
        };
        if let Some((name, tier)) = self.tier_of(&owner).await? {
            let owned = self.store.list_instances(Some(owner.id)).await?.len();
            quotas::check_create(&name, &tier, owned).map_err(CoreError::from)?;
        }
        if self.store.instance(&slug).await?.is_some() {
            return Err(CoreError::Conflict {
                code: "slug_taken",
                message: format!("an instance named {slug} already exists"),
            });
        }
        let admin_key = auth::random_secret()[..24].to_owned();
        let admin_key_sealed = self
            .secrets
            .seal(admin_key.as_bytes())
            .map_err(|e| CoreError::internal("seal admin key", e))?;
        let at = now();
        let instance = Instance {
            id: tavern_types::InstanceId::new(),
            slug,
            owner: owner.id,
            release,
            runtime,
            license: license.as_ref().map(|l| l.id),
            desired_state: DesiredState::Stopped,
            state: ObservedState::Stopped,
            idle_timeout_minutes,
            created_at: at,
            updated_at: at,
            state_reason: None,
            players: 0,
            sockets: 0,
            wake_on_visit,
            world: None,
            foundry_version: None,
            admin_key_sealed: Some(admin_key_sealed),
            awaits: None,
            last_activity_at: None,
        };
        self.store
            .create_instance(
                &instance,
                &NewEvent::success(
                    caller.name(),
                    "instance.create",
                    format!("instance:{}", instance.slug),
                )
                .with_detail(format!("owner {}", owner.username)),
            )
            .await?;
        Ok(InstanceView {
            url: self.settings.instance_url(&instance.slug),
            license: license.map(|l| (l.id, l.label)),
            owner: owner.username,
            instance,
            admin_key: Some(admin_key),
        })
    }

    /// A license `owner` may run: pooled, or pinned to them. Game masters
    /// cannot tell other people's pinned keys from missing ones.
    async fn usable_license(
        &self,
        caller: &Caller,
        owner: &User,
        id: LicenseId,
    ) -> Result<License, CoreError> {
        let not_found = || {
            CoreError::invalid(
                "unknown_license",
                "license",
                format!("there is no license {id}"),
            )
        };
        let license = self.store.license(id).await?.ok_or_else(not_found)?;
        match license.owner {
            Some(pinned) if pinned != owner.id => {
                if caller.is_admin() {
                    Err(CoreError::invalid(
                        "license_pinned",
                        "license",
                        format!("license {id} is pinned to another user"),
                    ))
                } else {
                    Err(not_found())
                }
            }
            _ => Ok(license),
        }
    }

    async fn view(
        &self,
        instance: Instance,
        users: Option<&[User]>,
        licenses: Option<&[License]>,
    ) -> Result<InstanceView, CoreError> {
        let owner = match users.and_then(|us| us.iter().find(|u| u.id == instance.owner)) {
            Some(u) => u.username.clone(),
            None => self
                .store
                .user(instance.owner)
                .await?
                .map(|u| u.username)
                .ok_or_else(|| {
                    CoreError::internal(
                        "read instance owner",
                        format!("owner of {} is missing", instance.slug),
                    )
                })?,
        };
        // The key it holds now, else the key it is configured with.
        let licenses = match licenses {
            Some(ls) => std::borrow::Cow::Borrowed(ls),
            None => std::borrow::Cow::Owned(self.store.list_licenses().await?),
        };
        let license = licenses
            .iter()
            .find(|l| l.bound_to == Some(instance.id))
            .or_else(|| licenses.iter().find(|l| Some(l.id) == instance.license))
            .map(|l| (l.id, l.label.clone()));
        Ok(InstanceView {
            url: self.settings.instance_url(&instance.slug),
            owner,
            license,
            instance,
            admin_key: None,
        })
    }

    /// The instance if the caller may see it; "not found" otherwise.
    pub(crate) async fn visible_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Instance, CoreError> {
        let not_found = || CoreError::NotFound {
            what: "instance",
            key: slug.to_owned(),
        };
        let Ok(parsed) = Slug::parse(slug) else {
            return Err(not_found());
        };
        match self.store.instance(&parsed).await? {
            Some(i) if caller.is_admin() || i.owner == caller.user.id => Ok(i),
            _ => Err(not_found()),
        }
    }

    pub async fn list_instances(&self, caller: &Caller) -> Result<Vec<InstanceView>, CoreError> {
        let owner = (!caller.is_admin()).then_some(caller.user.id);
        let instances = self.store.list_instances(owner).await?;
        let users = if caller.is_admin() {
            self.store.list_users().await?
        } else {
            vec![caller.user.clone()]
        };
        let licenses = self.store.list_licenses().await?;
        let mut out = Vec::with_capacity(instances.len());
        for i in instances {
            out.push(self.view(i, Some(&users), Some(&licenses)).await?);
        }
        Ok(out)
    }

    pub async fn get_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        self.view(i, None, None).await
    }

    /// Changes an instance's idle timeout or who wakes it by visiting.
    pub async fn update_instance(
        &self,
        caller: &Caller,
        slug: &str,
        update: InstanceUpdate,
    ) -> Result<InstanceView, CoreError> {
        let mut i = self.visible_instance(caller, slug).await?;
        if update.release.is_some() || update.runtime.is_some() {
            i = self
                .change_launch(
                    caller,
                    &i,
                    update.release.as_deref(),
                    update.runtime.as_deref(),
                )
                .await?;
        }
        let idle = update
            .idle_timeout_minutes
            .map(|m| m.map(check_idle_minutes).transpose())
            .transpose()?;
        let wake = update
            .wake_on_visit
            .map(|w| w.as_deref().map(parse_wake).transpose())
            .transpose()?;
        let mut detail = Vec::new();
        if let Some(m) = idle {
            detail.push(format!(
                "idle timeout {}",
                m.map_or_else(|| "default".to_owned(), |m| format!("{m} min"))
            ));
        }
        if let Some(w) = wake {
            detail.push(format!(
                "wake on visit {}",
                w.map_or("default", |w| w.as_str())
            ));
        }
        let i = self
            .store
            .update_instance_settings(
                &i.slug,
                idle,
                wake,
                &NewEvent::success(
                    caller.name(),
                    "instance.update",
                    format!("instance:{}", i.slug),
                )
                .with_detail(detail.join(", ")),
            )
            .await?;
        self.wake.notify_one();
        self.view(i, None, None).await
    }

    /// Moves a stopped world to another release or runtime (its data stays
    /// where it is); a new release comes after a pre-upgrade backup of its
    /// data (when backups are on and it has data).
    async fn change_launch(
        &self,
        caller: &Caller,
        i: &Instance,
        release: Option<&str>,
        runtime: Option<&str>,
    ) -> Result<Instance, CoreError> {
        let runtime = match runtime {
            Some(r) => self.check_runtime(r)?,
            None => i.runtime.clone(),
        };
        let release = match release {
            Some(r) => check_release(r)?,
            None => i.release.clone().unwrap_or_default(),
        };
        let new_release = i.release.as_deref() != Some(release.as_str());
        if !new_release && runtime == i.runtime {
            return Ok(i.clone());
        }
        // A world on Kubernetes keeps its data on the cluster, the others
        // on this machine: its data cannot follow it across.
        if data_on_cluster(&runtime) != data_on_cluster(&i.runtime) {
            return Err(CoreError::invalid(
                "invalid_runtime",
                "runtime",
                format!(
                    "{} cannot move between {} and {}: its data would stay behind (create a new world instead)",
                    i.slug, i.runtime, runtime
                ),
            ));
        }
        if release.is_empty() {
            return Err(CoreError::invalid(
                "invalid_field",
                "release",
                format!("{} has no release: name one with the runtime", i.slug),
            ));
        }
        self.check_release_for(&runtime, &release)
            .map_err(|e| CoreError::invalid("unknown_release", "release", e))?;
        if i.desired_state != DesiredState::Stopped || i.state != ObservedState::Stopped {
            return Err(CoreError::Conflict {
                code: "instance_running",
                message: format!("stop {} before changing its release or runtime", i.slug),
            });
        }
        if new_release && self.settings.backups.is_some() {
            self.backup_now(i, tavern_types::BackupKind::PreUpgrade)
                .await?;
        }
        let from = format!(
            "{} on {}",
            i.release.as_deref().unwrap_or("none"),
            i.runtime
        );
        Ok(self
            .store
            .set_instance_launch(
                &i.slug,
                &release,
                &runtime,
                &NewEvent::success(
                    caller.name(),
                    "instance.upgrade",
                    format!("instance:{}", i.slug),
                )
                .with_detail(format!("{from} → {release} on {runtime}")),
            )
            .await?)
    }

    /// A runtime this server runs worlds on.
    fn check_runtime(&self, runtime: &str) -> Result<String, CoreError> {
        if self.settings.runtimes.iter().any(|r| r == runtime) {
            return Ok(runtime.to_owned());
        }
        let why = if RUNTIME_KINDS.contains(&runtime) {
            format!("this server is not set up for the {runtime} runtime")
        } else {
            format!("{runtime:?} is not a runtime")
        };
        Err(CoreError::invalid(
            "invalid_runtime",
            "runtime",
            format!("{why}; it offers: {}", self.settings.runtimes.join(", ")),
        ))
    }

    /// Whether a release can run on a runtime: installed here for
    /// processes; any version for containers and pods (its image is
    /// pulled at the first start).
    fn check_release_for(&self, runtime: &str, release: &str) -> Result<(), String> {
        if runtime == "docker" || runtime == "kubernetes" {
            return Ok(());
        }
        self.releases
            .resolve(release)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Asks for an instance to be destroyed: the reconciler stops its
    /// server, archives its data directory and removes the record.
    pub async fn destroy_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        let i = self
            .store
            .set_desired_state(
                &i.slug,
                DesiredState::Destroyed,
                Some(&format!("being destroyed by {}", caller.name())),
                &NewEvent::success(
                    caller.name(),
                    "instance.destroy",
                    format!("instance:{}", i.slug),
                ),
            )
            .await?;
        self.wake.notify_one();
        self.view(i, None, None).await
    }

    /// Asks for an instance to run or to stop; the reconciler does it.
    pub async fn set_desired(
        &self,
        caller: &Caller,
        slug: &str,
        desired: DesiredState,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        if i.desired_state == DesiredState::Destroyed {
            return Err(being_destroyed(&i));
        }
        if desired == DesiredState::Running {
            self.check_startable(&i)?;
            if i.desired_state != DesiredState::Running {
                self.check_start_quota(&i).await?;
            }
            if i.state == ObservedState::Failed {
                // Asked to start again after a failure: a fresh start.
                let fresh = Observation {
                    state: ObservedState::Stopped,
                    state_reason: Some("start requested after a failure".into()),
                    players: 0,
                    sockets: 0,
                    world: i.world.clone(),
                    foundry_version: i.foundry_version.clone(),
                    at: now(),
                };
                self.store.record_observation(i.id, &fresh, None).await?;
            }
            // The key and the wish to run are written together.
            let start = NewEvent::success(
                caller.name(),
                "instance.start",
                format!("instance:{}", i.slug),
            );
            let promised = i.desired_state == DesiredState::Running && i.awaits.is_some();
            match self.claim_license(&i, caller.name(), Some(&start)).await {
                Ok(_) => {}
                // Already on its way: a key was promised to it and the world
                // holding that key is stopping.
                Err(e) if promised && e.code() == "license_in_use" => {}
                Err(e) if e.code() == "no_license_available" => {
                    if !self.preempt_for(&i, caller.name(), &start).await? {
                        return Err(advise_on_keys(e, caller));
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            self.store
                .set_desired_state(
                    &i.slug,
                    desired,
                    Some(&format!("stopped by {}", caller.name())),
                    &NewEvent::success(
                        caller.name(),
                        "instance.stop",
                        format!("instance:{}", i.slug),
                    ),
                )
                .await?;
        }
        self.wake.notify_one();
        let i = self.visible_instance(caller, slug).await?;
        self.view(i, None, None).await
    }

    /// A visit wakes a sleeping world when anyone may wake worlds: it
    /// starts as "visitor", within its owner's quota and the license rules.
    /// A world already asked to run (or being destroyed) is left alone.
    pub async fn wake_for_visitor(&self, slug: &str) -> Result<(), CoreError> {
        let not_found = || CoreError::NotFound {
            what: "instance",
            key: slug.to_owned(),
        };
        let parsed = Slug::parse(slug).map_err(|_| not_found())?;
        let i = self.store.instance(&parsed).await?.ok_or_else(not_found)?;
        if i.desired_state != DesiredState::Stopped {
            return Ok(());
        }
        self.check_startable(&i)?;
        self.check_start_quota(&i).await?;
        let start = NewEvent::success("visitor", "instance.start", format!("instance:{}", i.slug))
            .with_detail("woken by a visit");
        self.claim_license(&i, "visitor".into(), Some(&start))
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// A start needs an installed release.
    pub(crate) fn check_startable(&self, i: &Instance) -> Result<(), CoreError> {
        let release = i.release.as_deref().ok_or_else(|| CoreError::Conflict {
            code: "no_release",
            message: format!(
                "{0} has no Foundry release: give it one with `tavern instance set {0} \
                 --release VERSION` (or on its page in the dashboard)",
                i.slug
            ),
        })?;
        self.check_release_for(&i.runtime, release)
            .map_err(|message| CoreError::Conflict {
                code: "release_missing",
                message,
            })?;
        Ok(())
    }

    /// Everything a license decision depends on, read now.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, CoreError> {
        let now = now();
        Ok(Snapshot {
            licenses: self.store.list_licenses().await?,
            instances: self.store.list_instances(None).await?,
            sessions: self.store.list_sessions(now).await?,
            now,
            horizon: self.settings.economy.horizon,
        })
    }

    /// Makes `i` hold a license key (its own if it has one already), by
    /// the allocation policy and the store's compare-and-set; answers it.
    /// With `start`, the same store transaction asks the world to run.
    pub(crate) async fn claim_license(
        &self,
        i: &Instance,
        actor: String,
        start: Option<&NewEvent>,
    ) -> Result<LicenseId, CoreError> {
        // A lost race for one key means trying the next free one.
        let mut last = None;
        for _ in 0..8 {
            let snap = self.snapshot().await?;
            let id = match choose_license(i, &snap.facts()) {
                Allocation::Keep(id) | Allocation::Take(id) => id,
                Allocation::Busy { license, holder } => {
                    // Told to `i`'s owner (also as the world's state later).
                    let holder = world_name_for(
                        snap.instances.iter().find(|o| o.id == holder),
                        i.owner,
                        false,
                    );
                    return Err(CoreError::Conflict {
                        code: "license_in_use",
                        message: format!(
                            "its license {} runs {holder} now; one license runs one server at a time",
                            snap.label(license)
                        ),
                    });
                }
                Allocation::Reserved { license, from } => {
                    return Err(reserved_error(&snap.label(license), from));
                }
                Allocation::Missing(license) => {
                    return Err(CoreError::Conflict {
                        code: "license_missing",
                        message: format!("its license {license} no longer exists"),
                    });
                }
                Allocation::NoneFree => {
                    last = Some(snap);
                    break;
                }
            };
            let event = NewEvent::success(actor.clone(), "license.bind", format!("license:{id}"))
                .with_detail(format!("to instance {}", i.slug));
            if self.store.bind_license(id, i.id, &event, start).await? {
                return Ok(id);
            }
        }
        let when = last
            .and_then(|snap| next_free_at(i, &snap.facts()))
            .map(|t| {
                if t <= now() {
                    "; one is being freed now, try again shortly".to_owned()
                } else {
                    format!("; the next one is expected to free up at {}", minutes(t))
                }
            })
            .unwrap_or_default();
        Err(CoreError::Conflict {
            code: "no_license_available",
            message: format!(
                "every license key this world may use runs another world now or is reserved for a session soon{when}"
            ),
        })
    }

    /// With pre-emption on: stops the world that has been idle longest on
    /// a key `i` may use and promises that key to `i`, which starts once
    /// the old server is confirmed gone. False when no world qualifies.
    async fn preempt_for(
        &self,
        i: &Instance,
        actor: String,
        start: &NewEvent,
    ) -> Result<bool, CoreError> {
        let Some(grace) = self.settings.economy.preempt_grace else {
            return Ok(false);
        };
        let snap = self.snapshot().await?;
        let Some(p) = choose_preemption(i, &snap.facts(), grace) else {
            return Ok(false);
        };
        let Some(holder) = snap.instances.iter().find(|h| h.id == p.holder) else {
            return Ok(false);
        };
        let idle = holder
            .last_activity_at
            .map(|t| snap.now.duration_since(t).as_secs() / 60)
            .unwrap_or_default();
        self.store
            .set_desired_state(
                &holder.slug,
                DesiredState::Stopped,
                Some(&format!(
                    "stopped after {idle} minutes without players: another world needed its key"
                )),
                &NewEvent::success(
                    actor.clone(),
                    "license.preempt",
                    format!("instance:{}", holder.slug),
                )
                .with_detail(format!(
                    "stopped after {idle} minutes without players: its license {} goes to {}",
                    snap.label(p.license),
                    i.slug
                )),
            )
            .await?;
        let start = start
            .clone()
            .with_detail(format!("with the license of {}", holder.slug));
        self.store
            .promise_license(i.id, p.license, None, &start)
            .await?;
        self.wake.notify_one();
        Ok(true)
    }

    /// The quota tier that applies to `user`: none for admins; the tier
    /// a Ko-fi subscription gives them while it lasts; else the user's own
    /// if it is configured, else the default tier.
    pub(crate) async fn tier_of(&self, user: &User) -> Result<Option<(String, Tier)>, CoreError> {
        if user.role == Role::Admin {
            return Ok(None);
        }
        let economy = &self.settings.economy;
        let supporter = self.supporter_tier_of(user.id).await?.map(|(t, _)| t);
        let name = supporter
            .as_ref()
            .into_iter()
            .chain(user.tier.as_ref())
            .find(|t| economy.tiers.contains_key(*t))
            .or(economy.default_tier.as_ref());
        Ok(name.and_then(|n| economy.tiers.get(n).map(|t| (n.clone(), t.clone()))))
    }

    pub(crate) fn check_tier(&self, name: &str) -> Result<String, CoreError> {
        let tiers = &self.settings.economy.tiers;
        if tiers.contains_key(name) {
            return Ok(name.to_owned());
        }
        let known: Vec<&str> = tiers.keys().map(String::as_str).collect();
        Err(CoreError::invalid(
            "unknown_tier",
            "tier",
            if known.is_empty() {
                format!("there is no tier {name:?}: no [tiers.NAME] is configured")
            } else {
                format!(
                    "there is no tier {name:?}; configured: {}",
                    known.join(", ")
                )
            },
        ))
    }

    /// May `i`'s owner start one more world now?
    pub(crate) async fn check_start_quota(&self, i: &Instance) -> Result<(), CoreError> {
        let owner = self.store.user(i.owner).await?.ok_or_else(|| {
            CoreError::internal("check quota", format!("owner of {} is missing", i.slug))
        })?;
        let Some((name, tier)) = self.tier_of(&owner).await? else {
            return Ok(());
        };
        let running = self
            .store
            .list_instances(Some(owner.id))
            .await?
            .iter()
            .filter(|o| o.id != i.id && o.desired_state == DesiredState::Running)
            .count();
        let now = now();
        let (from, to) = quotas::month_of(now);
        let usage = self.store.list_usage(Some(owner.id), from, to).await?;
        let used = quotas::used_between(&usage, from, to, now);
        quotas::check_start(&name, &tier, running, used).map_err(CoreError::from)
    }

    /// Sets a user's quota tier (admins only); `None` for the default.
    pub async fn set_user_tier(
        &self,
        caller: &Caller,
        username: &str,
        tier: Option<String>,
    ) -> Result<User, CoreError> {
        caller.require_admin("set tiers")?;
        let user = self.user_named("username", username).await?;
        let tier = tier.map(|t| self.check_tier(&t)).transpose()?;
        let detail = tier.clone().unwrap_or_else(|| "default".into());
        Ok(self
            .store
            .set_user_tier(
                user.id,
                tier.as_deref(),
                &NewEvent::success(
                    caller.name(),
                    "user.tier",
                    format!("user:{}", user.username),
                )
                .with_detail(format!("tier {detail}")),
            )
            .await?)
    }

    /// Changes a user's tier and e-mail address (admins only) and their
    /// own notification webhook (themselves, or an admin); `None` leaves
    /// one as it is. All are checked before any changes.
    pub async fn update_user(
        &self,
        caller: &Caller,
        username: &str,
        tier: Option<Option<String>>,
        email: Option<Option<String>>,
        webhook_url: Option<Option<String>>,
    ) -> Result<User, CoreError> {
        if tier.is_some() || email.is_some() {
            caller.require_admin("change users")?;
        }
        let mut user = self.user_named("username", username).await?;
        if user.id != caller.user.id {
            caller.require_admin("change other users")?;
        }
        if let Some(Some(t)) = &tier {
            self.check_tier(t)?;
        }
        if let Some(Some(e)) = &email {
            crate::supporters::check_email(e)?;
        }
        if let Some(Some(w)) = &webhook_url {
            crate::notifications::check_webhook(w)?;
        }
        if let Some(email) = email {
            user = self
                .set_user_email(caller, username, email.as_deref())
                .await?;
        }
        if let Some(url) = webhook_url {
            self.set_user_webhook(caller, username, url.as_deref())
                .await?;
        }
        if let Some(tier) = tier {
            user = self.set_user_tier(caller, username, tier).await?;
        }
        Ok(user)
    }

    /// Switchover: hands license `license` to the world `slug`. The world on
    /// the key now is stopped first (refused while players are connected,
    /// unless `force`); the key moves once that server is confirmed gone,
    /// and then `slug` starts with it. Only an admin, or the owner of the
    /// world that holds (or awaits) the key, may take it from that world;
    /// anyone else hears that another world has it, never which.
    pub async fn activate_license(
        &self,
        caller: &Caller,
        license: &str,
        slug: &str,
        force: bool,
    ) -> Result<InstanceView, CoreError> {
        let target = self.visible_instance(caller, slug).await?;
        let not_found = || CoreError::NotFound {
            what: "license",
            key: license.to_owned(),
        };
        let id: LicenseId = license.parse().map_err(|_| not_found())?;
        let key = self.store.license(id).await?.ok_or_else(not_found)?;
        if let Some(pinned) = key.owner
            && pinned != target.owner
        {
            return Err(if caller.is_admin() {
                CoreError::Conflict {
                    code: "license_pinned",
                    message: format!("license {id} is pinned to another user"),
                }
            } else {
                not_found()
            });
        }
        if target.desired_state == DesiredState::Destroyed {
            return Err(being_destroyed(&target));
        }
        self.check_startable(&target)?;
        if target.desired_state != DesiredState::Running {
            self.check_start_quota(&target).await?;
        }
        let snap = self.snapshot().await?;
        if let Some(s) = snap.facts().reserved_for_other(target.id, id) {
            return Err(reserved_error(&key.label, s.window_start));
        }
        let licenses = snap.licenses;
        if let Some(other) = licenses
            .iter()
            .find(|l| l.bound_to == Some(target.id) && l.id != id)
        {
            return Err(CoreError::Conflict {
                code: "instance_running",
                message: format!(
                    "{} runs with license {} now; stop it first",
                    target.slug, other.label
                ),
            });
        }
        let instances = snap.instances;
        let taken_from = |holder: &Instance| -> Result<(), CoreError> {
            if caller.is_admin() || holder.owner == caller.user.id {
                return Ok(());
            }
            Err(CoreError::Conflict {
                code: "license_in_use",
                message: format!(
                    "license {} is in use by another world; only an admin or that world's owner can take it away",
                    key.label
                ),
            })
        };
        if let Some(waiting) = instances
            .iter()
            .find(|o| o.id != target.id && o.awaits == Some(id))
        {
            taken_from(waiting)?;
        }
        if let Some(holder) = key.bound_to.filter(|h| *h != target.id) {
            let holder = instances
                .iter()
                .find(|o| o.id == holder)
                .ok_or_else(|| CoreError::internal("switchover", "the key's holder is missing"))?;
            taken_from(holder)?;
            if holder.players > 0 && !force {
                return Err(CoreError::Conflict {
                    code: "players_connected",
                    message: format!(
                        "{} players are connected to {}; pass force to stop it anyway",
                        holder.players, holder.slug
                    ),
                });
            }
            self.store
                .set_desired_state(
                    &holder.slug,
                    DesiredState::Stopped,
                    Some(&format!(
                        "stopped by {}: its key went to another world",
                        caller.name()
                    )),
                    &NewEvent::success(
                        caller.name(),
                        "instance.stop",
                        format!("instance:{}", holder.slug),
                    )
                    .with_detail(format!("switchover: its license goes to {}", target.slug)),
                )
                .await?;
        }
        self.store
            .set_instance_license(
                &target.slug,
                Some(id),
                &NewEvent::success(caller.name(), "license.activate", format!("license:{id}"))
                    .with_detail(format!("for instance {}", target.slug)),
            )
            .await?;
        let target = self
            .store
            .set_desired_state(
                &target.slug,
                DesiredState::Running,
                None,
                &NewEvent::success(
                    caller.name(),
                    "instance.start",
                    format!("instance:{}", target.slug),
                ),
            )
            .await?;
        self.wake.notify_one();
        self.view(target, None, None).await
    }

    fn vault_path(&self, id: LicenseId) -> std::path::PathBuf {
        self.settings
            .license_vault
            .join(id.to_string())
            .join("license.json.sealed")
    }

    /// Keeps the `license.json` Foundry signed in `i`'s world for the key it
    /// holds (sealed), so the next world with this key need not sign again.
    async fn keep_signed_license(&self, i: &Instance, held: &License) -> Result<(), CoreError> {
        let Some(text) = self.runtime.license_file(&i.slug).await else {
            return Ok(());
        };
        let key = self.license_key(held.id).await?;
        if !foundry_config::is_signed_for(&text, key.expose()) {
            return Ok(());
        }
        let sealed = self
            .secrets
            .seal(text.as_bytes())
            .map_err(|e| CoreError::internal("seal the signed license", e))?;
        let path = self.vault_path(held.id);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            crate::secrets::write_private(&tmp, &sealed)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| CoreError::internal("keep the signed license", e))
    }

    /// The signed `license.json` kept for a key, if any.
    pub(crate) fn signed_license(&self, id: LicenseId) -> Option<String> {
        let sealed = std::fs::read(self.vault_path(id)).ok()?;
        String::from_utf8(self.secrets.open(&sealed).ok()?).ok()
    }

    /// Frees the key `i` holds, once its server is confirmed gone; first
    /// keeps what Foundry signed for it.
    pub(crate) async fn release_license(&self, i: &Instance) -> Result<(), CoreError> {
        let held = self
            .store
            .list_licenses()
            .await?
            .into_iter()
            .find(|l| l.bound_to == Some(i.id));
        let Some(held) = held else { return Ok(()) };
        if let Err(e) = self.keep_signed_license(i, &held).await {
            tracing::warn!(slug = %i.slug, error = %e, "could not keep the signed license.json");
        }
        let event = NewEvent::success("system", "license.release", format!("instance:{}", i.slug))
            .with_detail("the server is confirmed stopped");
        self.store.release_license(i.id, &event).await?;
        Ok(())
    }

    /// The objects the runtime writes for a world, as YAML (admins: they
    /// describe the cluster). Only worlds on a runtime of declarative
    /// objects (Kubernetes) have them.
    pub async fn world_manifests(&self, caller: &Caller, slug: &str) -> Result<String, CoreError> {
        caller.require_admin("see a world's manifests")?;
        let i = self.visible_instance(caller, slug).await?;
        let none = || CoreError::Conflict {
            code: "no_manifests",
            message: format!(
                "{} runs on the {} runtime, which writes no manifests (only kubernetes does)",
                i.slug, i.runtime
            ),
        };
        if !data_on_cluster(&i.runtime) {
            return Err(none());
        }
        let spec = self
            .spec_with(&i, false)
            .await
            .map_err(|why| CoreError::Conflict {
                code: "no_manifests",
                message: format!("{} cannot be described yet: {why}", i.slug),
            })?;
        let running = i.desired_state == DesiredState::Running;
        match self.runtime.manifests(&spec, running) {
            Some(Ok(yaml)) => Ok(yaml),
            Some(Err(e)) => Err(CoreError::internal("render the world's manifests", e)),
            None => Err(none()),
        }
    }

    /// The last `tail` lines of a world's server output.
    pub async fn instance_logs(
        &self,
        caller: &Caller,
        slug: &str,
        tail: usize,
    ) -> Result<Vec<String>, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        self.runtime
            .logs(&i.slug, tail.clamp(1, 10_000))
            .await
            .map_err(|e| CoreError::internal("read logs", e))
    }

    /// What the runtime needs to start `i`.
    pub(crate) async fn spec_for(
        &self,
        i: &Instance,
    ) -> Result<tavern_runtime::InstanceSpec, String> {
        self.spec_with(i, true).await
    }

    /// What the runtime is given for `i`; without `need_key`, a world that
    /// holds no license key is described without one.
    pub(crate) async fn spec_with(
        &self,
        i: &Instance,
        need_key: bool,
    ) -> Result<tavern_runtime::InstanceSpec, String> {
        let release = i.release.as_deref().ok_or("the instance has no release")?;
        let launch = match i.runtime.as_str() {
            "docker" => tavern_runtime::Launch::Container {
                release: release.to_owned(),
            },
            "kubernetes" => tavern_runtime::Launch::Pod {
                release: release.to_owned(),
            },
            _ => self.releases.resolve(release).map_err(|e| e.to_string())?,
        };
        let held = self
            .store
            .list_licenses()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|l| l.bound_to == Some(i.id));
        let (license_key, signed_license) = match held {
            Some(held) => (
                Some(self.license_key(held.id).await.map_err(|e| e.to_string())?),
                self.signed_license(held.id),
            ),
            None if need_key => return Err("it holds no license key".into()),
            None => (None, None),
        };
        let admin_hash = self.admin_hash(i).map_err(|e| e.to_string())?;
        Ok(tavern_runtime::InstanceSpec {
            id: i.id,
            slug: i.slug.clone(),
            launch,
            config: tavern_runtime::FoundryConfig {
                hostname: self.settings.instance_host(&i.slug),
                route_prefix: self.settings.path_routing.then(|| i.slug.to_string()),
                proxy_ssl: self.settings.public_scheme == "https",
                proxy_port: Some(self.settings.public_port_or_default()),
                license_key,
                signed_license,
                admin_hash,
            },
        })
    }

    /// What Foundry's `admin.txt` holds for a world: its admin key's hash,
    /// in felddy's format (none for a world without an admin key).
    pub(crate) fn admin_hash(&self, i: &Instance) -> Result<Option<String>, CoreError> {
        let Some(sealed) = &i.admin_key_sealed else {
            return Ok(None);
        };
        let opened = || -> Result<String, String> {
            let key = self.secrets.open(sealed).map_err(|e| e.to_string())?;
            String::from_utf8(key).map_err(|e| e.to_string())
        };
        let key = opened().map_err(|e| CoreError::internal("open the admin key", e))?;
        Ok(Some(foundry_config::admin_key_hash(
            &key,
            foundry_config::DEFAULT_ADMIN_SALT,
        )))
    }

    // ---- licenses ---------------------------------------------------------

    pub async fn add_license(
        &self,
        caller: &Caller,
        new: NewLicense,
    ) -> Result<LicenseView, CoreError> {
        caller.require_admin("add licenses")?;
        let label = check_label(&new.label)?;
        let key = LicenseKey::parse(&new.key)
            .map_err(|e| CoreError::invalid("invalid_license_key", "key", e.to_string()))?;
        let owner = match &new.owner {
            Some(name) => Some(self.user_named("owner", name).await?),
            None => None,
        };
        let sealed = self
            .secrets
            .seal(key.expose().as_bytes())
            .map_err(|e| CoreError::internal("seal license key", e))?;
        let license = License {
            id: LicenseId::new(),
            label,
            key_sealed: sealed,
            key_last4: key.last4(),
            owner: owner.as_ref().map(|u| u.id),
            created_at: now(),
            bound_to: None,
        };
        self.store
            .create_license(
                &license,
                &NewEvent::success(
                    caller.name(),
                    "license.add",
                    format!("license:{}", license.id),
                )
                .with_detail(format!("label {}", license.label)),
            )
            .await?;
        Ok(LicenseView {
            license,
            owner: owner.map(|u| u.username),
        })
    }

    /// Admins see every license; a game master sees the pool and their own.
    pub async fn list_licenses(&self, caller: &Caller) -> Result<Vec<LicenseView>, CoreError> {
        let users = self.store.list_users().await?;
        Ok(self
            .store
            .list_licenses()
            .await?
            .into_iter()
            .filter(|l| caller.is_admin() || l.owner.is_none() || l.owner == Some(caller.user.id))
            .map(|license| LicenseView {
                owner: license
                    .owner
                    .and_then(|o| users.iter().find(|u| u.id == o).map(|u| u.username.clone())),
                license,
            })
            .collect())
    }

    pub async fn remove_license(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        caller.require_admin("remove licenses")?;
        let id: LicenseId = id.parse().map_err(|_| CoreError::NotFound {
            what: "license",
            key: id.to_owned(),
        })?;
        self.store
            .delete_license(
                id,
                &NewEvent::success(caller.name(), "license.remove", format!("license:{id}")),
            )
            .await?;
        Ok(())
    }

    /// Renames a license key and pins it to a game master or returns it
    /// to the pool (`owner`: `Some(None)`); absent fields stay as they
    /// are. Pinning it is refused while someone else's world uses it.
    pub async fn update_license(
        &self,
        caller: &Caller,
        id: &str,
        label: Option<String>,
        owner: Option<Option<String>>,
    ) -> Result<LicenseView, CoreError> {
        caller.require_admin("change licenses")?;
        let not_found = || CoreError::NotFound {
            what: "license",
            key: id.to_owned(),
        };
        let lid: LicenseId = id.parse().map_err(|_| not_found())?;
        let current = self.store.license(lid).await?.ok_or_else(not_found)?;
        let label = match label {
            Some(l) => check_label(&l)?,
            None => current.label.clone(),
        };
        let owner = match owner {
            Some(Some(name)) => Some(self.user_named("owner", &name).await?),
            Some(None) => None,
            None => match current.owner {
                Some(o) => self.store.user(o).await?,
                None => None,
            },
        };
        let detail = format!(
            "label {label}, {}",
            owner.as_ref().map_or("the pool".to_owned(), |u| format!(
                "pinned to {}",
                u.username
            ))
        );
        let license = self
            .store
            .update_license(
                lid,
                &label,
                owner.as_ref().map(|u| u.id),
                &NewEvent::success(caller.name(), "license.update", format!("license:{lid}"))
                    .with_detail(detail),
            )
            .await?;
        Ok(LicenseView {
            license,
            owner: owner.map(|u| u.username),
        })
    }

    /// The clear key of a license, for the runtime to hand to Foundry.
    pub async fn license_key(&self, id: LicenseId) -> Result<LicenseKey, CoreError> {
        let license = self.store.license(id).await?.ok_or(CoreError::NotFound {
            what: "license",
            key: id.to_string(),
        })?;
        let clear = self
            .secrets
            .open(&license.key_sealed)
            .map_err(|e| CoreError::internal("open license key", e))?;
        let clear =
            String::from_utf8(clear).map_err(|e| CoreError::internal("open license key", e))?;
        LicenseKey::parse(&clear).map_err(|e| CoreError::internal("open license key", e))
    }

    /// Every key with the world on it, the worlds running or failed, this
    /// month's usage and the supporters.
    pub async fn admin_overview(&self, caller: &Caller) -> Result<Overview, CoreError> {
        caller.require_admin("see the overview")?;
        let instances = self.list_instances(caller).await?;
        let licenses = self
            .list_licenses(caller)
            .await?
            .into_iter()
            .map(|l| {
                let on = l
                    .license
                    .bound_to
                    .and_then(|id| instances.iter().find(|v| v.instance.id == id))
                    .map(|v| v.instance.clone());
                (l, on)
            })
            .collect();
        let (mut running, mut failed) = (Vec::new(), Vec::new());
        for v in instances {
            match v.instance.state {
                ObservedState::Failed => failed.push(v),
                ObservedState::Stopped => {}
                _ => running.push(v),
            }
        }
        Ok(Overview {
            licenses,
            sessions: self.list_sessions(caller).await?,
            running,
            failed,
            usage: self.usage_report(caller, None, None).await?,
            supporters: self.supporters(caller).await?,
        })
    }

    // ---- audit ------------------------------------------------------------

    pub async fn list_events(&self, caller: &Caller, limit: u32) -> Result<Vec<Event>, CoreError> {
        caller.require_admin("read the audit log")?;
        Ok(self.store.list_events(limit.clamp(1, 1000)).await?)
    }
}

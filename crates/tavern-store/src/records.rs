//! The rows the store keeps, as plain data. Secrets arrive here already
//! hashed (passwords, tokens) or encrypted (license keys).

use jiff::Timestamp;
use tavern_types::{
    BackupFormat, BackupId, BackupKind, BackupStatus, DesiredState, EventId, InstanceId, InviteId,
    LicenseId, ObservedState, Role, RuntimeKind, SessionId, Slug, TokenId, UserId, Username,
    WakeOnVisit,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub role: Role,
    /// Argon2id PHC string; `None` for users who sign in only with tokens.
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    /// The quota tier (a `[tiers.NAME]` of the configuration); `None`: the
    /// default tier.
    pub tier: Option<String>,
    /// Where Ko-fi payments from this address count for this user
    /// (lowercase); unique among users.
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    /// Hex SHA-256 of the token's secret; the secret itself is never stored.
    pub token_hash: String,
    pub label: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    pub slug: Slug,
    pub owner: UserId,
    pub release: Option<String>,
    pub runtime: RuntimeKind,
    pub license: Option<LicenseId>,
    pub desired_state: DesiredState,
    pub state: ObservedState,
    pub idle_timeout_minutes: Option<u32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Why the world is in its state, for people: a failure or a crash, or
    /// why it stops or sleeps (kept from `Store::set_desired_state`).
    pub state_reason: Option<String>,
    /// Connected players, from Foundry's `/api/status`.
    pub players: u32,
    /// Open connections (tabs) through the proxy.
    pub sockets: u32,
    /// Who wakes it by visiting; `None`: the server's setting.
    pub wake_on_visit: Option<WakeOnVisit>,
    /// The active world's id and the Foundry version, from `/api/status`.
    pub world: Option<String>,
    pub foundry_version: Option<String>,
    /// The Foundry admin key, sealed by the caller's secret box.
    pub admin_key_sealed: Option<Vec<u8>>,
    /// A key promised to this world (a prepared session, a pre-emption):
    /// it takes that key as soon as it is free, and no other world may.
    /// Cleared when the world binds a key or is asked to stop.
    pub awaits: Option<LicenseId>,
    /// When players were last seen (or the server last became running).
    pub last_activity_at: Option<Timestamp>,
}

/// What the reconciler saw of one world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub state: ObservedState,
    pub state_reason: Option<String>,
    pub players: u32,
    pub sockets: u32,
    pub world: Option<String>,
    pub foundry_version: Option<String>,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    pub id: LicenseId,
    pub label: String,
    /// The key sealed by the caller's secret box; opaque to the store.
    pub key_sealed: Vec<u8>,
    /// The key's last four characters, the only part ever shown.
    pub key_last4: String,
    /// `Some` for a key pinned to one game master, `None` for the pool.
    pub owner: Option<UserId>,
    pub created_at: Timestamp,
    /// The world this key runs now (held until its server is confirmed gone).
    pub bound_to: Option<InstanceId>,
}

/// A scheduled play session: it holds `license` for the window
/// `[window_start, window_end)` (the session's start less the lead time, to
/// its end plus the grace time). Windows of one key never overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub instance: InstanceId,
    pub license: LicenseId,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// The username who scheduled it.
    pub created_by: String,
    pub created_at: Timestamp,
    /// When the scheduler started its world; until then its key may still
    /// move to another equal key to fit other sessions.
    pub prepared_at: Option<Timestamp>,
    /// When its owner was reminded that it begins soon.
    pub reminded_at: Option<Timestamp>,
}

/// One observed running interval of a world (open while `stopped_at` is
/// `None`), kept after the world is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageInterval {
    pub instance: InstanceId,
    pub slug: String,
    pub owner: UserId,
    pub license: Option<LicenseId>,
    pub started_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
    pub reason: Option<String>,
}

/// The current time at the precision every store keeps (microseconds), so
/// that what is written compares equal to what is read back.
pub fn now() -> Timestamp {
    let micros = Timestamp::now().as_microsecond();
    Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// How a recorded action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// An audit record about to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Who acted: a username, or `system`.
    pub actor: String,
    /// What was done, as `noun.verb` (`instance.create`).
    pub action: String,
    /// What it was done to, as `kind:name` (`instance:dragon-heist`).
    pub target: String,
    pub outcome: Outcome,
    /// A short human note; never a secret.
    pub detail: Option<String>,
    pub at: Timestamp,
}

impl NewEvent {
    pub fn success(actor: impl Into<String>, action: &str, target: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.to_owned(),
            target: target.into(),
            outcome: Outcome::Success,
            detail: None,
            at: now(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// A stored audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub at: Timestamp,
}

/// A snapshot of a world's data directory. Kept after its world is
/// destroyed (the owner may still want it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub id: BackupId,
    pub instance: InstanceId,
    pub slug: Slug,
    pub owner: UserId,
    pub kind: BackupKind,
    pub status: BackupStatus,
    /// Copied while its world ran (and verified); else taken while it was
    /// stopped.
    pub live: bool,
    /// Never pruned by retention.
    pub locked: bool,
    /// The username (or `system`) that asked for it.
    pub created_by: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The backup target it went to (a directory or `s3://…`).
    pub target: String,
    /// An archive of its own, or a snapshot in its world's repository.
    pub format: BackupFormat,
    /// Set once complete.
    pub archive: Option<ArchiveFacts>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a complete backup's archive or snapshot is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFacts {
    /// Its key in the target: the archive's, or the repository's
    /// (`repositories/<slug>`).
    pub key: String,
    /// Bytes of the compressed archive, and its SHA-256 (hex); of a
    /// snapshot, the bytes it added to the repository (compressed and
    /// encrypted) and its id (the SHA-256 of its file there).
    pub size: u64,
    pub sha256: String,
    /// Files in it, and their bytes before compression.
    pub files: u64,
    pub bytes: u64,
}

/// What a Ko-fi payment was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentKind {
    Donation,
    Subscription,
    Commission,
    ShopOrder,
}

impl PaymentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentKind::Donation => "donation",
            PaymentKind::Subscription => "subscription",
            PaymentKind::Commission => "commission",
            PaymentKind::ShopOrder => "shop_order",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "donation" => Some(PaymentKind::Donation),
            "subscription" => Some(PaymentKind::Subscription),
            "commission" => Some(PaymentKind::Commission),
            "shop_order" => Some(PaymentKind::ShopOrder),
            _ => None,
        }
    }
}

/// A supporter's payment as Ko-fi reported it, kept once per Ko-fi
/// transaction; `user` is set once the supporter is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Ko-fi's `kofi_transaction_id`.
    pub transaction: String,
    pub message_id: String,
    pub kind: PaymentKind,
    pub from_name: String,
    /// Lowercase; `None` when Ko-fi sent none.
    pub email: Option<String>,
    /// In hundredths of `currency`.
    pub amount_cents: i64,
    /// ISO 4217, uppercase.
    pub currency: String,
    pub tier_name: Option<String>,
    pub first_subscription: bool,
    /// Ko-fi's timestamp.
    pub paid_at: Timestamp,
    pub recorded_at: Timestamp,
    pub user: Option<UserId>,
}

/// An invitation to create an account. Its code is a secret shown once;
/// the store keeps its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub id: InviteId,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub role: Role,
    /// The quota tier new accounts get (`None`: the default).
    pub tier: Option<String>,
    pub max_uses: u32,
    pub uses: u32,
    pub expires_at: Timestamp,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// A message for a Discord webhook, about to join the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotification {
    /// What happened: `world_started`, `backup_failed`, …
    pub kind: String,
    /// `community`, or `user:<id>` (that user's own webhook).
    pub destination: String,
    pub message: String,
    pub created_at: Timestamp,
}

/// A message in the outbox, delivered at least once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub kind: String,
    pub destination: String,
    pub message: String,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    /// Set when retrying stopped for good.
    pub gave_up_at: Option<Timestamp>,
}

/// A world's name that Tavern keeps in DNS (`[dns] mode = "per-world"`):
/// a row exists once Tavern has tried to write it, so that Tavern removes
/// only names it made, and says how the last attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsName {
    /// The full host name, without the final dot (`dragon-heist.games.example`).
    pub host: String,
    /// The world it leads to.
    pub slug: Slug,
    /// It held what it should when last looked at.
    pub held: bool,
    /// Why the last attempt failed; never a secret.
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// When it was last looked at.
    pub checked_at: Timestamp,
    /// When it is next due to be looked at.
    pub next_attempt_at: Timestamp,
}

/// A world's place in object storage (`[storage]`) and the key that
/// reaches only it: a row exists once Tavern has tried to make it, so that
/// Tavern removes only what it made, and says how the last attempt went.
#[derive(Clone, PartialEq, Eq)]
pub struct StoragePlace {
    pub instance: InstanceId,
    pub slug: Slug,
    pub bucket: String,
    /// Its folder within a shared bucket.
    pub folder: Option<String>,
    /// The provider's user whose key reaches only this place.
    pub user: String,
    /// The key's id, once made.
    pub access_key_id: Option<String>,
    /// The key's secret, sealed; never shown.
    pub secret_sealed: Option<Vec<u8>>,
    /// The place and its key are ready for Foundry.
    pub ready: bool,
    /// Why the last attempt failed; never a secret.
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Bytes stored there when last counted.
    pub bytes: Option<u64>,
    /// When it was last looked at, and when next.
    pub checked_at: Timestamp,
    pub next_attempt_at: Timestamp,
}

/// Leaves the sealed secret out.
impl std::fmt::Debug for StoragePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoragePlace")
            .field("instance", &self.instance)
            .field("slug", &self.slug)
            .field("bucket", &self.bucket)
            .field("folder", &self.folder)
            .field("user", &self.user)
            .field("access_key_id", &self.access_key_id)
            .field("ready", &self.ready)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .field("bytes", &self.bytes)
            .field("checked_at", &self.checked_at)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish_non_exhaustive()
    }
}

/// How an attempt to deliver a notification ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered {
        at: Timestamp,
    },
    /// Failed; tried again at `next_attempt_at`.
    Retry {
        next_attempt_at: Timestamp,
        error: String,
    },
    /// Failed, and no more tries.
    GaveUp {
        at: Timestamp,
        error: String,
    },
}

/// One version of a package in the community's library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryPackage {
    pub kind: crate::PackageKind,
    pub id: String,
    pub version: String,
    pub title: Option<String>,
    /// Where its manifest is: updates read it again.
    pub manifest_url: String,
    /// Where this version's zip came from.
    pub download_url: String,
    /// The zip's SHA-256, hex.
    pub sha256: String,
    /// Its files' bytes, unpacked.
    pub bytes: u64,
    pub compatibility: crate::Compatibility,
    pub requires: Vec<crate::Requirement>,
    pub added_by: String,
    pub added_at: Timestamp,
}

/// A library package one world uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorldPackage {
    pub instance: InstanceId,
    pub kind: crate::PackageKind,
    pub id: String,
    pub version: String,
}

/// A library package a backup's world used when the backup was taken,
/// with where that version came from (so that a restore can fetch it
/// again once the library no longer has it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackupPackage {
    pub kind: crate::PackageKind,
    pub id: String,
    pub version: String,
    pub manifest_url: String,
    pub download_url: String,
    /// The zip's SHA-256, hex.
    pub sha256: String,
}

/// A password account's second factor: a TOTP secret (sealed by the
/// core), confirmed once its first code was right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpFactor {
    pub user: UserId,
    pub secret_sealed: Vec<u8>,
    pub created_at: Timestamp,
    /// `None` while the enrolment awaits its first code: such a factor is
    /// not asked for at sign-in.
    pub confirmed_at: Option<Timestamp>,
    /// The last time step whose code was accepted: no code of it or of an
    /// earlier step is accepted again.
    pub last_step: Option<i64>,
}

/// An outside account a user signs in with: `subject` as `provider`
/// (`discord` is not one: the bot's link on the user row serves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user: UserId,
    pub linked_at: Timestamp,
}

//! The Store port: every piece of Tavern's persistent state goes through the
//! [`Store`] trait, so that SQLite and PostgreSQL adapters are interchangeable
//! without touching callers. `conformance` (the feature of that name) is the
//! one test suite that every adapter runs; release builds leave it out.
//!
//! Invariants the adapters uphold: a change and its audit [`NewEvent`] are
//! written in one transaction (both or neither); uniqueness (usernames,
//! slugs, token hashes) and references (an instance's license) are enforced by
//! the database, not only by callers.

#[cfg(feature = "conformance")]
pub mod conformance;
mod records;

pub use records::*;

use async_trait::async_trait;
use jiff::Timestamp;
pub use tavern_foundry::manifest::{Compatibility, PackageKind, Requirement};
use tavern_types::{
    BackupFormat, BackupId, DesiredState, InstanceId, InviteId, LicenseId, Role, RuntimeKind,
    SessionId, Slug, UserId, Username, WakeOnVisit,
};

/// What a store can fail with. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {key:?} already exists")]
    Conflict { what: &'static str, key: String },
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    #[error("{what} {key:?} is still in use by {by}")]
    InUse {
        what: &'static str,
        key: String,
        by: String,
    },
    #[error("stored data is corrupt in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The database cannot be reached now (it is restarting, say); the
    /// same call may succeed later.
    #[error("the database is unavailable during {op}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store operation {op} failed")]
    Backend {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Persistence for users, tokens, instances, licenses and the audit log:
/// one trait per resource, all of them together a `Store`.
///
/// Every mutating method takes the [`NewEvent`] that records it and writes
/// both atomically. Lookups answer `Ok(None)` for absent rows; mutations of
/// absent rows answer [`StoreError::NotFound`].
pub trait Store:
    UserStore
    + InstanceStore
    + LicenseStore
    + SessionStore
    + BackupStore
    + PaymentStore
    + InviteStore
    + OutboxStore
    + DnsStore
    + StorageStore
    + PackageStore
    + SignInStore
    + EventStore
    + NoticeStore
    + 'static
{
}

impl<T> Store for T where
    T: UserStore
        + InstanceStore
        + LicenseStore
        + SessionStore
        + BackupStore
        + PaymentStore
        + InviteStore
        + OutboxStore
        + DnsStore
        + StorageStore
        + PackageStore
        + SignInStore
        + EventStore
        + NoticeStore
        + 'static
{
}

/// Users, their API tokens, e-mail addresses, Discord links, webhooks and link codes.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: &User, event: &NewEvent) -> StoreResult<()>;
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn user_by_name(&self, name: &Username) -> StoreResult<Option<User>>;
    /// All users, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn count_users(&self) -> StoreResult<u64>;
    /// Sets a user's quota tier (`None`: the default tier).
    async fn set_user_tier(
        &self,
        user: UserId,
        tier: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<User>;
    /// Sets a user's role (as an identity provider's groups say).
    async fn set_user_role(&self, user: UserId, role: Role, event: &NewEvent) -> StoreResult<User>;
    /// Stores a token by the hash of its secret.
    async fn create_token(&self, token: &ApiToken, event: &NewEvent) -> StoreResult<()>;
    /// The token with this secret hash and the user it belongs to.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<(ApiToken, User)>>;
    /// Forgets a token (signing out). [`StoreError::NotFound`] if no token
    /// has this hash.
    async fn delete_token(&self, token_hash: &str, event: &NewEvent) -> StoreResult<()>;
    /// Sets or clears a user's e-mail address (lowercase).
    /// [`StoreError::Conflict`] when another user has it.
    async fn set_user_email(
        &self,
        user: UserId,
        email: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<User>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Stores a one-time link code for `user`, by the hash of the code.
    async fn create_link_code(
        &self,
        code_hash: &str,
        user: UserId,
        expires_at: Timestamp,
        event: &NewEvent,
    ) -> StoreResult<()>;
    /// Uses up a link code: the user it was made for, if it exists and has
    /// not expired at `now`. Either way it cannot be used again; expired
    /// codes are removed too.
    async fn take_link_code(&self, code_hash: &str, now: Timestamp) -> StoreResult<Option<UserId>>;
    /// Links a Discord account to `user` (moving it from any user it was
    /// linked to before), or unlinks the user's (`None`).
    async fn link_discord(
        &self,
        user: UserId,
        discord_id: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<()>;
    /// The user a Discord account is linked to.
    async fn user_by_discord(&self, discord_id: &str) -> StoreResult<Option<User>>;
    /// The Discord account linked to `user`, if any.
    async fn discord_of(&self, user: UserId) -> StoreResult<Option<String>>;
    /// Sets or clears a user's own notification webhook (sealed by the
    /// caller: the address holds Discord's secret).
    async fn set_user_webhook(
        &self,
        user: UserId,
        sealed: Option<&[u8]>,
        event: &NewEvent,
    ) -> StoreResult<()>;
    async fn user_webhook(&self, user: UserId) -> StoreResult<Option<Vec<u8>>>;
}

/// Instances (worlds): what people want of them, what the runtime saw,
/// and the usage intervals those observations open and close.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Inserts an instance. [`StoreError::Conflict`] if the slug is taken,
    /// [`StoreError::NotFound`] if its owner or license does not exist.
    async fn create_instance(&self, instance: &Instance, event: &NewEvent) -> StoreResult<()>;
    async fn instance(&self, slug: &Slug) -> StoreResult<Option<Instance>>;
    /// Instances, oldest first; only those of `owner` when given.
    async fn list_instances(&self, owner: Option<UserId>) -> StoreResult<Vec<Instance>>;
    /// Sets what people want of the instance; answers it as it is now.
    /// Anything but running also withdraws a promised key (`awaits`) and
    /// keeps `reason` (why, in words its owner may read: no other world is
    /// named) as its `state_reason`, which the reconciler keeps while the
    /// world stops and sleeps.
    async fn set_desired_state(
        &self,
        slug: &Slug,
        desired: DesiredState,
        reason: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<Instance>;
    /// Changes an instance's own settings: its idle timeout and who wakes
    /// it by visiting (`Some(None)` clears one back to the server's).
    async fn update_instance_settings(
        &self,
        slug: &Slug,
        idle_timeout_minutes: Option<Option<u32>>,
        wake_on_visit: Option<Option<WakeOnVisit>>,
        event: &NewEvent,
    ) -> StoreResult<Instance>;
    /// Sets the Foundry release an instance runs and the runtime it runs
    /// on (from its next start).
    async fn set_instance_launch(
        &self,
        slug: &Slug,
        release: &str,
        runtime: RuntimeKind,
        event: &NewEvent,
    ) -> StoreResult<Instance>;
    /// Sets the key an instance is configured to run with (`None`: any).
    async fn set_instance_license(
        &self,
        slug: &Slug,
        license: Option<LicenseId>,
        event: &NewEvent,
    ) -> StoreResult<Instance>;
    /// Records what the runtime saw, with an event when it is news. Players
    /// seen, the last player leaving, or a server becoming running set
    /// `last_activity_at`; becoming running opens a usage interval, leaving
    /// running closes it.
    async fn record_observation(
        &self,
        id: InstanceId,
        observation: &Observation,
        event: Option<&NewEvent>,
    ) -> StoreResult<()>;
    /// Removes the instance row for good, freeing any key it holds.
    async fn delete_instance(&self, slug: &Slug, event: &NewEvent) -> StoreResult<()>;
    /// Observed running intervals that overlap `[from, to)` (open ones
    /// included), only `owner`'s when given. Intervals open when an
    /// observation first says `running` and close when one says otherwise,
    /// or when the instance is deleted.
    async fn list_usage(
        &self,
        owner: Option<UserId>,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<UsageInterval>>;
}

/// The license pool, and the binding of keys to instances that keeps a
/// key on one server at a time.
#[async_trait]
pub trait LicenseStore: Send + Sync {
    /// Binds a free license to an instance, atomically (compare-and-set):
    /// `Ok(true)` when the instance holds it now (also when it already did),
    /// `Ok(false)` when another instance holds it or the instance holds
    /// another key. A key is never bound to two instances. `bind_event` is
    /// written when the key is newly bound; binding fulfils a promise
    /// (`awaits` is cleared). With `start`, the same
    /// transaction sets the instance's desired state to running and writes
    /// that event, so a world that is asked to run always holds its key.
    async fn bind_license(
        &self,
        license: LicenseId,
        instance: InstanceId,
        bind_event: &NewEvent,
        start: Option<&NewEvent>,
    ) -> StoreResult<bool>;
    /// Frees the key an instance holds, if any, and answers which; but
    /// never while the instance is asked to run and has not failed (the
    /// caller's view may be older than a start).
    async fn release_license(
        &self,
        instance: InstanceId,
        event: &NewEvent,
    ) -> StoreResult<Option<LicenseId>>;
    /// Inserts a license (its key already encrypted by the caller).
    async fn create_license(&self, license: &License, event: &NewEvent) -> StoreResult<()>;
    async fn license(&self, id: LicenseId) -> StoreResult<Option<License>>;
    /// Licenses, oldest first.
    async fn list_licenses(&self) -> StoreResult<Vec<License>>;
    /// Renames a license and pins it to `owner` (`None`: the shared pool).
    /// Pinning it is [`StoreError::InUse`] while a world of anyone else
    /// names it, holds it or awaits it, or a session of anyone else's that
    /// has not ended reserves it.
    async fn update_license(
        &self,
        id: LicenseId,
        label: &str,
        owner: Option<UserId>,
        event: &NewEvent,
    ) -> StoreResult<License>;
    /// Removes a license. [`StoreError::InUse`] while an instance names it,
    /// holds it or awaits it, or a session that has not ended reserves it.
    async fn delete_license(&self, id: LicenseId, event: &NewEvent) -> StoreResult<()>;
    /// Promises `license` to `instance` and asks the instance to run, in one
    /// transaction: the world takes that key as soon as it is free, and no
    /// other world may take it meanwhile. With `session`, marks that session
    /// prepared. [`StoreError::NotFound`] when the instance is gone or being
    /// destroyed, or the session is gone.
    async fn promise_license(
        &self,
        instance: InstanceId,
        license: LicenseId,
        session: Option<SessionId>,
        event: &NewEvent,
    ) -> StoreResult<()>;
}

/// Scheduled sessions and the key windows they reserve.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Writes a new session and, in the same transaction, moves the
    /// not-yet-prepared sessions in `moves` to other keys. Afterwards no two
    /// windows of one key may overlap; if they would, or a session to move
    /// has been prepared or removed meanwhile, nothing changes and the
    /// answer is [`StoreError::Conflict`] (`what` = `"reservation"`).
    async fn create_session(
        &self,
        session: &Session,
        moves: &[(SessionId, LicenseId)],
        event: &NewEvent,
    ) -> StoreResult<()>;
    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// Sessions whose window ends after `after`, by start.
    async fn list_sessions(&self, after: Timestamp) -> StoreResult<Vec<Session>>;
    /// Cancels a session, freeing its window.
    async fn delete_session(&self, id: SessionId, event: &NewEvent) -> StoreResult<()>;
    /// Marks that a session's owner was reminded of it: `Ok(true)` the
    /// first time (the event is written then), `Ok(false)` after.
    async fn mark_session_reminded(&self, id: SessionId, event: &NewEvent) -> StoreResult<bool>;
}

/// Backups' rows (their archives live in a backup target).
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Inserts a backup (normally `in_progress`).
    async fn create_backup(&self, backup: &Backup, event: &NewEvent) -> StoreResult<()>;
    /// Ends a backup that is in progress: complete with its archive, or
    /// failed with a reason (`Err`). [`StoreError::NotFound`] when there is
    /// no such backup in progress (it ended already).
    async fn finish_backup(
        &self,
        id: BackupId,
        at: Timestamp,
        outcome: Result<&ArchiveFacts, &str>,
        event: &NewEvent,
    ) -> StoreResult<Backup>;
    async fn backup(&self, id: BackupId) -> StoreResult<Option<Backup>>;
    /// Backups, newest first: only `owner`'s and only of `slug` when given.
    async fn list_backups(
        &self,
        owner: Option<UserId>,
        slug: Option<&Slug>,
    ) -> StoreResult<Vec<Backup>>;
    /// Locks a backup against retention, or unlocks it.
    async fn set_backup_locked(
        &self,
        id: BackupId,
        locked: bool,
        event: &NewEvent,
    ) -> StoreResult<Backup>;
    /// Removes a backup's row (its archive is the caller's to remove).
    async fn delete_backup(&self, id: BackupId, event: &NewEvent) -> StoreResult<()>;
    /// Points a complete backup at where it is kept now (an archive moved
    /// into its world's repository): its format, target and facts.
    /// [`StoreError::NotFound`] when there is no such complete backup.
    async fn move_backup(
        &self,
        id: BackupId,
        format: BackupFormat,
        target: &str,
        facts: &ArchiveFacts,
        event: &NewEvent,
    ) -> StoreResult<Backup>;
    /// The backup repositories' password, sealed, if one was kept.
    async fn repository_password(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Keeps `sealed` as the repositories' password unless one is kept
    /// already (another replica was first); answers the one kept.
    async fn keep_repository_password(
        &self,
        sealed: &[u8],
        event: &NewEvent,
    ) -> StoreResult<Vec<u8>>;
}

/// Ko-fi supporters' payments.
#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records a payment once per Ko-fi transaction: `Ok(true)` when it is
    /// new; `Ok(false)` when that transaction is recorded already (nothing
    /// changes, no event is written).
    async fn record_payment(&self, payment: &Payment, event: &NewEvent) -> StoreResult<bool>;
    /// Gives `user` the payments no user has yet that are the transaction
    /// `transaction` or came from `email`; answers how many. The event is
    /// written only when there were some.
    async fn assign_payments(
        &self,
        user: UserId,
        transaction: Option<&str>,
        email: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<u64>;
    /// The payment of one Ko-fi transaction.
    async fn payment(&self, transaction: &str) -> StoreResult<Option<Payment>>;
    /// The user the latest assigned payment from `email` went to.
    async fn payer(&self, email: &str) -> StoreResult<Option<UserId>>;
    /// Payments, newest first; only `user`'s when given.
    async fn list_payments(&self, user: Option<UserId>) -> StoreResult<Vec<Payment>>;
}

/// Invitations, and signing up with one.
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// Inserts an invitation.
    async fn create_invite(&self, invite: &Invite, event: &NewEvent) -> StoreResult<()>;
    /// Invitations, oldest first (used up and expired ones included).
    async fn list_invites(&self) -> StoreResult<Vec<Invite>>;
    async fn invite_by_code(&self, code_hash: &str) -> StoreResult<Option<Invite>>;
    async fn delete_invite(&self, id: InviteId, event: &NewEvent) -> StoreResult<()>;
    /// Uses one of an invitation's uses to create `user`, in one
    /// transaction, and answers the invitation as it is now.
    /// [`StoreError::NotFound`] when there is no such code, or it is used
    /// up or expired at `user.created_at`; [`StoreError::Conflict`] when
    /// the username is taken (the use is not spent).
    async fn accept_invite(
        &self,
        code_hash: &str,
        user: &User,
        event: &NewEvent,
    ) -> StoreResult<Invite>;
}

/// The notification outbox that follows the audit log.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// How far into the audit log the outbox has read (`None`: never).
    async fn outbox_cursor(&self) -> StoreResult<Option<i64>>;
    /// Moves the outbox's cursor from `from` to `to` and adds `items`, in
    /// one transaction: `Ok(false)`, changing nothing, when the cursor was
    /// not at `from` (another process moved it).
    async fn enqueue_notifications(
        &self,
        from: Option<i64>,
        to: i64,
        items: &[NewNotification],
    ) -> StoreResult<bool>;
    /// Undelivered notifications due at `now`, oldest first.
    async fn due_notifications(&self, now: Timestamp, limit: u32)
    -> StoreResult<Vec<Notification>>;
    /// Records how an attempt to deliver one ended.
    async fn finish_notification(&self, id: i64, outcome: &Delivery) -> StoreResult<()>;
    /// The newest notifications, newest first.
    async fn list_notifications(&self, limit: u32) -> StoreResult<Vec<Notification>>;
}

/// The worlds' names Tavern writes in DNS (per-world mode).
#[async_trait]
pub trait DnsStore: Send + Sync {
    /// Every name Tavern has written or tried to, by host.
    async fn list_dns_names(&self) -> StoreResult<Vec<DnsName>>;
    /// One name, by host.
    async fn dns_name(&self, host: &str) -> StoreResult<Option<DnsName>>;
    /// Records how an attempt on a name went (inserting or replacing its
    /// row), with `event` when it is news.
    async fn put_dns_name(&self, name: &DnsName, event: Option<&NewEvent>) -> StoreResult<()>;
    /// Forgets a name once its records are gone.
    async fn delete_dns_name(&self, host: &str, event: &NewEvent) -> StoreResult<()>;
}

/// Worlds' places in object storage (`[storage]`).
#[async_trait]
pub trait StorageStore: Send + Sync {
    /// Every place Tavern has made or tried to, oldest world first.
    async fn list_storage_places(&self) -> StoreResult<Vec<StoragePlace>>;
    /// One world's place.
    async fn storage_place(&self, instance: InstanceId) -> StoreResult<Option<StoragePlace>>;
    /// Records how an attempt on a place went (inserting or replacing its
    /// row), with `event` when it is news.
    async fn put_storage_place(
        &self,
        place: &StoragePlace,
        event: Option<&NewEvent>,
    ) -> StoreResult<()>;
    /// Forgets a place once it is removed.
    async fn delete_storage_place(&self, instance: InstanceId, event: &NewEvent)
    -> StoreResult<()>;
}

/// The community's package library and the packages each world uses.
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Every version in the library.
    async fn list_library_packages(&self) -> StoreResult<Vec<LibraryPackage>>;
    /// Adds a version; [`StoreError::Conflict`] when it is there already.
    async fn add_library_package(&self, p: &LibraryPackage, event: &NewEvent) -> StoreResult<()>;
    /// Takes a version out; [`StoreError::InUse`] (naming the worlds) while
    /// a world uses it.
    async fn delete_library_package(
        &self,
        kind: PackageKind,
        id: &str,
        version: &str,
        event: &NewEvent,
    ) -> StoreResult<()>;
    /// The packages one world uses (`Some`), or every world's.
    async fn list_world_packages(
        &self,
        instance: Option<InstanceId>,
    ) -> StoreResult<Vec<WorldPackage>>;
    /// Replaces what `instance` uses with `packages` (each in the library,
    /// else [`StoreError::NotFound`]).
    async fn set_world_packages(
        &self,
        instance: InstanceId,
        packages: &[WorldPackage],
        event: &NewEvent,
    ) -> StoreResult<()>;
    /// Records what a backup's world used (once, as the backup starts;
    /// removed with the backup). [`StoreError::NotFound`] without the
    /// backup.
    async fn set_backup_packages(
        &self,
        backup: BackupId,
        packages: &[BackupPackage],
    ) -> StoreResult<()>;
    /// What a backup's world used, by kind and id.
    async fn list_backup_packages(&self, backup: BackupId) -> StoreResult<Vec<BackupPackage>>;
}

/// Second factors of password accounts and the outside accounts users
/// sign in with.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// A user's TOTP factor, confirmed or not.
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpFactor>>;
    /// Starts an enrolment (replacing one not yet confirmed).
    /// [`StoreError::Conflict`] when the user has a confirmed factor.
    async fn begin_totp(&self, factor: &TotpFactor, event: &NewEvent) -> StoreResult<()>;
    /// Confirms an enrolment with the step of its first right code and
    /// stores its recovery codes (by hash); `false` when there is no
    /// enrolment awaiting confirmation.
    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        at: Timestamp,
        recovery_hashes: &[String],
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// Uses the time step of a right code: `false` when that step or a
    /// later one was used already (the code is a replay), or there is no
    /// confirmed factor. Atomic across replicas.
    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Uses up a recovery code: `false` when the user has no such code.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// How many recovery codes the user has left.
    async fn recovery_codes_left(&self, user: UserId) -> StoreResult<u32>;
    /// Replaces the user's recovery codes.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        event: &NewEvent,
    ) -> StoreResult<()>;
    /// Removes the factor and its recovery codes; `false` when there was
    /// none.
    async fn remove_totp(&self, user: UserId, event: &NewEvent) -> StoreResult<bool>;
    /// Links an outside account to `user`. [`StoreError::Conflict`] when
    /// it is linked to someone already.
    async fn link_identity(&self, identity: &Identity, event: &NewEvent) -> StoreResult<()>;
    /// The user an outside account is linked to.
    async fn user_by_identity(&self, provider: &str, subject: &str) -> StoreResult<Option<User>>;
    /// A user's linked outside accounts, oldest first.
    async fn identities(&self, user: UserId) -> StoreResult<Vec<Identity>>;
    /// Unlinks the user's accounts of `provider`; `false` when there was
    /// none.
    async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        event: &NewEvent,
    ) -> StoreResult<bool>;
}

/// Word between the Taverns that share one store (replicas on one
/// PostgreSQL database): one says that something changed, and the others
/// look at once instead of at their next pass: the leader acts on a start
/// asked of a follower, and the followers' proxies follow the leader's
/// routes. Notices may be lost (a connection dropped); each Tavern's
/// periodic pass remains the guarantee. A store that one Tavern alone uses
/// carries none.
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Tells the other Taverns on this store that something changed.
    async fn announce(&self) -> StoreResult<()>;
    /// The other Taverns' notices as they come (never this one's own); the
    /// stream ends when the connection it came over is lost. `None` where
    /// this store carries none.
    async fn notices(&self) -> StoreResult<Option<futures_util::stream::BoxStream<'static, ()>>>;
}

/// The audit log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records an event that goes with no other change.
    async fn append_event(&self, event: &NewEvent) -> StoreResult<()>;
    /// The newest `limit` events, newest first.
    async fn list_events(&self, limit: u32) -> StoreResult<Vec<Event>>;
    /// Events after position `seq` in the audit log, oldest first, with
    /// their positions.
    async fn events_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<(i64, Event)>>;
    /// The position of the newest event (0 when there is none).
    async fn last_event_seq(&self) -> StoreResult<i64>;
}

//! The JSON shapes of the API (requests and responses), with their OpenAPI
//! schemas: what the server reads and answers and what the client sends
//! and reads. Responses never carry a secret except the one-time token of a
//! login.

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `slug_taken`.
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// For an account with a second factor: the code from its app, or a
    /// recovery code (without it, such a sign-in answers 401
    /// `second_factor_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub code: Option<String>,
}

/// What `tavern login --sso` redeems: the code the browser brought to its
/// loopback address, and the verifier it made the code's challenge from.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CliCodeRequest {
    #[schema(max_length = 1024)]
    pub code: String,
    #[schema(max_length = 128)]
    pub verifier: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The API token; shown this once.
    pub token: String,
    pub user: UserJson,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(value_type = crate::shapes::Username)]
    pub username: String,
    #[schema(value_type = crate::shapes::Role)]
    pub role: String,
    #[schema(value_type = crate::shapes::Password)]
    pub password: String,
    /// A configured quota tier; omitted: the default tier.
    #[schema(max_length = 64)]
    pub tier: Option<String>,
}

#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A configured quota tier, or null for the default tier; absent:
    /// unchanged.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub tier: Option<Option<String>>,
    /// The address Ko-fi payments count for this user from (admins only),
    /// or null for none; absent: unchanged.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::shapes::Email>)]
    pub email: Option<Option<String>>,
    /// The user's own Discord webhook for notifications about their
    /// worlds (themselves or an admin), or null for none; absent:
    /// unchanged. Kept sealed, never shown.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::shapes::Webhook>)]
    pub webhook_url: Option<Option<String>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserJson {
    pub id: String,
    pub username: String,
    pub role: String,
    /// The user's quota tier; null: the default tier.
    pub tier: Option<String>,
    /// Where Ko-fi payments count for this user from.
    pub email: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceRequest {
    #[schema(value_type = crate::shapes::Slug)]
    pub slug: String,
    /// Its owner (admins); default: the caller.
    #[schema(value_type = Option<crate::shapes::Username>)]
    pub owner: Option<String>,
    #[schema(value_type = Option<crate::shapes::Release>)]
    pub release: Option<String>,
    /// The id of the one license key it runs with.
    #[schema(format = Uuid)]
    pub license: Option<String>,
    #[schema(value_type = Option<crate::shapes::Runtime>)]
    pub runtime: Option<String>,
    /// Minutes without players before it sleeps (default: the server's).
    #[schema(minimum = 1, maximum = 10080)]
    pub idle_timeout_minutes: Option<u32>,
    /// Who wakes it by visiting (default: the server's
    /// `idle.wake_on_visit`).
    #[schema(value_type = Option<crate::shapes::WakeOnVisit>)]
    pub wake_on_visit: Option<String>,
}

/// Absent: unchanged; `null`: back to the server's setting.
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceRequest {
    /// Minutes without players before it sleeps; `null`: the server's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10080)]
    pub idle_timeout_minutes: Option<Option<u32>>,
    /// Who wakes it by visiting; `null`: the server's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::shapes::WakeOnVisit>)]
    pub wake_on_visit: Option<Option<String>>,
    /// Another Foundry release (the world must be stopped; its data is
    /// backed up first).
    #[schema(value_type = Option<crate::shapes::Release>)]
    pub release: Option<String>,
    /// Another runtime, `process` or `docker` (the world must be stopped;
    /// its data stays; a world cannot move to or from `kubernetes` or
    /// `ecs`).
    #[schema(value_type = Option<crate::shapes::Runtime>)]
    pub runtime: Option<String>,
    /// Change the release even though some of the world's packages would
    /// not load on it (without it, such a change is refused and names
    /// them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LicenseRef {
    pub id: String,
    pub label: String,
}

/// A world's name in DNS, as Tavern keeps it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DnsNameJson {
    /// The world's host name.
    pub host: String,
    /// `pending` (not written yet), `held` (leads to Tavern) or `failing`
    /// (the last attempt failed; Tavern tries again).
    #[schema(pattern = "^(pending|held|failing)$")]
    pub state: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub checked_at: Option<String>,
    /// When Tavern looks at it next.
    pub next_attempt_at: Option<String>,
}

/// Where a world's uploads go in object storage (`[storage]`); never its
/// key.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StorageJson {
    /// `bucket`, or `bucket/folder` in a shared bucket.
    pub place: String,
    /// The place and its key are made: Foundry is given them when the
    /// world starts.
    pub ready: bool,
    /// Why the last attempt failed; Tavern tries again.
    pub error: Option<String>,
    /// Bytes stored there when last counted.
    #[schema(minimum = 0)]
    pub bytes: Option<u64>,
    pub checked_at: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct InstanceJson {
    pub slug: String,
    pub owner: String,
    pub url: String,
    pub release: Option<String>,
    pub runtime: String,
    pub desired_state: String,
    pub state: String,
    pub license: Option<LicenseRef>,
    /// Why the world is in its state, if anything: a failure or a crash, or
    /// why it stops or sleeps (who stopped it, how long it went without
    /// players, that another world needed its key), in words that name no
    /// other world.
    pub state_reason: Option<String>,
    pub players: u32,
    /// Open connections (tabs) through Tavern's proxy.
    pub sockets: u32,
    /// The active world and Foundry version, from `/api/status`.
    pub world: Option<String>,
    pub foundry_version: Option<String>,
    pub last_activity_at: Option<String>,
    pub idle_timeout_minutes: Option<u32>,
    /// Who wakes it by visiting, when it has its own setting.
    pub wake_on_visit: Option<String>,
    pub created_at: String,
    /// How the world's name fares in DNS, when Tavern keeps a record for
    /// each world (`[dns] mode = "per-world"`); null otherwise.
    pub dns: Option<DnsNameJson>,
    /// Where its uploads go, when worlds have object storage
    /// (`[storage]`); null otherwise.
    pub storage: Option<StorageJson>,
    /// Foundry's admin key: only in the answer that created the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicenseRequest {
    #[schema(value_type = crate::shapes::Label)]
    pub label: String,
    /// The Foundry license key; never shown again.
    #[schema(value_type = crate::shapes::LicenseKeyText)]
    pub key: String,
    /// Pin the key to this game master; omitted, it joins the shared pool.
    #[schema(value_type = Option<crate::shapes::Username>)]
    pub owner: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLicenseRequest {
    /// A new name; absent: unchanged.
    #[schema(value_type = Option<crate::shapes::Label>)]
    pub label: Option<String>,
    /// The game master it is pinned to, or null for the shared pool;
    /// absent: unchanged.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::shapes::Username>)]
    pub owner: Option<Option<String>>,
}

/// A Foundry release installed on the server.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReleaseJson {
    /// Its version, e.g. `13.345` (or `stub`, the stand-in).
    pub version: String,
    /// `node` (the Node.js build), `linux` (resources/app) or `stub`.
    pub layout: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LicenseJson {
    pub id: String,
    pub label: String,
    /// The key's last four characters.
    pub last4: String,
    /// The game master it is pinned to, or null for the pool.
    pub owner: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EventJson {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LogsJson {
    pub lines: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateLicenseRequest {
    /// The world that gets the key.
    #[schema(value_type = crate::shapes::Slug)]
    pub instance: String,
    /// Stop the world now on the key even while players are connected.
    #[serde(default)]
    pub force: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OverviewLicense {
    #[serde(flatten)]
    pub license: LicenseJson,
    /// The world that holds the key now, if any.
    pub instance: Option<String>,
    pub instance_state: Option<String>,
    pub players: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// The world's slug.
    #[schema(value_type = crate::shapes::Slug)]
    pub instance: String,
    /// When play begins: RFC 3339 with an offset (`2026-11-28T19:00:00Z`).
    #[schema(value_type = crate::shapes::DateTime)]
    pub start: String,
    #[schema(minimum = 15, maximum = 1440)]
    pub duration_minutes: u32,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SessionJson {
    pub id: String,
    pub instance: String,
    pub start: String,
    pub end: String,
    /// The key reserved for the window (the session less the lead time,
    /// to its end plus the grace time).
    pub license: LicenseRef,
    pub window_start: String,
    pub window_end: String,
    /// True once the world has been started for it.
    pub prepared: bool,
    pub created_by: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OverviewJson {
    pub licenses: Vec<OverviewLicense>,
    /// Sessions to come (and under way), with their keys.
    pub sessions: Vec<SessionJson>,
    /// Worlds starting, running or stopping.
    pub running: Vec<InstanceJson>,
    pub failed: Vec<InstanceJson>,
    /// This month's usage, everyone's.
    pub usage: UsageJson,
    /// Everyone who has paid through Ko-fi, latest first.
    pub supporters: Vec<SupporterJson>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupJson {
    pub id: String,
    /// The world it is of (which may have been destroyed since).
    pub instance: String,
    pub owner: String,
    /// manual, scheduled, after_stop, pre_destroy, pre_upgrade or pre_restore.
    pub kind: String,
    /// in_progress, complete or failed.
    pub status: String,
    /// Copied while the world ran (and verified).
    pub live: bool,
    /// Never removed by retention.
    pub locked: bool,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// How it is kept: `archive` (a `.tar.zst` of its own) or `repository`
    /// (a snapshot in its world's restic-format repository).
    pub format: String,
    /// Bytes of the compressed archive; of a snapshot, the bytes it added
    /// to the repository (compressed and encrypted).
    pub size: Option<u64>,
    /// The archive's SHA-256; of a snapshot, its id (restic's, the SHA-256
    /// of its file in the repository).
    pub sha256: Option<String>,
    pub files: Option<u64>,
    /// Bytes of the files before compression.
    pub bytes: Option<u64>,
    pub error: Option<String>,
    /// The latest restore from it since the server started.
    pub restore: Option<RestoreJson>,
    /// The library's packages its world used (not their files: a restore
    /// puts these choices back). Only when one backup is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<crate::packages::PackageRefJson>>,
}

/// The latest move of archives into their worlds' repositories since the
/// server started.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MigrationJson {
    /// none (never started), running or done.
    pub state: String,
    /// Archives to move, and moved.
    pub total: u64,
    pub moved: u64,
    /// Those that could not be moved, with why (they stay archives; a
    /// later run tries them again).
    pub failed: Vec<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RestoreJson {
    pub to: String,
    /// running, done or failed.
    pub state: String,
    pub error: Option<String>,
    pub at: String,
    /// What a restore that went through could not put back as the backup
    /// held it (a package the library lost and that could not be fetched
    /// again), or fetched again to do so.
    pub notes: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A new world to restore into; without it, the backup's own world
    /// (stopped first, its current data backed up first).
    #[schema(value_type = Option<crate::shapes::Slug>)]
    pub to: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupUpdate {
    pub locked: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LinkJson {
    /// A path on this server that downloads the backup without a token.
    pub url: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UsageJson {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub from: String,
    pub to: String,
    pub rate_per_hour: f64,
    pub currency: String,
    pub users: Vec<UserUsageJson>,
    /// Hours each license key ran a world.
    pub licenses: Vec<LicenseHoursJson>,
    pub hours: f64,
    pub cost: f64,
    /// Bytes the worlds asked about hold in object storage, as last
    /// counted (now, not over the month); null when worlds have no object
    /// storage.
    #[schema(minimum = 0)]
    pub stored_bytes: Option<u64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserUsageJson {
    pub user: String,
    pub hours: f64,
    /// The same, in whole seconds.
    pub seconds: u64,
    pub worlds: Vec<WorldHoursJson>,
    pub cost: f64,
    /// Supporters' credit set against the cost.
    pub credit: f64,
    pub due: f64,
    /// Bytes this user's worlds hold in object storage, as last counted;
    /// null when worlds have no object storage.
    #[schema(minimum = 0)]
    pub stored_bytes: Option<u64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WorldHoursJson {
    pub world: String,
    pub hours: f64,
    pub seconds: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LicenseHoursJson {
    /// The key's label (`null`: no key recorded).
    pub license: Option<String>,
    pub hours: f64,
    pub seconds: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SupporterJson {
    /// The Tavern user their payments count for; null: not matched yet
    /// (they are kept, and count once the supporter links).
    pub user: Option<String>,
    /// As Ko-fi gave it, on the latest payment.
    pub from_name: String,
    pub email: Option<String>,
    pub payments: usize,
    /// Totals per currency, e.g. `{"USD": 12.5}`.
    pub totals: std::collections::BTreeMap<String, f64>,
    pub last_paid_at: String,
    /// The quota tier a Ko-fi subscription gives them, and until when.
    pub tier: Option<String>,
    pub tier_until: Option<String>,
    /// Credit this month, in the usage currency.
    pub credit: f64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LinkCodeJson {
    /// Put it in a Ko-fi message, or give it to the Discord bot's
    /// `/tavern link`; it works once.
    pub code: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    /// The role of the accounts it makes (default `gm`).
    #[schema(value_type = Option<crate::shapes::Role>)]
    pub role: Option<String>,
    /// The quota tier new accounts get (default: the default tier).
    #[schema(max_length = 64)]
    pub tier: Option<String>,
    /// How many accounts it may create (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    pub uses: Option<u32>,
    /// How long it lasts (default 168: a week; at most 90 days).
    #[schema(minimum = 1, maximum = 2160)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct InviteJson {
    pub id: String,
    pub role: String,
    pub tier: Option<String>,
    pub max_uses: u32,
    pub uses: u32,
    pub expires_at: String,
    /// `open`, or `spent` (used up or expired).
    pub state: String,
    pub created_by: String,
    pub created_at: String,
    /// The secret code, and the address to give the invitee: only in the
    /// answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    #[schema(value_type = crate::shapes::Username)]
    pub username: String,
    #[schema(value_type = crate::shapes::Password)]
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NotificationJson {
    pub id: i64,
    pub kind: String,
    /// `community`, or `user:<id>`.
    pub destination: String,
    pub message: String,
    pub created_at: String,
    pub attempts: u32,
    /// `pending`, `delivered` or `given_up`.
    pub status: String,
    pub next_attempt_at: String,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn absent_null_and_a_value_stay_apart_on_the_way_there_and_back() {
        let cases = [
            (UpdateUserRequest::default(), json!({})),
            (
                UpdateUserRequest {
                    tier: Some(None),
                    ..UpdateUserRequest::default()
                },
                json!({ "tier": null }),
            ),
            (
                UpdateUserRequest {
                    email: Some(Some("a@example.org".into())),
                    ..UpdateUserRequest::default()
                },
                json!({ "email": "a@example.org" }),
            ),
        ];
        for (request, wire) in cases {
            let sent = serde_json::to_value(&request).unwrap();
            assert_eq!(sent, wire);
            let read: UpdateUserRequest = serde_json::from_value(sent).unwrap();
            assert_eq!(
                (read.tier, read.email, read.webhook_url),
                (request.tier, request.email, request.webhook_url)
            );
        }
    }

    #[test]
    fn requests_refuse_fields_they_do_not_have() {
        // (No Debug for a request that holds a license key.)
        let Err(e) = serde_json::from_value::<CreateLicenseRequest>(
            json!({ "label": "a", "key": "k", "colour": "red" }),
        ) else {
            panic!("an unknown field was taken");
        };
        assert!(e.to_string().contains("colour"), "{e}");
    }
}

/// What an import found in what it was given, and what it did: the
/// answer to a check (`done` false, nothing changed) and to an import.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportJson {
    /// The Tavern world imported into.
    pub world: String,
    /// Whether the import made the world.
    pub created: bool,
    /// Whether anything was put in place (false for a check).
    pub done: bool,
    /// `user_data` (a Foundry user-data folder) or `world` (one world,
    /// placed at `Data/worlds/<id>/`).
    pub kind: String,
    /// The folder taken, as found (empty for the top).
    pub root: String,
    pub worlds: Vec<PackageJson>,
    pub systems: Vec<PackageJson>,
    pub modules: Vec<PackageJson>,
    /// Files and bytes taken.
    pub files: u64,
    pub bytes: u64,
    /// Bytes under `Data/` outside worlds, systems and modules.
    pub assets_bytes: u64,
    /// What was not taken, and why.
    pub left_out: Vec<LeftOutJson>,
    /// Worth knowing: older worlds, manifests that do not read, a missing
    /// game system.
    pub warnings: Vec<String>,
    /// What became of the old server's `Config/license.json`, in words.
    pub license: Option<String>,
    /// The Foundry release the world runs.
    pub release: Option<String>,
    /// The backup of the world taken before the import changed it.
    pub backup: Option<String>,
}

/// A world, game system or module found in an import.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PackageJson {
    pub id: String,
    pub title: Option<String>,
    pub version: Option<String>,
    /// A world's game system.
    pub system: Option<String>,
    /// The Foundry version that last saved a world.
    pub core_version: Option<String>,
}

/// Something an import did not take.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LeftOutJson {
    /// As found; a folder ends in `/`.
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    pub why: String,
}

/// Imports from a folder or an archive on the server (admins).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportPathRequest {
    /// An absolute path on the server: a Foundry user-data folder, a world
    /// folder, or a zip, tar, tar.gz or tar.zst of one.
    pub path: String,
}

/// Imports every felddy data folder below a folder on the server (admins).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FelddyImportRequest {
    /// An absolute path on the server whose folders are felddy volumes
    /// (each a user-data folder, or holding one as `data/`).
    pub path: String,
    /// Only say what would happen; change nothing.
    #[serde(default)]
    pub check: bool,
}

/// One folder of a batch import.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchImportJson {
    /// The folder, on the server.
    pub from: String,
    /// The world it goes into, named after its folder (empty when the
    /// name makes none).
    pub world: String,
    /// What its import answered, when it went well.
    pub import: Option<ImportJson>,
    /// Why it did not, when it did not.
    pub error: Option<ErrorDetail>,
}

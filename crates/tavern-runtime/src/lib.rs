//! The Runtime port: how Tavern makes a Foundry server run, stops it, and
//! finds the servers that exist now. Every method is idempotent and speaks
//! only Tavern's types, so the reconciler can drive any driver the same way.
//! Drivers: [`process`] (supervised child processes on this machine).

pub mod foundry_config;
pub mod process;
pub mod releases;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tavern_types::{InstanceId, LicenseKey, Slug};

/// How to launch a Foundry server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `node MAIN --dataPath --port --noupnp --noupdate`: a real release.
    Node { node: PathBuf, main_js: PathBuf },
    /// `EXE foundry-stub …`: Tavern's stand-in.
    Stub { exe: PathBuf },
}

/// What Tavern writes into `Config/` before a start.
#[derive(Clone, Debug)]
pub struct FoundryConfig {
    /// The world's public host (`<slug>.<domain>`).
    pub hostname: String,
    pub route_prefix: Option<String>,
    pub proxy_ssl: bool,
    pub proxy_port: Option<u16>,
    pub license_key: Option<LicenseKey>,
    /// The `license.json` Foundry signed for this key on an earlier world,
    /// carried over so the key is not signed again.
    pub signed_license: Option<String>,
    /// felddy's `admin.txt` content (PBKDF2 hex), if the instance has a key.
    pub admin_hash: Option<String>,
}

/// Everything a driver needs to make one world run.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    pub id: InstanceId,
    pub slug: Slug,
    pub launch: Launch,
    pub config: FoundryConfig,
}

/// One server the driver manages, as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub id: InstanceId,
    pub slug: Slug,
    pub port: u16,
    pub pid: u32,
    /// `false` once the process has gone; `exit` says how, when known.
    pub alive: bool,
    pub exit: Option<String>,
}

/// What `/api/status` said.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct FoundryStatus {
    #[serde(default)]
    pub active: bool,
    pub version: Option<String>,
    pub world: Option<String>,
    #[serde(default)]
    pub users: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot {op} for {slug}")]
    Io {
        op: &'static str,
        slug: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{slug}: {message}")]
    Refused { slug: String, message: String },
    #[error("no free port in {from}-{to}")]
    NoPort { from: u16, to: u16 },
}

impl RuntimeError {
    pub fn io(op: &'static str, slug: &Slug, source: std::io::Error) -> Self {
        Self::Io {
            op,
            slug: slug.to_string(),
            source,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, RuntimeError::Refused { .. })
    }
}

/// What becomes of a removed world's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Moved aside into the archive directory (no backup has it).
    Archive,
    /// Deleted: a verified backup holds it.
    Delete,
}

/// A place where Foundry servers run. All methods are idempotent.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Makes the world run as specified. If it already runs (also one
    /// started before a restart of Tavern), answers it without a second copy.
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError>;
    /// Stops the world: SIGTERM (Foundry flushes), then after `grace` a
    /// forced kill. Answers once it is gone. A stopped world is fine.
    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError>;
    /// Stops the world and forgets it. Its data is archived, or deleted
    /// when a backup of it has been made (`data`).
    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError>;
    /// Where the world's data directory is on this machine (backups read
    /// and restore it there); `None` when it lives elsewhere.
    fn data_dir(&self, slug: &Slug) -> Option<std::path::PathBuf>;
    /// Every server this driver manages now, alive or recently gone.
    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError>;
    /// Asks a running world for its status; `None` when it does not answer.
    async fn status(
        &self,
        observed: &Observed,
        route_prefix: Option<&str>,
    ) -> Option<FoundryStatus>;
    /// The world's `Config/license.json` as it is now (Foundry signs it
    /// when the EULA is accepted).
    async fn license_file(&self, slug: &Slug) -> Option<String>;
    /// The last `tail` lines of the world's output.
    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError>;
}

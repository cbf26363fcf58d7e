//! The Runtime port: how Tavern makes a Foundry server run, stops it, and
//! finds the servers that exist now. Every method is idempotent and speaks
//! only Tavern's types, so the reconciler can drive any driver the same way.
//! Drivers: [`process`] (supervised child processes on this machine),
//! `docker` (one container per world), `kubernetes` (one Deployment per
//! world) and `ecs` (one Fargate service per world), each of those three a
//! cargo feature of the same name; [`Runtimes`] sends each world to its
//! driver.

#[cfg(any(feature = "kubernetes", feature = "ecs"))]
mod agent_client;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "ecs")]
pub mod ecs;
pub mod foundry_config;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod packages;
pub mod process;
pub mod releases;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sha2::Digest as _;
use tavern_types::{InstanceId, LicenseKey, Slug};

/// The port Foundry listens on inside a container or pod (felddy's).
pub const FOUNDRY_PORT: u16 = 30000;

/// The installation name of a Tavern whose data lives in `data_dir`:
/// stable for that directory, distinct between directories.
pub fn installation_for(data_dir: &std::path::Path) -> String {
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    hex::encode(digest)[..8].to_owned()
}

/// A stable hostname for a license key: Foundry signs `license.json` for
/// its host, so the host must stay the same wherever the key goes, and
/// must not reveal the key.
pub fn hostname_for(key: Option<&str>) -> String {
    match key {
        Some(k) => {
            let digest = sha2::Sha256::digest(k.as_bytes());
            format!("foundry-{}", &hex::encode(digest)[..12])
        }
        None => "foundry".into(),
    }
}

/// How to launch a Foundry server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `node MAIN --dataPath --port --noupnp --noupdate`: a real release.
    Node { node: PathBuf, main_js: PathBuf },
    /// `EXE foundry-stub …`: Tavern's stand-in.
    Stub { exe: PathBuf },
    /// A container of this release's image (the docker driver's).
    Container { release: String },
    /// A pod of this release's image (the kubernetes driver's).
    Pod { release: String },
    /// An ECS task on Fargate of this release's image (the ecs driver's).
    Task { release: String },
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
    /// The world's `awsConfig.json` (its object storage and the key that
    /// reaches only it), when it has storage.
    pub aws_config: Option<secrecy::SecretString>,
    /// The library's packages the world uses, linked (or, for a world
    /// template, copied) into `Data/` before the start.
    pub packages: Vec<packages::PackageLink>,
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
    /// Where the server answers HTTP (the proxy forwards there).
    pub addr: std::net::SocketAddr,
    /// `false` once the process has gone; `exit` says how, when known.
    pub alive: bool,
    pub exit: Option<String>,
    /// Stopped on purpose, its definition kept for the next start (a
    /// Deployment at 0 replicas with no pod): neither a crash nor a
    /// leftover to clear, and its world's key is free.
    pub kept: bool,
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
    #[error("cannot {op} for {slug}: {source}")]
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
    ) -> Option<FoundryStatus> {
        probe_status(observed.addr, route_prefix).await
    }
    /// The world's `Config/license.json` as it is now (Foundry signs it
    /// when the EULA is accepted); read from its data directory here,
    /// unless the driver keeps it elsewhere.
    async fn license_file(&self, slug: &Slug) -> Option<String> {
        read_license_file(&self.data_dir(slug)?).await
    }
    /// The last `tail` lines of the world's output.
    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError>;
    /// Whether the world has data where it lives, for a driver that keeps
    /// it elsewhere than this machine ([`Runtime::data_dir`] is `None`).
    async fn has_data(&self, _slug: &Slug) -> Result<bool, RuntimeError> {
        Ok(false)
    }
    /// For a driver that keeps a world's data elsewhere: writes it to `to`
    /// as a Tavern archive (`tavern-backup`'s format). `Ok(false)` when the
    /// world has no data.
    async fn export_archive(&self, slug: &Slug, _to: &Path) -> Result<bool, RuntimeError> {
        Err(local_data(slug))
    }
    /// For a driver that keeps a world's data elsewhere: puts the archive
    /// `from` in place of the world's data, held to what was recorded of it
    /// (`record`) and verified first; a refused archive changes nothing.
    async fn import_archive(
        &self,
        spec: &InstanceSpec,
        _from: &Path,
        _record: &tavern_types::ArchiveRecord,
    ) -> Result<(), RuntimeError> {
        Err(local_data(&spec.slug))
    }
    /// The objects this driver writes for the world, as YAML (a driver of
    /// declarative objects: Kubernetes); `None` for the others.
    fn manifests(&self, _spec: &InstanceSpec, _running: bool) -> Option<Result<String, String>> {
        None
    }
}

/// The answer of a driver whose worlds' data is on this machine when asked
/// to move it as an archive.
fn local_data(slug: &Slug) -> RuntimeError {
    RuntimeError::Refused {
        slug: slug.to_string(),
        message: "its data is on this machine (data_dir)".into(),
    }
}

/// Asks a server at `addr` for `[/prefix]/api/status`; `None` when it does
/// not answer as Foundry would.
async fn probe_status(
    addr: std::net::SocketAddr,
    route_prefix: Option<&str>,
) -> Option<FoundryStatus> {
    // One client for every driver's probes: a world that does not answer
    // within 3 s is not running yet.
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .unwrap_or_default()
    });
    let prefix = route_prefix
        .map(|p| format!("/{}", p.trim_matches('/')))
        .unwrap_or_default();
    let resp = http
        .get(format!("http://{addr}{prefix}/api/status"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// A world's `Config/license.json` as it is now (Foundry signs it when the
/// EULA is accepted), from its data directory.
async fn read_license_file(data_dir: &std::path::Path) -> Option<String> {
    tokio::fs::read_to_string(data_dir.join("Config/license.json"))
        .await
        .ok()
}

/// Disposes of a removed world's directory: deleted when a backup holds
/// it, else moved into `archive` as `<slug>-<unix time>`.
pub(crate) fn dispose_data(
    dir: &std::path::Path,
    archive: &std::path::Path,
    slug: &Slug,
    data: Disposal,
) -> Result<(), RuntimeError> {
    if !dir.exists() {
        return Ok(());
    }
    if data == Disposal::Delete {
        std::fs::remove_dir_all(dir)
            .map_err(|e| RuntimeError::io("delete the data directory", slug, e))?;
        tracing::info!(slug = %slug, "deleted the data directory (a backup holds it)");
        return Ok(());
    }
    std::fs::create_dir_all(archive)
        .map_err(|e| RuntimeError::io("create the archive", slug, e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dest = archive.join(format!("{slug}-{stamp}"));
    std::fs::rename(dir, &dest)
        .map_err(|e| RuntimeError::io("archive the data directory", slug, e))?;
    tracing::info!(slug = %slug, archive = %dest.display(), "archived the data directory");
    Ok(())
}

/// Every driver this server has, behind one [`Runtime`]: a world goes to
/// the driver its launch names; what is asked by slug alone (stop, remove,
/// logs) goes to every driver, each of which ignores worlds it does not
/// have, so a world moved from one runtime to another is stopped where it
/// ran. The docker, kubernetes and ecs drivers are cargo features of this
/// crate (`docker`, `kubernetes`, `ecs`); a build without one has no such
/// driver. Of kubernetes and ecs, which keep worlds' data elsewhere than
/// this machine, a server has one at most (`runtime.kind`).
pub struct Runtimes {
    process: process::ProcessRuntime,
    /// How long a server moved off a driver has to stop before it is killed.
    stop_grace: Duration,
    #[cfg(feature = "docker")]
    docker: Option<docker::DockerRuntime>,
    #[cfg(feature = "kubernetes")]
    kubernetes: Option<kubernetes::KubernetesRuntime>,
    #[cfg(feature = "ecs")]
    ecs: Option<ecs::EcsRuntime>,
}

impl Runtimes {
    /// Worlds run as processes on this machine only, until a driver is added.
    pub fn new(process: process::ProcessRuntime) -> Self {
        Self {
            process,
            stop_grace: Duration::from_secs(30),
            #[cfg(feature = "docker")]
            docker: None,
            #[cfg(feature = "kubernetes")]
            kubernetes: None,
            #[cfg(feature = "ecs")]
            ecs: None,
        }
    }

    /// How long a world's server moved to another driver has to stop
    /// (`runtime.stop_grace_seconds`; 30 s unless set).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Worlds may also run in containers of this Docker engine.
    #[cfg(feature = "docker")]
    pub fn with_docker(mut self, docker: docker::DockerRuntime) -> Self {
        self.docker = Some(docker);
        self
    }

    /// Worlds may also run as pods of this cluster.
    #[cfg(feature = "kubernetes")]
    pub fn with_kubernetes(mut self, kubernetes: kubernetes::KubernetesRuntime) -> Self {
        self.kubernetes = Some(kubernetes);
        self
    }

    /// Worlds may also run as services of this ECS cluster.
    #[cfg(feature = "ecs")]
    pub fn with_ecs(mut self, ecs: ecs::EcsRuntime) -> Self {
        self.ecs = Some(ecs);
        self
    }

    fn ecs(&self) -> Option<&dyn Runtime> {
        #[cfg(feature = "ecs")]
        return self.ecs.as_ref().map(|d| d as &dyn Runtime);
        #[cfg(not(feature = "ecs"))]
        None
    }

    /// The driver that keeps worlds' data elsewhere (Kubernetes or ECS),
    /// if this server has one.
    fn remote(&self) -> Option<&dyn Runtime> {
        self.kubernetes().or_else(|| self.ecs())
    }

    fn docker(&self) -> Option<&dyn Runtime> {
        #[cfg(feature = "docker")]
        return self.docker.as_ref().map(|d| d as &dyn Runtime);
        #[cfg(not(feature = "docker"))]
        None
    }

    fn kubernetes(&self) -> Option<&dyn Runtime> {
        #[cfg(feature = "kubernetes")]
        return self.kubernetes.as_ref().map(|d| d as &dyn Runtime);
        #[cfg(not(feature = "kubernetes"))]
        None
    }

    fn drivers(&self) -> impl Iterator<Item = &dyn Runtime> {
        std::iter::once(&self.process as &dyn Runtime)
            .chain(self.docker())
            .chain(self.kubernetes())
            .chain(self.ecs())
    }

    /// The driver a launch runs on, or why this server has none.
    fn driver_for(&self, spec: &InstanceSpec) -> Result<&dyn Runtime, RuntimeError> {
        let missing = |what: &str| RuntimeError::Refused {
            slug: spec.slug.to_string(),
            message: format!("this server has no {what} configured"),
        };
        Ok(match &spec.launch {
            Launch::Container { .. } => self
                .docker()
                .ok_or_else(|| missing("Docker engine (runtime.docker)"))?,
            Launch::Pod { .. } => self
                .kubernetes()
                .ok_or_else(|| missing("Kubernetes cluster (runtime.kind = \"kubernetes\")"))?,
            Launch::Task { .. } => self
                .ecs()
                .ok_or_else(|| missing("ECS cluster (runtime.kind = \"ecs\")"))?,
            Launch::Node { .. } | Launch::Stub { .. } => &self.process,
        })
    }
}

#[async_trait]
impl Runtime for Runtimes {
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        let target = self.driver_for(spec)?;
        // Off every other driver first, should it have run there.
        for d in self.drivers() {
            if !std::ptr::addr_eq(d, target) {
                d.stop(&spec.slug, self.stop_grace).await?;
            }
        }
        target.ensure(spec).await
    }

    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        for d in self.drivers() {
            d.stop(slug, grace).await?;
        }
        Ok(())
    }

    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        if let Some(docker) = self.docker() {
            docker.stop(slug, grace).await?;
        }
        if let Some(remote) = self.remote() {
            remote.remove(slug, grace, data).await?;
        }
        // The process and docker drivers keep the data in one place.
        self.process.remove(slug, grace, data).await
    }

    fn data_dir(&self, slug: &Slug) -> Option<PathBuf> {
        // Both local drivers keep a world's data in the same place.
        Runtime::data_dir(&self.process, slug)
    }

    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError> {
        let mut all = Vec::new();
        for d in self.drivers() {
            all.extend(d.observe_all().await?);
        }
        Ok(all)
    }

    async fn license_file(&self, slug: &Slug) -> Option<String> {
        // The local drivers keep it on this machine; a world on Kubernetes,
        // on its claim; on ECS, on its access point.
        if let Some(text) = self.process.license_file(slug).await {
            return Some(text);
        }
        match self.remote() {
            Some(k) => k.license_file(slug).await,
            None => None,
        }
    }

    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError> {
        for remote in [self.docker(), self.remote()].into_iter().flatten() {
            let lines = remote.logs(slug, tail).await?;
            if !lines.is_empty() {
                return Ok(lines);
            }
        }
        self.process.logs(slug, tail).await
    }

    fn manifests(&self, spec: &InstanceSpec, running: bool) -> Option<Result<String, String>> {
        self.driver_for(spec).ok()?.manifests(spec, running)
    }

    async fn status(
        &self,
        observed: &Observed,
        route_prefix: Option<&str>,
    ) -> Option<FoundryStatus> {
        // ECS points a world's host at it once it answers.
        #[cfg(feature = "ecs")]
        if let Some(ecs) = &self.ecs
            && ecs.runs(&observed.slug)
        {
            return ecs.status(observed, route_prefix).await;
        }
        probe_status(observed.addr, route_prefix).await
    }

    async fn has_data(&self, slug: &Slug) -> Result<bool, RuntimeError> {
        match self.remote() {
            Some(k) => k.has_data(slug).await,
            None => Ok(false),
        }
    }

    async fn export_archive(&self, slug: &Slug, to: &Path) -> Result<bool, RuntimeError> {
        match self.remote() {
            Some(k) => k.export_archive(slug, to).await,
            None => Err(local_data(slug)),
        }
    }

    async fn import_archive(
        &self,
        spec: &InstanceSpec,
        from: &Path,
        record: &tavern_types::ArchiveRecord,
    ) -> Result<(), RuntimeError> {
        self.driver_for(spec)?
            .import_archive(spec, from, record)
            .await
    }
}

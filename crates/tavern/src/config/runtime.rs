//! `[runtime]`: which runtime new worlds get, the Docker driver's
//! settings, and supervision's timings.

#[cfg(feature = "docker")]
use std::path::Path;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tavern_types::RuntimeKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The runtime new instances get: `process`, `docker`, `kubernetes`
    /// or `ecs`.
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
        if matches!(self.kind, RuntimeKind::Kubernetes | RuntimeKind::Ecs) {
            kinds.push(self.kind);
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
            packages_dir: data_dir.join("packages"),
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

/// An installation name: up to 32 letters, digits and `-` (it goes into
/// labels and names).
pub(super) fn check_installation(key: &str, id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !id.is_empty()
            && id.len() <= 32
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "invalid configuration: {key} {id:?}: use up to 32 letters, digits and -"
    );
    Ok(())
}

impl RuntimeConfig {
    /// Ports, the Docker driver's limits and image, supervision's timings.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        self.ports()?;
        anyhow::ensure!(
            self.docker_memory_mb >= 64 && self.docker_cpus > 0.0 && self.docker_cpus <= 256.0,
            "invalid configuration: runtime.docker_memory_mb must be at least 64 and runtime.docker_cpus between 0 and 256"
        );
        if let Some(id) = &self.docker_installation {
            check_installation("runtime.docker_installation", id)?;
        }
        anyhow::ensure!(
            self.docker_image.contains("{version}"),
            "invalid configuration: runtime.docker_image {:?} must contain {{version}}",
            self.docker_image
        );
        anyhow::ensure!(
            self.crash_limit >= 1
                && self.stop_grace_seconds >= 1
                && self.start_timeout_seconds >= 1
                && self.resync_seconds >= 1,
            "invalid configuration: runtime.crash_limit, stop_grace_seconds, start_timeout_seconds and resync_seconds must be at least 1"
        );
        Ok(())
    }
}

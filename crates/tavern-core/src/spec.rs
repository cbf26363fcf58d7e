//! What the runtime is given for a world (its launch, Foundry's
//! configuration, its key) and what it shows back: the objects it writes
//! and the server's output.

use tavern_runtime::foundry_config;
use tavern_runtime::releases::ReleaseError;
use tavern_store::{Instance, StoreError};
use tavern_types::{DesiredState, RuntimeKind};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// Why a world cannot be described to the runtime (it fails to start, and
/// says so).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    #[error("the world has no release")]
    NoRelease,
    #[error("it holds no license key")]
    NoKey,
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl Tavern {
    /// What the runtime needs to start `i`.
    pub(crate) async fn spec_for(
        &self,
        i: &Instance,
    ) -> Result<tavern_runtime::InstanceSpec, SpecError> {
        self.spec_with(i, true).await
    }

    /// What the runtime is given for `i`; without `need_key`, a world that
    /// holds no license key is described without one.
    pub(crate) async fn spec_with(
        &self,
        i: &Instance,
        need_key: bool,
    ) -> Result<tavern_runtime::InstanceSpec, SpecError> {
        let release = i.release.as_deref().ok_or(SpecError::NoRelease)?;
        let launch = match i.runtime {
            RuntimeKind::Docker => tavern_runtime::Launch::Container {
                release: release.to_owned(),
            },
            RuntimeKind::Kubernetes => tavern_runtime::Launch::Pod {
                release: release.to_owned(),
            },
            RuntimeKind::Ecs => tavern_runtime::Launch::Task {
                release: release.to_owned(),
            },
            RuntimeKind::Process => self.releases.resolve(release)?,
        };
        let held = self.held_license(i).await?;
        let (license_key, signed_license) = match held {
            Some(held) => (
                Some(self.license_key(held.id).await?),
                self.signed_license(held.id),
            ),
            None if need_key => return Err(SpecError::NoKey),
            None => (None, None),
        };
        let admin_hash = self.admin_hash(i)?;
        // Only a start makes the world's storage when it is not there yet.
        let aws_config = self.aws_config(i, need_key).await?;
        Ok(tavern_runtime::InstanceSpec {
            id: i.id,
            slug: i.slug.clone(),
            launch,
            config: tavern_runtime::FoundryConfig {
                hostname: self.settings.instance_host(&i.slug),
                route_prefix: self.settings.path_routing.then(|| i.slug.to_string()),
                proxy_ssl: self.settings.public_scheme.is_secure(),
                proxy_port: Some(self.settings.public_port_or_default()),
                license_key,
                signed_license,
                admin_hash,
                aws_config,
                packages: self.package_links(i).await?,
            },
        })
    }

    /// What Foundry's `admin.txt` holds for a world: its admin key's hash,
    /// in felddy's format (none for a world without an admin key).
    pub(crate) fn admin_hash(&self, i: &Instance) -> Result<Option<String>, CoreError> {
        let Some(sealed) = &i.admin_key_sealed else {
            return Ok(None);
        };
        let key = self
            .secrets
            .open(sealed)
            .map_err(|e| CoreError::internal("open the admin key", e))?;
        let key =
            String::from_utf8(key).map_err(|e| CoreError::internal("open the admin key", e))?;
        Ok(Some(foundry_config::admin_key_hash(
            &key,
            foundry_config::DEFAULT_ADMIN_SALT,
        )))
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
        if !i.runtime.data_on_cluster() {
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
}

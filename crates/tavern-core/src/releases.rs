//! Foundry releases installed on this machine, for worlds run as
//! processes: listing them and installing one from its zip.

use tavern_store::NewEvent;

use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

impl Tavern {
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
        caller.require_admin("install releases")?;
        let path = crate::upload::receive(self.releases.root(), ".zip", zip, limit, |why| {
            CoreError::invalid("invalid_release", "zip", why)
        })
        .await?;
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
}

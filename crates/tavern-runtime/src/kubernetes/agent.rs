//! The data agent: a short-lived pod on a world's claim, through which
//! backups, restores and the signed `license.json` read and write the
//! world's data, made before the work and removed with its token after.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch};
use tavern_types::Slug;

use super::{KubernetesRuntime, api_error, objects};
use crate::RuntimeError;

impl KubernetesRuntime {
    /// Runs `work` with a data agent on the world's `claim` (its address
    /// and token): the agent's pod is made and awaited first, and removed
    /// with its token afterwards, whatever happened.
    pub(super) async fn with_agent<T, F, Fut>(
        &self,
        slug: &Slug,
        claim: &str,
        work: F,
    ) -> Result<T, RuntimeError>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, RuntimeError>>,
    {
        let pods: Api<Pod> = self.api();
        let secrets: Api<Secret> = self.api();
        let by_agent = ListParams::default().labels(&format!(
            "{}={slug},{}={}",
            objects::AGENT_LABEL,
            objects::INSTALLATION_LABEL,
            self.settings.installation
        ));
        // An agent left an hour ago or more (by a Tavern that stopped
        // midway) goes first; newer ones may be at work.
        let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        for leftover in pods
            .list(&by_agent)
            .await
            .map_err(|e| api_error(slug, "list data agents", e))?
            .items
        {
            let old = leftover
                .metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0 < hour_ago);
            if !old {
                continue;
            }
            let name = leftover.metadata.name.unwrap_or_default();
            self.delete(&pods, slug, &name, "remove a data agent")
                .await?;
            self.delete(&secrets, slug, &name, "remove a data agent's token")
                .await?;
        }
        // Beside the world's pod, if it runs: a claim of one node is
        // mounted there.
        let node = self
            .pods(Some(slug))
            .await?
            .into_iter()
            .find_map(|p| p.spec?.node_name);
        let token = hex::encode(rand::random::<[u8; 32]>());
        let (secret, mut pod) = objects::agent_objects(&self.settings, slug, claim, &token, node);
        // A name of its own each time: an old agent may still be going.
        let name = format!(
            "{}-{}",
            objects::agent_name(slug),
            hex::encode(rand::random::<[u8; 3]>())
        );
        let mut secret = secret;
        secret.metadata.name = Some(name.clone());
        pod.metadata.name = Some(name.clone());
        if let Some(volume) = pod
            .spec
            .as_mut()
            .and_then(|s| s.volumes.as_mut())
            .and_then(|v| v.iter_mut().find(|v| v.name == "token"))
            .and_then(|v| v.secret.as_mut())
        {
            volume.secret_name = Some(name.clone());
        }
        let pp = Self::apply_params();
        secrets
            .patch(&name, &pp, &Patch::Apply(&secret))
            .await
            .map_err(|e| api_error(slug, "apply a data agent's token", e))?;
        let result = async {
            pods.patch(&name, &pp, &Patch::Apply(&pod))
                .await
                .map_err(|e| api_error(slug, "start a data agent", e))?;
            let url = self.agent_ready(slug, &pods, &name).await?;
            work(url, token).await
        }
        .await;
        for (what, outcome) in [
            (
                "pod",
                self.delete(&pods, slug, &name, "remove the data agent")
                    .await,
            ),
            (
                "token",
                self.delete(&secrets, slug, &name, "remove the data agent's token")
                    .await,
            ),
        ] {
            if let Err(e) = outcome {
                tracing::warn!(slug = %slug, agent = %name, error = %e, "the data agent's {what} was not removed");
            }
        }
        result
    }

    /// Waits until the agent's pod is ready; answers its address.
    async fn agent_ready(
        &self,
        slug: &Slug,
        pods: &Api<Pod>,
        name: &str,
    ) -> Result<String, RuntimeError> {
        let deadline = tokio::time::Instant::now() + self.agent_wait;
        loop {
            let pod = pods
                .get_opt(name)
                .await
                .map_err(|e| api_error(slug, "read the data agent", e))?;
            let status = pod.and_then(|p| p.status);
            let ready = status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            let ip = status.as_ref().and_then(|s| s.pod_ip.clone());
            if let (true, Some(ip)) = (ready, ip) {
                return Ok(format!("http://{ip}:{}", objects::AGENT_PORT));
            }
            if status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") {
                return Err(RuntimeError::io(
                    "reach its data",
                    slug,
                    std::io::Error::other("the data agent's pod failed"),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::io(
                    "reach its data",
                    slug,
                    std::io::Error::other("the data agent's pod did not become ready"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

//! The `kubernetes` driver: each world is a Deployment (1 replica running,
//! 0 stopped, strategy Recreate) with its data claim, the Secret its
//! `Config/` is written from, a Service and, with Gateway API routing, an
//! HTTPRoute, all written by server-side apply (field manager `tavern`) and
//! found again by the label `tavern.io/instance`. [`objects`] builds them.
//! A world's claim is read and written (backups, restores, the signed
//! `license.json`) through a short-lived data agent's pod.

mod agent;
#[cfg(feature = "fake-kube")]
pub mod fake;
pub mod install;
pub mod lease;
pub mod objects;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use tavern_types::{InstanceId, Slug};

use crate::{Disposal, InstanceSpec, Observed, Runtime, RuntimeError};
use objects::{
    ARCHIVED_LABEL, FIELD_MANAGER, FOUNDRY_PORT, INSTANCE_ID_LABEL, INSTANCE_LABEL,
    KubernetesSettings, WorldObjects,
};

/// How often a stop looks whether the world's pod has gone.
const STOP_POLL: Duration = Duration::from_millis(500);

/// The kubernetes driver.
pub struct KubernetesRuntime {
    client: kube::Client,
    settings: KubernetesSettings,
    /// For archives to and from data agents: no time limit on the whole.
    transfer: reqwest::Client,
    /// How long past its grace a stop waits for the pod to go.
    stop_margin: Duration,
    /// How long a data agent's pod may take to become ready.
    agent_wait: Duration,
}

fn api_error(slug: &Slug, what: &'static str, e: kube::Error) -> RuntimeError {
    match &e {
        // The cluster refuses the object or Tavern's rights: trying again
        // does not help.
        kube::Error::Api(status) if matches!(status.code, 400 | 403 | 422) => {
            RuntimeError::Refused {
                slug: slug.to_string(),
                message: format!("cannot {what}: {}", status.message),
            }
        }
        _ => RuntimeError::io(what, slug, std::io::Error::other(e)),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// Errors about the cluster itself, not one world, name this slug.
fn placeholder_slug() -> Slug {
    Slug::parse("kubernetes").expect("a valid slug")
}

impl KubernetesRuntime {
    /// Connects as `kube` finds its configuration: `KUBECONFIG` or
    /// `~/.kube/config`, else the pod's service account in the cluster.
    pub async fn connect(settings: KubernetesSettings) -> Result<Self, String> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
        Self::with_client(client, settings)
    }

    /// A driver on a client made elsewhere.
    pub fn with_client(client: kube::Client, settings: KubernetesSettings) -> Result<Self, String> {
        Ok(Self {
            client,
            settings,
            transfer: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| tavern_types::words::error_chain(&e))?,
            stop_margin: Duration::from_secs(30),
            agent_wait: Duration::from_secs(180),
        })
    }

    /// How long past its grace a stop waits for the pod to go (30 s).
    pub fn stop_margin(mut self, margin: Duration) -> Self {
        self.stop_margin = margin;
        self
    }

    /// The client it talks to the cluster with.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn routes(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.settings.namespace,
            &objects::http_route_resource(),
        )
    }

    fn apply_params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// A patch of a few fields, under the same manager's name.
    fn update_params() -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        }
    }

    /// Points the world's HTTPRoute at Tavern's standby page.
    async fn route_to_standby(
        &self,
        slug: &Slug,
        name: &str,
        gateway: &objects::GatewayRoutes,
    ) -> Result<(), RuntimeError> {
        let routes = self.routes();
        let Some(route) = routes
            .get_opt(name)
            .await
            .map_err(|e| api_error(slug, "read the HTTPRoute", e))?
        else {
            return Ok(());
        };
        let mut rules = route.data["spec"]["rules"].clone();
        if let Some(rules) = rules.as_array_mut() {
            for rule in rules {
                rule["backendRefs"] = json!([objects::standby_backend(gateway)]);
            }
        }
        routes
            .patch(
                name,
                &Self::update_params(),
                &Patch::Merge(&json!({"spec": {"rules": rules}})),
            )
            .await
            .map_err(|e| api_error(slug, "point the HTTPRoute at the standby page", e))?;
        Ok(())
    }

    /// Applies the objects that make the world run or keep it stopped.
    async fn apply(&self, slug: &Slug, o: &WorldObjects) -> Result<(), RuntimeError> {
        let pp = Self::apply_params();
        self.ensure_claim(slug, &o.claim).await?;
        let name = o.deployment.metadata.name.as_deref().unwrap_or_default();
        let secret = o.secret.metadata.name.as_deref().unwrap_or_default();
        self.api::<Secret>()
            .patch(secret, &pp, &Patch::Apply(&o.secret))
            .await
            .map_err(|e| api_error(slug, "apply the config secret", e))?;
        self.api::<Service>()
            .patch(name, &pp, &Patch::Apply(&o.service))
            .await
            .map_err(|e| api_error(slug, "apply the service", e))?;
        self.api::<Deployment>()
            .patch(name, &pp, &Patch::Apply(&o.deployment))
            .await
            .map_err(|e| api_error(slug, "apply the deployment", e))?;
        if let Some(route) = &o.route {
            self.routes()
                .patch(name, &pp, &Patch::Apply(route))
                .await
                .map_err(|e| api_error(slug, "apply the HTTPRoute", e))?;
        }
        Ok(())
    }

    /// Makes the world's data claim if it has none. A claim is made once:
    /// its size and class are not changed under a world that has data.
    async fn ensure_claim(
        &self,
        slug: &Slug,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), RuntimeError> {
        let claims: Api<PersistentVolumeClaim> = self.api();
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let exists = claims
            .get_opt(name)
            .await
            .map_err(|e| api_error(slug, "look for the data claim", e))?
            .is_some();
        if !exists {
            claims
                .patch(name, &Self::apply_params(), &Patch::Apply(claim))
                .await
                .map_err(|e| api_error(slug, "apply the data claim", e))?;
        }
        Ok(())
    }

    /// The world's data claim (the one with its labels), if it has one.
    async fn current_claim(&self, slug: &Slug) -> Result<Option<String>, RuntimeError> {
        let claims: Api<PersistentVolumeClaim> = self.api();
        let found = claims
            .list(&ListParams::default().labels(&objects::world_selector(&self.settings, slug)))
            .await
            .map_err(|e| api_error(slug, "list the data claims", e))?;
        Ok(found.items.into_iter().find_map(|c| c.metadata.name))
    }

    /// The world's Deployment, if it has one.
    async fn deployment(&self, slug: &Slug) -> Result<Option<Deployment>, RuntimeError> {
        self.api::<Deployment>()
            .get_opt(&objects::object_name(slug))
            .await
            .map_err(|e| api_error(slug, "read the deployment", e))
    }

    /// Where the world's Service answers.
    async fn service_addr(&self, slug: &Slug) -> Result<Option<SocketAddr>, RuntimeError> {
        let service = self
            .api::<Service>()
            .get_opt(&objects::object_name(slug))
            .await
            .map_err(|e| api_error(slug, "read the service", e))?;
        Ok(service
            .and_then(|s| s.spec?.cluster_ip)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, FOUNDRY_PORT)))
    }

    /// The pods of one world (`Some(slug)`) or of all.
    async fn pods(&self, slug: Option<&Slug>) -> Result<Vec<Pod>, RuntimeError> {
        let selector = match slug {
            Some(s) => objects::world_selector(&self.settings, s),
            None => objects::installation_selector(&self.settings),
        };
        let placeholder = placeholder_slug();
        self.api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .map_err(|e| api_error(slug.unwrap_or(&placeholder), "list pods", e))
    }

    fn observed(
        &self,
        slug: &Slug,
        deployment: &Deployment,
        addr: Option<SocketAddr>,
        pods: &[&Pod],
    ) -> Option<Observed> {
        let labels = deployment.metadata.labels.as_ref()?;
        let id: InstanceId = labels.get(INSTANCE_ID_LABEL)?.parse().ok()?;
        let replicas = deployment.spec.as_ref()?.replicas.unwrap_or(1);
        let crashed = pods.iter().find_map(|p| crash_of(p));
        let alive = replicas > 0 && crashed.is_none();
        let exit = if replicas == 0 {
            Some("scaled to 0".to_owned())
        } else {
            crashed
        };
        Some(Observed {
            id,
            slug: slug.clone(),
            // A Service without an address is not forwarded to.
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            alive,
            exit,
            // Scaled to 0 and its pod gone: stopped, kept for its next start.
            kept: replicas == 0 && pods.is_empty(),
        })
    }

    /// Scales the world's Deployment to 0 (its HTTPRoute to the standby
    /// page) and waits until its pod has gone.
    async fn scale_down(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        let Some(deployment) = self.deployment(slug).await? else {
            return Ok(());
        };
        let name = objects::object_name(slug);
        let pp = Self::update_params();
        if deployment.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
            // Only the replicas change; a start applies the whole object.
            let scale = json!({"spec": {"replicas": 0}});
            self.api::<Deployment>()
                .patch(&name, &pp, &Patch::Merge(&scale))
                .await
                .map_err(|e| api_error(slug, "scale the deployment to 0", e))?;
        }
        if let objects::Routes::Gateway(gateway) = &self.settings.routes {
            self.route_to_standby(slug, &name, gateway).await?;
        }
        let deadline = tokio::time::Instant::now() + grace + self.stop_margin;
        loop {
            if self.pods(Some(slug)).await?.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::io(
                    "stop",
                    slug,
                    std::io::Error::other("its pod is still terminating"),
                ));
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    /// Deletes one object; a missing one is fine.
    async fn delete<K>(
        &self,
        api: &Api<K>,
        slug: &Slug,
        name: &str,
        what: &'static str,
    ) -> Result<(), RuntimeError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_error(slug, what, e)),
        }
    }
}

/// Why a pod's Foundry is not running, when it crashed.
fn crash_of(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        if !matches!(
            reason,
            "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "CreateContainerConfigError"
        ) {
            return None;
        }
        let last = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| format!(" (exit code {})", t.exit_code))
            .unwrap_or_default();
        Some(format!("{reason}{last}"))
    })
}

#[async_trait]
impl Runtime for KubernetesRuntime {
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        let slug = &spec.slug;
        let objects = objects::world_objects(&self.settings, spec, true).map_err(|e| {
            RuntimeError::Refused {
                slug: slug.to_string(),
                message: e,
            }
        })?;
        // Applying what is already there changes nothing: a world that runs
        // (also one started before a restart of Tavern) keeps its pod.
        self.apply(slug, &objects).await?;
        tracing::info!(slug = %slug, namespace = %self.settings.namespace, "applied the world's objects");
        Ok(Observed {
            id: spec.id,
            slug: slug.clone(),
            addr: self
                .service_addr(slug)
                .await?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            alive: true,
            exit: None,
            kept: false,
        })
    }

    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        self.scale_down(slug, grace).await
    }

    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        self.scale_down(slug, grace).await?;
        let name = objects::object_name(slug);
        self.delete(
            &self.api::<Deployment>(),
            slug,
            &name,
            "delete the deployment",
        )
        .await?;
        self.delete(&self.api::<Service>(), slug, &name, "delete the service")
            .await?;
        self.delete(
            &self.api::<Secret>(),
            slug,
            &objects::secret_name(slug),
            "delete the config secret",
        )
        .await?;
        if matches!(self.settings.routes, objects::Routes::Gateway(_)) {
            self.delete(&self.routes(), slug, &name, "delete the HTTPRoute")
                .await?;
        }
        let claims: Api<PersistentVolumeClaim> = self.api();
        let selector = objects::world_selector(&self.settings, slug);
        let found = claims
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_error(slug, "list the data claims", e))?;
        for claim in found.items {
            let claim = claim.metadata.name.unwrap_or_default();
            match data {
                Disposal::Delete => {
                    self.delete(&claims, slug, &claim, "delete the data claim")
                        .await?;
                    tracing::info!(slug = %slug, %claim, "deleted the data claim (a backup holds it)");
                }
                Disposal::Archive => {
                    // Kept, and no longer the world's: a new world of this
                    // slug gets a claim of its own.
                    let archived = json!({"metadata": {"labels": {
                        INSTANCE_LABEL: null,
                        ARCHIVED_LABEL: slug.as_str(),
                    }}});
                    claims
                        .patch(&claim, &Self::update_params(), &Patch::Merge(&archived))
                        .await
                        .map_err(|e| api_error(slug, "archive the data claim", e))?;
                    tracing::info!(slug = %slug, %claim, "kept the data claim, labelled {ARCHIVED_LABEL}");
                }
            }
        }
        Ok(())
    }

    fn data_dir(&self, _slug: &Slug) -> Option<PathBuf> {
        // The data lives on the world's claim in the cluster.
        None
    }

    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError> {
        let placeholder = placeholder_slug();
        let lp = ListParams::default().labels(&objects::installation_selector(&self.settings));
        let deployments = self
            .api::<Deployment>()
            .list(&lp)
            .await
            .map_err(|e| api_error(&placeholder, "list deployments", e))?;
        if deployments.items.is_empty() {
            return Ok(Vec::new());
        }
        let services = self
            .api::<Service>()
            .list(&lp)
            .await
            .map_err(|e| api_error(&placeholder, "list services", e))?;
        let addrs: HashMap<String, SocketAddr> = services
            .items
            .into_iter()
            .filter_map(|s| {
                let slug = s.metadata.labels.as_ref()?.get(INSTANCE_LABEL)?.clone();
                let ip: IpAddr = s.spec?.cluster_ip?.parse().ok()?;
                Some((slug, SocketAddr::new(ip, FOUNDRY_PORT)))
            })
            .collect();
        let pods = self.pods(None).await?;
        let mut out = Vec::with_capacity(deployments.items.len());
        for d in &deployments.items {
            let Some(slug) = d
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(INSTANCE_LABEL))
                .and_then(|s| Slug::parse(s).ok())
            else {
                continue;
            };
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(INSTANCE_LABEL))
                        == Some(&slug.to_string())
                })
                .collect();
            if let Some(o) = self.observed(&slug, d, addrs.get(slug.as_str()).copied(), &mine) {
                out.push(o);
            }
        }
        Ok(out)
    }

    async fn license_file(&self, slug: &Slug) -> Option<String> {
        let claim = match self.current_claim(slug).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(slug = %slug, error = %e, "cannot look for the world's license.json");
                return None;
            }
        };
        let read = self
            .with_agent(slug, &claim, |url, token| async move {
                crate::agent_client::license(&self.transfer, slug, &url, &token).await
            })
            .await;
        read.unwrap_or_else(|e| {
            tracing::warn!(slug = %slug, error = %e, "cannot read the world's license.json");
            None
        })
    }

    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let pods = self.pods(Some(slug)).await?;
        let Some(pod) = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .next()
        else {
            return Ok(Vec::new());
        };
        let params = kube::api::LogParams {
            container: Some("foundry".into()),
            tail_lines: Some(i64::try_from(tail).unwrap_or(i64::MAX)),
            ..Default::default()
        };
        let text = match self.api::<Pod>().logs(pod, &params).await {
            Ok(text) => text,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(api_error(slug, "read the pod's log", e)),
        };
        Ok(text.lines().map(str::to_owned).collect())
    }

    fn manifests(&self, spec: &InstanceSpec, running: bool) -> Option<Result<String, String>> {
        Some(objects::render_world(&self.settings, spec, running))
    }

    async fn has_data(&self, slug: &Slug) -> Result<bool, RuntimeError> {
        Ok(self.current_claim(slug).await?.is_some())
    }

    async fn export_archive(&self, slug: &Slug, to: &Path) -> Result<bool, RuntimeError> {
        let Some(claim) = self.current_claim(slug).await? else {
            return Ok(false);
        };
        self.with_agent(slug, &claim, |url, token| async move {
            crate::agent_client::export(&self.transfer, slug, &url, &token, to).await
        })
        .await
    }

    async fn import_archive(
        &self,
        spec: &InstanceSpec,
        from: &Path,
        record: &tavern_types::ArchiveRecord,
    ) -> Result<(), RuntimeError> {
        let slug = &spec.slug;
        // A world restored before its first start gets its claim now.
        let o = objects::world_objects(&self.settings, spec, false).map_err(|e| {
            RuntimeError::Refused {
                slug: slug.to_string(),
                message: e,
            }
        })?;
        self.ensure_claim(slug, &o.claim).await?;
        let claim = o.claim.metadata.name.clone().unwrap_or_default();
        self.with_agent(slug, &claim, |url, token| async move {
            crate::agent_client::import(&self.transfer, slug, &url, &token, from, record).await
        })
        .await
    }
}

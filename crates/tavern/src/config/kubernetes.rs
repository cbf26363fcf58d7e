//! `[kubernetes]`: the namespace, routes, storage and limits of worlds on
//! a cluster, and the lease that elects a leader among replicas.

#[cfg(feature = "kubernetes")]
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::*;

/// `[kubernetes]`: where and how worlds run when `runtime.kind` is
/// `kubernetes`. Tavern talks to the cluster as `kube` finds it: in a pod,
/// its service account; elsewhere `KUBECONFIG` or `~/.kube/config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// The namespace of the worlds' objects (one Tavern per namespace).
    pub namespace: String,
    /// Names this Tavern's objects (label `tavern.io/installation`);
    /// default: from DATA_DIR's path.
    pub installation: Option<String>,
    /// A release's image; `{version}` is replaced by the release.
    pub image: String,
    /// The `stub` release's image.
    pub stub_image: String,
    /// Tavern's own image: its init container writes each world's Config/.
    pub tavern_image: String,
    /// The data claims' storage class (default: the cluster's default).
    pub storage_class: Option<String>,
    /// Each world's data claim, e.g. `10Gi`.
    pub storage_size: String,
    /// A claim mounted read-only at /data/Data/shared in every world.
    pub shared_claim: Option<String>,
    /// The package library's claim: Tavern's DATA_DIR/packages, mounted
    /// read-only (a subPath per package) in the worlds that use them.
    pub packages_claim: Option<String>,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    /// `proxy`: Tavern's proxy forwards to each world's Service. `gateway`:
    /// an HTTPRoute per world on the cluster's Gateway carries the players.
    pub routes: RoutesMode,
    /// The Gateway the HTTPRoutes attach to (with `routes = "gateway"`).
    pub gateway: String,
    pub gateway_namespace: Option<String>,
    pub gateway_section: Option<String>,
    /// Tavern's own Service: a sleeping world's HTTPRoute points there.
    pub standby_service: String,
    pub standby_port: u16,
    /// With several replicas of Tavern: the Lease they elect a leader by
    /// (the leader runs the reconciler and the scheduler; every replica
    /// serves). Unset: this Tavern leads alone.
    pub lease: Option<String>,
    /// This replica's name in the election (default: its host name, which
    /// in a pod is the pod's name).
    pub identity: Option<String>,
    /// A leader that has not renewed for this long loses the lease; it
    /// renews `lease_grace_seconds` before that.
    pub lease_duration_seconds: u64,
    pub lease_grace_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoutesMode {
    #[default]
    Proxy,
    Gateway,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: "tavern".into(),
            installation: None,
            image: "felddy/foundryvtt:{version}".into(),
            stub_image: "tavern-foundry-stub:latest".into(),
            tavern_image: "tavern:latest".into(),
            storage_class: None,
            storage_size: "10Gi".into(),
            shared_claim: None,
            packages_claim: None,
            // felddy's Kubernetes example's requests and limits.
            cpu_request: "200m".into(),
            memory_request: "512Mi".into(),
            cpu_limit: "1".into(),
            memory_limit: "1Gi".into(),
            routes: RoutesMode::Proxy,
            gateway: "tavern".into(),
            gateway_namespace: None,
            gateway_section: None,
            standby_service: "tavern".into(),
            standby_port: 80,
            lease: None,
            identity: None,
            lease_duration_seconds: 15,
            lease_grace_seconds: 5,
        }
    }
}

impl KubernetesConfig {
    /// How the kubernetes driver makes worlds' objects.
    #[cfg(feature = "kubernetes")]
    pub fn settings(
        &self,
        data_dir: &Path,
    ) -> tavern_runtime::kubernetes::objects::KubernetesSettings {
        use tavern_runtime::kubernetes::objects::{GatewayRoutes, KubernetesSettings, Routes};
        KubernetesSettings {
            namespace: self.namespace.clone(),
            installation: self
                .installation
                .clone()
                .unwrap_or_else(|| tavern_runtime::installation_for(data_dir)),
            image: self.image.clone(),
            stub_image: self.stub_image.clone(),
            tavern_image: self.tavern_image.clone(),
            storage_class: self.storage_class.clone(),
            storage_size: self.storage_size.clone(),
            shared_claim: self.shared_claim.clone(),
            packages_claim: self.packages_claim.clone(),
            cpu_request: self.cpu_request.clone(),
            memory_request: self.memory_request.clone(),
            cpu_limit: self.cpu_limit.clone(),
            memory_limit: self.memory_limit.clone(),
            routes: match self.routes {
                RoutesMode::Proxy => Routes::Proxy,
                RoutesMode::Gateway => Routes::Gateway(GatewayRoutes {
                    gateway: self.gateway.clone(),
                    gateway_namespace: self.gateway_namespace.clone(),
                    section: self.gateway_section.clone(),
                    standby_service: self.standby_service.clone(),
                    standby_port: self.standby_port,
                }),
            },
        }
    }

    pub(super) fn check(&self) -> anyhow::Result<()> {
        // Namespaces, Services and Gateways are DNS labels; claims and
        // storage classes may have dots (DNS subdomains).
        let name = |what: &str, v: &str, dots: bool| -> anyhow::Result<()> {
            let ok = !v.is_empty()
                && v.len() <= if dots { 253 } else { 63 }
                && v.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && (dots || !v.contains('.'));
            anyhow::ensure!(
                ok,
                "invalid configuration: kubernetes.{what} {v:?} is not a Kubernetes name (lowercase letters, digits and -{})",
                if dots { ", and dots" } else { ", up to 63" }
            );
            Ok(())
        };
        name("namespace", &self.namespace, false)?;
        name("gateway", &self.gateway, false)?;
        name("standby_service", &self.standby_service, false)?;
        if let Some(v) = &self.gateway_namespace {
            name("gateway_namespace", v, false)?;
        }
        if let Some(v) = &self.gateway_section {
            name("gateway_section", v, false)?;
        }
        if let Some(v) = &self.packages_claim {
            name("packages_claim", v, true)?;
        }
        if let Some(v) = &self.shared_claim {
            name("shared_claim", v, true)?;
        }
        if let Some(v) = &self.storage_class {
            name("storage_class", v, true)?;
        }
        if let Some(v) = &self.lease {
            name("lease", v, true)?;
        }
        anyhow::ensure!(
            self.lease_grace_seconds >= 1 && self.lease_duration_seconds > self.lease_grace_seconds,
            "invalid configuration: kubernetes.lease_duration_seconds must be longer than kubernetes.lease_grace_seconds (at least 1)"
        );
        if let Some(id) = &self.installation {
            check_installation("kubernetes.installation", id)?;
        }
        anyhow::ensure!(
            self.image.contains("{version}"),
            "invalid configuration: kubernetes.image {:?} must contain {{version}}",
            self.image
        );
        for (what, v) in [
            ("storage_size", &self.storage_size),
            ("cpu_request", &self.cpu_request),
            ("memory_request", &self.memory_request),
            ("cpu_limit", &self.cpu_limit),
            ("memory_limit", &self.memory_limit),
        ] {
            anyhow::ensure!(
                is_quantity(v),
                "invalid configuration: kubernetes.{what} {v:?} is not a Kubernetes quantity (such as 500m, 2, 512Mi or 10Gi)"
            );
        }
        Ok(())
    }
}

/// Whether `v` is a Kubernetes quantity: a decimal number and an optional
/// suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki` … `Ei`, or an exponent).
pub(super) fn is_quantity(v: &str) -> bool {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, suffix) = v.split_at(split);
    let number_ok = !number.is_empty()
        && number.chars().filter(|&c| c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    // A decimal exponent: `1e3`, `5E-1`.
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    number_ok
        && (exponent
            || matches!(
                suffix,
                "" | "m"
                    | "k"
                    | "M"
                    | "G"
                    | "T"
                    | "P"
                    | "E"
                    | "Ki"
                    | "Mi"
                    | "Gi"
                    | "Ti"
                    | "Pi"
                    | "Ei"
            ))
}

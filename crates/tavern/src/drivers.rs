//! The drivers `tavern serve` runs worlds on besides processes (Docker,
//! Kubernetes, ECS), made from the configuration, and who does the
//! background work when replicas share a cluster (a Kubernetes lease).

use std::time::Duration;

use tavern_core::leadership::Leadership;
use tavern_runtime::Runtimes;
use tavern_runtime::process::ProcessRuntime;

use crate::config::Config;

/// Releases a Kubernetes lease held by this replica, at shutdown.
pub(crate) type Release = futures_util::future::BoxFuture<'static, ()>;

/// The drivers this server runs worlds on, besides processes, and who does
/// the background work: the holder of a lease when several replicas share
/// a Kubernetes cluster, else this server. A driver this build was made
/// without was refused when the configuration was read.
pub(crate) async fn drivers(
    config: &Config,
    process: ProcessRuntime,
) -> anyhow::Result<(Runtimes, Leadership, Option<Release>)> {
    #[cfg_attr(
        not(any(feature = "docker", feature = "kubernetes", feature = "ecs")),
        expect(unused_mut)
    )]
    let mut runtime = Runtimes::new(process)
        .with_stop_grace(Duration::from_secs(config.runtime.stop_grace_seconds));
    #[cfg(feature = "docker")]
    if config.runtime.docker() {
        let data_dir = &config.server.data_dir;
        let docker = tavern_runtime::docker::DockerRuntime::connect(
            config.runtime.docker_settings(data_dir),
            data_dir.join("instances"),
            data_dir.join("archive"),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!("{e} (runtime.docker_enabled or runtime.kind = \"docker\")")
        })?;
        runtime = runtime.with_docker(docker);
    }
    #[cfg(feature = "ecs")]
    if config.runtime.kind == tavern_types::RuntimeKind::Ecs {
        let e = &config.ecs;
        let region = e
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "runtime.kind = \"ecs\" needs a region: set ecs.region or AWS_REGION"
                )
            })?;
        let settings = e.settings(&config.server.data_dir, region);
        println!(
            "Worlds run as ECS services on Fargate in the cluster {} ({})",
            settings.cluster, settings.region
        );
        let ecs =
            tavern_runtime::ecs::EcsRuntime::connect(settings, e.endpoint_url.as_deref()).await;
        runtime = runtime.with_ecs(ecs);
    }
    #[cfg(feature = "kubernetes")]
    if config.runtime.kind == tavern_types::RuntimeKind::Kubernetes {
        let k = &config.kubernetes;
        let cluster = tavern_runtime::kubernetes::KubernetesRuntime::connect(
            k.settings(&config.server.data_dir),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e} (runtime.kind = \"kubernetes\")"))?;
        // With several replicas, the holder of a Lease runs the background work.
        let elected = match &k.lease {
            Some(lease) => {
                let identity = k
                    .identity
                    .clone()
                    .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
                    .unwrap_or_else(|| format!("tavern-{}", uuid::Uuid::now_v7().simple()));
                let (leading, election) = tavern_runtime::kubernetes::lease::elect(
                    cluster.client(),
                    &k.namespace,
                    lease,
                    &identity,
                    Duration::from_secs(k.lease_duration_seconds),
                    Duration::from_secs(k.lease_grace_seconds),
                )
                .await
                .map_err(anyhow::Error::msg)?;
                println!(
                    "Electing a leader by the lease {}/{lease} as {identity}",
                    k.namespace
                );
                Some((
                    Leadership::from_watch(leading),
                    Box::pin(election.finish()) as Release,
                ))
            }
            None => None,
        };
        runtime = runtime.with_kubernetes(cluster);
        if let Some((leadership, release)) = elected {
            return Ok((runtime, leadership, Some(release)));
        }
    }
    #[cfg(not(any(feature = "docker", feature = "kubernetes", feature = "ecs")))]
    let _ = config;
    Ok((runtime, Leadership::always(), None))
}

//! Leader election among Tavern's replicas by a Kubernetes Lease
//! (kube-lease-manager): the holder runs the reconciler and the scheduler;
//! the others serve and follow. The lease is released at shutdown, so the
//! next replica takes over at once.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running election; [`Election::finish`] waits for the release.
pub struct Election {
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

/// Joins the election for `lease` in `namespace` as `identity`: a holder
/// renews within `duration` (less `grace`) or loses it.
pub async fn elect(
    client: kube::Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    duration: Duration,
    grace: Duration,
) -> Result<(watch::Receiver<bool>, Election), String> {
    let manager = LeaseManagerBuilder::new(client, lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_field_manager(format!("tavern-{identity}"))
        .with_duration(duration.as_secs())
        .with_grace(grace.as_secs())
        .build()
        .await
        .map_err(|e| format!("cannot join the election for the lease {namespace}/{lease}: {e}"))?;
    let (leading, task) = manager.watch().await;
    Ok((leading, Election { task }))
}

impl Election {
    /// Once every answer of the election is dropped, the lease is released
    /// (if held); waits for that, a few seconds at most.
    pub async fn finish(self) {
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the leader lease failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the election stopped"),
            Err(_) => tracing::warn!("the leader lease was not released in time"),
        }
    }
}

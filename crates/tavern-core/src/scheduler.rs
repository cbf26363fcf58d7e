//! The scheduler: time-driven work. Today it prepares sessions whose
//! window has opened ([`Tavern::prepare_due_sessions`]); it runs on a
//! period and whenever sessions change. Idle sleep, backups and renewals
//! join it later.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Tavern;

/// Runs the scheduler until `cancel`.
pub async fn run(tavern: Tavern, period: Duration, cancel: CancellationToken) {
    let wake = tavern.schedule_wake.clone();
    loop {
        match tavern.prepare_due_sessions().await {
            Ok(started) if !started.is_empty() => {
                tracing::info!(worlds = ?started, "sessions begin: worlds started");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "preparing sessions failed; will retry"),
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(period) => {}
        }
    }
}

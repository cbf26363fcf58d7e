//! Termination signals for the stand-in (it plays another program:
//! `tavern serve` keeps its own). The handlers are installed when
//! [`termination`] is called, so call it before announcing readiness: a
//! SIGTERM that arrives after that is always a clean stop.

use std::future::Future;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

/// Installs SIGTERM and SIGINT handlers now; the future resolves with the
/// name of the first signal received.
pub fn termination() -> anyhow::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

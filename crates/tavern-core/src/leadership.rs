//! Which replica leads: with several Taverns on one store, one runs the
//! reconciler, the scheduler and the other background work while every
//! replica serves the API and the proxy. The election itself belongs to an
//! adapter (a Kubernetes Lease); this module runs work by its answer, and
//! passes the replicas' notices of change on to that work.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::tavern::Tavern;

/// Whether this replica leads now, and when that changes.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// A Tavern alone: it leads from the start, for good.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // The sender is dropped: the answer never changes.
        drop(tx);
        Self(rx)
    }

    /// The answers of an election.
    pub fn from_watch(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Logs this replica's part at the start and at each change, once
    /// (the work run by [`run_by_leadership`] logs none of its own).
    pub async fn announce(mut self) {
        loop {
            if *self.0.borrow_and_update() {
                tracing::info!("this replica leads: it runs the background work");
            } else {
                tracing::info!("another replica leads: this one serves and follows");
            }
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `lead` while this replica leads and `follow` while it does not,
/// each with a token that is cancelled when leadership changes hands or at
/// `shutdown`; the next one starts once the last has stopped, so the two
/// never overlap.
pub async fn run_by_leadership<L, LF, F, FF>(
    mut leadership: Leadership,
    shutdown: CancellationToken,
    mut lead: L,
    mut follow: F,
) where
    L: FnMut(CancellationToken) -> LF,
    LF: Future<Output = ()> + Send + 'static,
    F: FnMut(CancellationToken) -> FF,
    FF: Future<Output = ()> + Send + 'static,
{
    let mut decided;
    loop {
        let leading = *leadership.0.borrow_and_update();
        let token = shutdown.child_token();
        let mut work: Work = if leading {
            Box::pin(lead(token.clone()))
        } else {
            Box::pin(follow(token.clone()))
        };
        decided = true;
        let mut done = false;
        loop {
            tokio::select! {
                () = &mut work, if !done => done = true,
                changed = leadership.0.changed(), if decided => {
                    if changed.is_err() {
                        // No election any more: the answer stands.
                        decided = false;
                        continue;
                    }
                    if *leadership.0.borrow() == leading {
                        continue;
                    }
                    token.cancel();
                    if !done {
                        work.await;
                    }
                    break;
                }
                () = shutdown.cancelled() => {
                    if !done {
                        work.await;
                    }
                    return;
                }
            }
        }
    }
}

/// Until `shutdown`: each notice from another replica on the store (a
/// start asked of a follower, the leader's new routes) wakes this one's
/// reconciler, or its following of the routes. A lost connection is made
/// again after a pause; what passed meanwhile waits for the next pass.
pub async fn hear_notices(tavern: Tavern, shutdown: CancellationToken) {
    let wake = tavern.wake_handle();
    loop {
        match tavern.store().notices().await {
            Ok(None) => return,
            Ok(Some(mut notices)) => loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    heard = notices.next() => match heard {
                        Some(()) => wake.notify_one(),
                        None => break,
                    },
                }
            },
            Err(e) => tracing::warn!(error = %e, "listening for the other replicas' notices"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_follows_leadership_and_never_overlaps() {
        let (tx, rx) = watch::channel(false);
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let shutdown = CancellationToken::new();
        let (l, f) = (log.clone(), log.clone());
        let running = tokio::spawn(run_by_leadership(
            Leadership::from_watch(rx),
            shutdown.clone(),
            move |token: CancellationToken| {
                let log = l.clone();
                async move {
                    log.lock().unwrap().push("lead+".into());
                    token.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    log.lock().unwrap().push("lead-".into());
                }
            },
            move |token: CancellationToken| {
                let log = f.clone();
                async move {
                    log.lock().unwrap().push("follow+".into());
                    token.cancelled().await;
                    log.lock().unwrap().push("follow-".into());
                }
            },
        ));
        let settle = || tokio::time::sleep(Duration::from_millis(60));
        settle().await;
        tx.send(true).unwrap();
        settle().await;
        // The same answer again changes nothing.
        tx.send(true).unwrap();
        settle().await;
        tx.send(false).unwrap();
        settle().await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["follow+", "follow-", "lead+", "lead-", "follow+", "follow-"]
        );
    }

    #[tokio::test]
    async fn a_tavern_alone_leads_until_shutdown() {
        let shutdown = CancellationToken::new();
        let leadership = Leadership::always();
        assert!(leadership.is_leader());
        let led = Arc::new(Mutex::new(0));
        let counter = led.clone();
        let running = tokio::spawn(run_by_leadership(
            leadership,
            shutdown.clone(),
            move |token: CancellationToken| {
                let counter = counter.clone();
                async move {
                    *counter.lock().unwrap() += 1;
                    token.cancelled().await;
                }
            },
            |_| async { panic!("a Tavern alone never follows") },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(*led.lock().unwrap(), 1);
    }
}

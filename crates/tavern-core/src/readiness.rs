//! Watching a world that was just started: its `/api/status` is asked
//! quickly at first and less often as the start goes on, and the
//! reconciler is woken the moment it answers, so that the world's route is
//! handed over then, not at the reconciler's next pass.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first pause between two questions.
const FIRST: Duration = Duration::from_millis(2);
/// The longest pause, and the reconciler's own pass while something starts
/// or stops.
pub(crate) const LONGEST: Duration = Duration::from_millis(250);

/// The pauses between the questions: 2 ms, growing by half each time, to
/// 250 ms. (A stand-in answers within milliseconds of its spawn, Foundry
/// within seconds: the first are found at once, and a slow start is asked
/// a few times a second.)
pub(crate) fn pauses() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST), |p| Some((*p * 3 / 2).min(LONGEST)))
}

/// Asks a started world whether it answers (`ask`: its `/api/status`)
/// after each of [`pauses`], until it does (then wakes the reconciler
/// through `wake`), `within` has passed, or `cancel`.
pub(crate) fn watch<A, F>(
    mut ask: A,
    wake: Arc<Notify>,
    within: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()>
where
    A: FnMut() -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let begun = Instant::now();
        for pause in pauses() {
            let answered = tokio::select! {
                () = cancel.cancelled() => return,
                answered = ask() => answered,
            };
            if answered {
                wake.notify_one();
                return;
            }
            if begun.elapsed() >= within {
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Asks that count themselves; the world answers from the `from`th on.
    fn asks(from: u32) -> (Arc<AtomicU32>, impl FnMut() -> std::future::Ready<bool>) {
        let count = Arc::new(AtomicU32::new(0));
        let counted = count.clone();
        (count, move || {
            std::future::ready(counted.fetch_add(1, Ordering::SeqCst) + 1 >= from)
        })
    }

    #[tokio::test]
    async fn the_reconciler_is_woken_once_the_world_answers_and_it_is_asked_no_more() {
        let wake = Arc::new(Notify::new());
        let (count, ask) = asks(5);
        let watching = watch(
            ask,
            wake.clone(),
            Duration::from_secs(120),
            CancellationToken::new(),
        );
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("the reconciler is woken");
        watching.await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_world_that_never_answers_is_asked_until_the_start_times_out_or_is_called_off() {
        let wake = Arc::new(Notify::new());
        let (count, ask) = asks(u32::MAX);
        // It gives up by itself once the start has timed out.
        let within = Duration::from_millis(100);
        let watching = watch(ask, wake.clone(), within, CancellationToken::new());
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watch ends with the start's time")
            .unwrap();
        assert!(count.load(Ordering::SeqCst) >= 2);

        let cancel = CancellationToken::new();
        let (count, ask) = asks(u32::MAX);
        let watching = watch(ask, wake.clone(), Duration::from_secs(120), cancel.clone());
        while count.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watch ends when called off")
            .unwrap();
        // Nobody was woken.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), wake.notified())
                .await
                .is_err()
        );
    }

    #[test]
    fn questions_come_fast_at_first_then_four_times_a_second() {
        let p: Vec<Duration> = pauses().take(40).collect();
        assert_eq!(p[0], Duration::from_millis(2));
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{p:?}");
        // Within the first 50 ms, about ten questions; none ever waits
        // more than the reconciler's own pass.
        let mut spent = Duration::ZERO;
        let early = p
            .iter()
            .take_while(|d| {
                spent += **d;
                spent <= Duration::from_millis(50)
            })
            .count();
        assert!((6..=12).contains(&early), "{early} questions in 50 ms");
        assert_eq!(*p.last().unwrap(), LONGEST);
    }
}

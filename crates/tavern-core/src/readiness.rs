//! Watching a world that was just started: its `/api/status` is asked
//! quickly at first and less often as the start goes on, and the
//! reconciler is woken the moment it answers, so that the world's route is
//! handed over then, not at the reconciler's next pass.

use std::time::{Duration, Instant};

use tavern_runtime::Observed;
use tokio_util::sync::CancellationToken;

use crate::tavern::Tavern;

/// The first pause between two questions.
const FIRST: Duration = Duration::from_millis(2);
/// The longest pause: the reconciler's own pass while a world starts.
const LONGEST: Duration = Duration::from_millis(250);

/// The pauses between the questions: 2 ms, growing by half each time, to
/// 250 ms. (A stand-in answers within milliseconds of its spawn, Foundry
/// within seconds: the first are found at once, and a slow start is asked
/// a few times a second.)
pub(crate) fn pauses() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST), |p| Some((*p * 3 / 2).min(LONGEST)))
}

/// Asks the started world `observed` for its status until it answers (then
/// wakes the reconciler), `within` has passed, or `cancel`.
pub(crate) fn watch(
    tavern: Tavern,
    observed: Observed,
    route_prefix: Option<String>,
    within: Duration,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let begun = Instant::now();
        for pause in pauses() {
            let asked = tavern.runtime().status(&observed, route_prefix.as_deref());
            let answered = tokio::select! {
                () = cancel.cancelled() => return,
                s = asked => s.is_some(),
            };
            if answered {
                tracing::debug!(slug = %observed.slug, after = ?begun.elapsed(), "the world answers");
                tavern.wake_handle().notify_one();
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
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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

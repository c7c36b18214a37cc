//! The retry policy for statements that lost a race for a table lock: exponential backoff with
//! jitter, within one budget of wall time (`--lock-budget`).
//!
//! Every statement runs under the session's short `lock_timeout`, so while it waits behind a
//! long transaction, the queries queued behind it wait at most that long; then it lets them
//! through, sleeps, and tries again. The budget bounds how long one unit of work (a revision's
//! transaction, a phase, a batch) keeps trying before the run stops and says who blocked it.

use std::time::{Duration, Instant};

/// The first pause after a lost race.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause: short enough to catch the gap after a blocker commits.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The attempts of one unit of work.
#[derive(Debug)]
pub(crate) struct Backoff {
    started: Instant,
    budget: Duration,
    pause: Duration,
    /// The attempt about to run, from 1.
    pub(crate) attempt: u32,
}

impl Backoff {
    /// The first attempt of a unit that may retry for `budget`.
    pub(crate) fn new(budget: Duration) -> Self {
        Backoff {
            started: Instant::now(),
            budget,
            pause: FIRST_PAUSE,
            attempt: 1,
        }
    }

    /// The pause before the next attempt, or `None` when the budget is spent.
    pub(crate) fn next_pause(&mut self) -> Option<Duration> {
        let spent = self.started.elapsed();
        if spent >= self.budget {
            return None;
        }
        let pause = jitter(self.pause).min(self.budget - spent);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        self.attempt += 1;
        Some(pause)
    }

    /// Time since the first attempt began.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Between half and all of `pause`, so that several migrators (or a migrator and a cron job)
/// retrying against the same blocker do not do so in lockstep.
fn jitter(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (nanos ^ std::process::id().rotate_left(16)).wrapping_mul(0x9e37_79b9);
    let spread = mixed % 1000;
    pause / 2 + pause / 2 * spread / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stop_at_the_budget() {
        let mut backoff = Backoff::new(Duration::from_millis(300));
        let first = backoff.next_pause().expect("within budget");
        assert!(
            first >= FIRST_PAUSE / 2 && first <= FIRST_PAUSE,
            "{first:?}"
        );
        let second = backoff.next_pause().expect("within budget");
        assert!(
            second >= FIRST_PAUSE && second <= FIRST_PAUSE * 2,
            "{second:?}"
        );
        assert_eq!(backoff.attempt, 3);
        std::thread::sleep(Duration::from_millis(310));
        assert_eq!(backoff.next_pause(), None);
    }

    #[test]
    fn a_pause_never_passes_the_end_of_the_budget() {
        let mut backoff = Backoff::new(Duration::from_millis(20));
        backoff.pause = MAX_PAUSE;
        let pause = backoff.next_pause().expect("within budget");
        assert!(pause <= Duration::from_millis(20), "{pause:?}");
    }
}

//! How the workspace waits, written once: exponential backoff with jitter within one budget of
//! wall time. Two waits use it: a unit of work retrying a statement that lost a race for a table
//! lock (`--lock-budget`, [`Backoff::new`]), and a migrator or a restore waiting for the
//! migration lock (`--lock-wait`, [`wait_for_lock`]).
//!
//! It touches no database but through [`Driver::try_lock`]; it reads the clock and sleeps the
//! calling thread, the only things in the core that take time.

use crate::driver::{Driver, DriverError};
use std::time::{Duration, Instant};

/// The first pause after a lost race for a table lock.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause after a lost race: short enough to catch the gap after a blocker commits.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The first pause of a wait for the migration lock: a run that holds it for a moment (nothing
/// to do) is caught early.
const LOCK_FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two polls of the migration lock: a waiting migrator starts within
/// this long of the lock's release, and a crowd of them polls a few times a second at most.
const LOCK_MAX_PAUSE: Duration = Duration::from_millis(400);

/// The attempts of one wait.
#[derive(Debug)]
pub struct Backoff {
    started: Instant,
    budget: Duration,
    pause: Duration,
    max_pause: Duration,
    /// The attempt about to run, from 1.
    pub attempt: u32,
}

impl Backoff {
    /// The first attempt of a unit of work that may retry lost races for table locks for `budget`.
    pub fn new(budget: Duration) -> Self {
        Self::with_pauses(budget, FIRST_PAUSE, MAX_PAUSE)
    }

    /// The first poll of the migration lock, by a migrator that may wait for `budget`.
    pub fn for_lock(budget: Duration) -> Self {
        Self::with_pauses(budget, LOCK_FIRST_PAUSE, LOCK_MAX_PAUSE)
    }

    fn with_pauses(budget: Duration, first: Duration, max_pause: Duration) -> Self {
        Backoff {
            started: Instant::now(),
            budget,
            pause: first,
            max_pause,
            attempt: 1,
        }
    }

    /// The pause before the next attempt, or `None` when the budget is spent.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let spent = self.started.elapsed();
        if spent >= self.budget {
            return None;
        }
        let pause = jitter(self.pause).min(self.budget - spent);
        self.pause = (self.pause * 2).min(self.max_pause);
        self.attempt += 1;
        Some(pause)
    }

    /// Time since the first attempt began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Takes the migration lock, polling [`Driver::try_lock`] with backoff for at most `budget` (one
/// try when it is zero); `on_busy(pause)` hears of each pause before it is slept. Fails with
/// [`DriverError::LockBusy`] when another migrator still holds the lock.
///
/// Polling, not a blocking wait: a blocking `pg_advisory_lock` can deadlock with a concurrent
/// index build, and a poll lets a signal stop the wait. Drivers poll on their work session, so
/// that a waiting migrator holds one connection.
pub fn wait_for_lock(
    driver: &mut dyn Driver,
    budget: Duration,
    on_busy: &mut dyn FnMut(Duration),
) -> Result<(), DriverError> {
    let mut backoff = Backoff::for_lock(budget);
    loop {
        if driver.try_lock()? {
            return Ok(());
        }
        let Some(pause) = backoff.next_pause() else {
            return Err(DriverError::LockBusy(backoff.elapsed()));
        };
        on_busy(pause);
        std::thread::sleep(pause);
    }
}

/// Between half and all of `pause`, so that several migrators (or a migrator and a cron job)
/// waiting for the same lock do not retry in lockstep.
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

    #[test]
    fn lock_polls_grow_to_their_own_ceiling() {
        let mut backoff = Backoff::for_lock(Duration::from_secs(3600));
        let pauses: Vec<Duration> = (0..8)
            .map(|_| backoff.next_pause().expect("budget"))
            .collect();
        assert!(pauses[0] <= LOCK_FIRST_PAUSE, "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= LOCK_MAX_PAUSE), "{pauses:?}");
        assert!(pauses[7] >= LOCK_MAX_PAUSE / 2, "{pauses:?}");
    }

    #[test]
    fn a_zero_budget_gives_no_pause() {
        assert_eq!(Backoff::for_lock(Duration::ZERO).next_pause(), None);
    }
}

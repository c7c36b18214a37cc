//! The retry policy for statements that lost a race for a table lock: exponential backoff with
//! jitter, within one budget of wall time (`--lock-budget`), as [`migrate_core::wait`] writes it
//! once for the workspace.
//!
//! Every statement runs under the session's short `lock_timeout`, so while it waits behind a
//! long transaction, the queries queued behind it wait at most that long; then it lets them
//! through, sleeps, and tries again. The budget bounds how long one unit of work (a revision's
//! transaction, a phase, a batch) keeps trying before the run stops and says who blocked it.

pub(crate) use migrate_core::wait::Backoff;

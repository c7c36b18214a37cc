//! SIGINT and SIGTERM (what Kubernetes sends before it kills a pod).
//!
//! A thread of its own waits for them (no code runs inside a signal handler). The first one:
//! the child tools' process groups are killed (a dump or restore cut short is removed by the
//! command's own cleanup), the statement running on the PostgreSQL server is cancelled, and the
//! step it belonged to fails as "interrupted": the engine rolls it back, records it in the
//! history, and releases the lock, as for any failed step. The command then ends with one line
//! and exit 130 (SIGINT) or 143 (SIGTERM).
//!
//! If the command has not ended [`GRACE`] later (a statement that ignores the cancel, a wait
//! that is not a statement), or at a second signal, the tool exits at once: the server rolls
//! back the open transaction and frees the lock when the connection closes, and the children
//! die with the tool (see `crate::open::interrupt_sessions`).

use migrate_core::driver::{
    BatchOutcome, Driver, DriverError, ExecError, HistoryRecord, PhaseProgress, PhasedDriver,
    ProgressSql, StateSql, StateTables,
};
use migrate_core::{Direction, Heads, Schema};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// How long the interrupted command has to roll back, record and unlock before the tool exits
/// anyway: well inside Kubernetes' default 30 s between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// The signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Starts the thread that waits for SIGINT and SIGTERM.
pub fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            log::warn!("cannot handle SIGINT and SIGTERM ({e}): they will stop the tool at once");
            return;
        }
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if RECEIVED
                .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                eprintln!(
                    "error: interrupted by {} twice: stopped at once",
                    name(signal)
                );
                std::process::exit(exit_code(signal));
            }
            crate::open::interrupt_sessions();
            std::thread::spawn(move || {
                std::thread::sleep(GRACE);
                eprintln!(
                    "error: interrupted by {}: the command did not stop within {} s; stopped at once (the server rolls back what was open)",
                    name(signal),
                    GRACE.as_secs()
                );
                std::process::exit(exit_code(signal));
            });
        }
    });
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Prints the one line of an interrupted command and gives its exit code.
pub fn finish(signal: i32, what: &str) -> i32 {
    eprintln!("error: interrupted by {}: {what}", name(signal));
    exit_code(signal)
}

fn name(signal: i32) -> &'static str {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// 128 + the signal's number, as shells report it: 130 for SIGINT, 143 for SIGTERM.
fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// The error that stands for the interruption: the step it falls on fails with it, and the
/// history records it.
fn interrupted(signal: i32, detail: &str) -> DriverError {
    DriverError::Statement {
        code: Some("57014".to_owned()),
        message: format!("interrupted by {}: {detail}", name(signal)),
    }
}

/// A driver whose work stops at a signal: the statement running then (cancelled on the server)
/// or, if none was, the next one fails as interrupted, exactly once, so that what the engine
/// does about a failure (roll back, record it in the history, unlock) still runs.
pub struct Interruptible {
    inner: Box<dyn Driver>,
    delivered: bool,
    /// The inner driver's progress SQL, when it runs revisions in phases.
    progress: Option<&'static dyn ProgressSql>,
}

impl Interruptible {
    /// Wraps `inner`.
    pub fn new(mut inner: Box<dyn Driver>) -> Self {
        let progress = inner.phased().map(|p| p.progress_sql());
        Interruptible {
            inner,
            delivered: false,
            progress,
        }
    }

    fn inner_phased(&mut self) -> Result<&mut dyn PhasedDriver, DriverError> {
        self.inner
            .phased()
            .ok_or_else(|| DriverError::Unsupported("running a revision in phases".to_owned()))
    }

    /// The interruption, if a signal came and no statement has failed for it yet.
    fn pending(&mut self) -> Option<i32> {
        let signal = received()?;
        (!self.delivered).then(|| {
            self.delivered = true;
            signal
        })
    }

    fn before(&mut self) -> Result<(), ExecError> {
        match self.pending() {
            Some(signal) => Err(ExecError {
                statement: None,
                error: interrupted(signal, "stopped before this step's first statement"),
            }),
            None => Ok(()),
        }
    }

    fn after(&mut self, result: Result<(), ExecError>) -> Result<(), ExecError> {
        match result {
            Err(e) => match self.pending() {
                Some(signal) => Err(ExecError {
                    statement: e.statement,
                    error: interrupted(
                        signal,
                        "the running statement was cancelled on the server and its transaction rolled back",
                    ),
                }),
                None => Err(e),
            },
            ok => ok,
        }
    }
}

impl Driver for Interruptible {
    fn state_sql(&self) -> &dyn StateSql {
        self.inner.state_sql()
    }

    fn server_version(&mut self) -> Result<String, DriverError> {
        self.inner.server_version()
    }

    fn try_lock(&mut self) -> Result<bool, DriverError> {
        // Before every poll: a signal stops the engine's wait within one pause.
        if let Some(signal) = self.pending() {
            return Err(interrupted(
                signal,
                "stopped while waiting for the migration lock",
            ));
        }
        self.inner.try_lock()
    }

    fn unlock(&mut self) -> Result<(), DriverError> {
        self.inner.unlock()
    }

    fn state_tables(&mut self) -> Result<StateTables, DriverError> {
        self.inner.state_tables()
    }

    fn read_heads(&mut self) -> Result<Heads, DriverError> {
        self.inner.read_heads()
    }

    fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DriverError> {
        self.inner.read_history()
    }

    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.before()?;
        let result = self.inner.execute_in_transaction(statements);
        self.after(result)
    }

    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.before()?;
        let result = self.inner.execute_each(statements);
        self.after(result)
    }

    fn introspect(&mut self) -> Result<Schema, DriverError> {
        self.inner.introspect()
    }

    fn canonicalize(&mut self, expected: &Schema) -> Result<Schema, DriverError> {
        self.inner.canonicalize(expected)
    }

    fn phased(&mut self) -> Option<&mut dyn PhasedDriver> {
        // Without this the engine would run every revision whole, phases and batches unused.
        match self.progress {
            Some(_) => Some(self),
            None => None,
        }
    }
}

/// The inner driver's phases, each batch stopped by a signal as a statement is.
impl PhasedDriver for Interruptible {
    fn progress_sql(&self) -> &'static dyn ProgressSql {
        // Always the inner driver's: `phased()` offers this only when it has phases, and
        // PostgreSQL's is the only driver that has.
        self.progress
            .unwrap_or_else(crate::open::phased_progress_sql)
    }

    fn read_progress(
        &mut self,
        revision: &str,
        direction: Direction,
    ) -> Result<Vec<PhaseProgress>, DriverError> {
        self.inner_phased()?.read_progress(revision, direction)
    }

    fn execute_batch(
        &mut self,
        batch: &str,
        after: Option<&str>,
        limit: i64,
        time_limit: Duration,
        record: &dyn Fn(&BatchOutcome) -> String,
    ) -> Result<BatchOutcome, ExecError> {
        self.before()?;
        let result = self
            .inner_phased()
            .map_err(|error| ExecError {
                statement: None,
                error,
            })?
            .execute_batch(batch, after, limit, time_limit, record);
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => Err(match self.after(Err(e)) {
                Err(e) => e,
                Ok(()) => ExecError {
                    statement: None,
                    error: DriverError::Unsupported(
                        "a batch that failed without an error".to_owned(),
                    ),
                },
            }),
        }
    }

    fn estimate_rows(&mut self, table: &str) -> Result<Option<i64>, DriverError> {
        self.inner_phased()?.estimate_rows(table)
    }
}

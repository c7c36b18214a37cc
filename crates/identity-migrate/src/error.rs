//! The binary's errors: one line each, and the exit code that goes with it.

use migrate_core::driver::DriverError;
use migrate_engine::EngineError;
use migrate_postgres::url::UrlError;
use std::fmt;

/// Exit code of bad input: usage, configuration, URL, unknown or ambiguous revision.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code of `check` and `verify` when the database is not what it should be.
pub const EXIT_DRIFT: i32 = 3;
/// Exit code of a failure while doing the work: unreachable server, failed step, busy lock.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of `status --exit-code` when revisions are pending.
pub const EXIT_PENDING: i32 = 4;
/// Exit code of `wait` when the database did not reach the revision in time.
pub const EXIT_WAIT_TIMEOUT: i32 = 5;
/// Exit code of a lint error that no allowance covers (`lint`, and `migrate` refusing).
pub const EXIT_LINT: i32 = 6;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The configuration is wrong.
    Config(String),
    /// The database URL is wrong.
    Url(UrlError),
    /// The engine refused or failed.
    Engine(EngineError),
    /// A file could not be written.
    Io(String),
    /// A backup, verification or restore failed.
    Backup(migrate_backup::BackupError),
    /// `check` or `verify` found the database not as it should be (already reported on stdout).
    Drift(String),
    /// Whoever read the output stopped reading (`| head`): not worth a message.
    OutputClosed,
    /// `status --exit-code`: revisions are pending (already reported on stdout).
    Pending(String),
    /// `wait`: the database was reached but did not get to the revision in time.
    WaitTimedOut(String),
    /// A database never accepted a connection (`wait`, `status --all-environments`).
    Unreachable(String),
    /// `promote` refused: an environment is not in a state to promote from or to.
    Refused(String),
    /// Lint found an error that no allowance covers (the findings are on stdout).
    Lint(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Url(_) => EXIT_BAD_INPUT,
            CliError::Engine(EngineError::Resolve(_)) => EXIT_BAD_INPUT,
            CliError::Engine(_) | CliError::Io(_) => EXIT_FAILURE,
            CliError::OutputClosed => 0,
            CliError::Lint(_) => EXIT_LINT,
            CliError::Drift(_) => EXIT_DRIFT,
            CliError::Backup(migrate_backup::BackupError::NotEmpty { .. }) => EXIT_BAD_INPUT,
            CliError::Backup(_) => EXIT_FAILURE,
            CliError::Pending(_) => EXIT_PENDING,
            CliError::WaitTimedOut(_) => EXIT_WAIT_TIMEOUT,
            CliError::Unreachable(_) => EXIT_FAILURE,
            CliError::Refused(_) => EXIT_DRIFT,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(m) | CliError::Io(m) => f.write_str(m),
            CliError::Url(e) => e.fmt(f),
            CliError::Engine(e) => e.fmt(f),
            CliError::OutputClosed => f.write_str("output closed"),
            CliError::Drift(m) | CliError::Lint(m) => f.write_str(m),
            CliError::Backup(e) => e.fmt(f),
            CliError::Pending(m)
            | CliError::WaitTimedOut(m)
            | CliError::Unreachable(m)
            | CliError::Refused(m) => f.write_str(m),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::Engine(e)
    }
}

impl From<DriverError> for CliError {
    fn from(e: DriverError) -> Self {
        CliError::Engine(EngineError::Driver(e))
    }
}

impl From<UrlError> for CliError {
    fn from(e: UrlError) -> Self {
        CliError::Url(e)
    }
}

impl From<migrate_backup::BackupError> for CliError {
    fn from(e: migrate_backup::BackupError) -> Self {
        CliError::Backup(e)
    }
}

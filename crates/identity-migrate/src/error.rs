//! The binary's errors: one line each, and the exit code that goes with it.

use migrate_core::driver::DriverError;
use migrate_engine::EngineError;

/// Exit code of bad input: usage, configuration, URL, unknown or ambiguous revision.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code of a refusal: `check` and `verify` when the database is not what it should be,
/// `promote` and `seed` when it is not in a state to do the work.
pub const EXIT_DRIFT: i32 = 3;
/// Exit code of a failure while doing the work: unreachable server, failed step, busy lock.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of `status --exit-code` when revisions are pending.
pub const EXIT_PENDING: i32 = 4;
/// Exit code of `wait` when the database did not reach the revision in time.
pub const EXIT_WAIT_TIMEOUT: i32 = 5;
/// Exit code of a lint error that no allowance covers (`lint`, and `migrate` refusing).
pub const EXIT_LINT: i32 = 6;

/// Why a command failed. The message is the one line the operator reads; [`CliError::exit_code`]
/// decides the exit code from the variant alone.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// The database URL is wrong (the driver's parser says how: see `open`).
    #[error("{0}")]
    Url(String),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The database itself failed outside the engine: connecting, reading, a client tool.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A file could not be written.
    #[error("{0}")]
    Io(String),
    /// A backup, verification or restore failed.
    #[error(transparent)]
    Backup(#[from] migrate_backup::BackupError),
    /// `seed` did not load its data (nothing was loaded: its transaction rolled back).
    #[error("cannot seed {database}: {source}")]
    Seed {
        /// The database, its password hidden.
        database: String,
        /// Why.
        #[source]
        source: identity_seed::SeedError,
    },
    /// `check` or `verify` found the database not as it should be (already reported on stdout).
    #[error("{0}")]
    Drift(String),
    /// Whoever read the output stopped reading (`| head`): not worth a message.
    #[error("output closed")]
    OutputClosed,
    /// `status --exit-code`: revisions are pending (already reported on stdout).
    #[error("{0}")]
    Pending(String),
    /// `wait`: the database was reached but did not get to the revision in time.
    #[error("{0}")]
    WaitTimedOut(String),
    /// A database never accepted a connection (`wait`, `status --all-environments`).
    #[error("{0}")]
    Unreachable(String),
    /// `promote` refused: an environment is not in a state to promote from or to.
    #[error("{0}")]
    Refused(String),
    /// Lint found an error that no allowance covers (the findings are on stdout).
    #[error("{0}")]
    Lint(String),
}

impl CliError {
    /// The process exit code for this error: the variant decides, here and nowhere else.
    pub fn exit_code(&self) -> i32 {
        use identity_seed::SeedError;
        match self {
            CliError::Config(_) | CliError::Url(_) => EXIT_BAD_INPUT,
            CliError::Engine(EngineError::Resolve(_)) => EXIT_BAD_INPUT,
            CliError::Engine(_) | CliError::Driver(_) | CliError::Io(_) => EXIT_FAILURE,
            CliError::OutputClosed => 0,
            CliError::Lint(_) => EXIT_LINT,
            CliError::Drift(_) => EXIT_DRIFT,
            CliError::Backup(migrate_backup::BackupError::NotEmpty { .. }) => EXIT_BAD_INPUT,
            CliError::Backup(_) => EXIT_FAILURE,
            // The database is not in a state to seed (not at head, or not empty): refused, as
            // `promote` refuses; the server or the stream failing is a failure.
            CliError::Seed {
                source:
                    SeedError::MissingTables(_) | SeedError::MissingColumns(_) | SeedError::NotEmpty(_),
                ..
            } => EXIT_DRIFT,
            CliError::Seed { .. } => EXIT_FAILURE,
            CliError::Pending(_) => EXIT_PENDING,
            CliError::WaitTimedOut(_) => EXIT_WAIT_TIMEOUT,
            CliError::Unreachable(_) => EXIT_FAILURE,
            CliError::Refused(_) => EXIT_DRIFT,
        }
    }
}

/// A failed write of the command's output as an error (a closed pipe ends quietly).
pub(crate) fn io_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::OutputClosed;
    }
    CliError::Io(format!("cannot write output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_driver_error_is_not_an_engine_error() {
        let refused = DriverError::Authentication("password authentication failed".into());
        let e = CliError::from(refused.clone());
        assert!(matches!(e, CliError::Driver(_)), "{e:?}");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        // The message is the driver's, word for word.
        assert_eq!(e.to_string(), refused.to_string());
    }

    #[test]
    fn a_failed_step_has_the_database_error_as_its_source() {
        let failure = migrate_engine::StepFailure {
            step: migrate_core::Step {
                revision: "aaaa".into(),
                direction: migrate_core::Direction::Up,
                heads_before: Default::default(),
                heads_after: Default::default(),
            },
            statement: None,
            error: DriverError::Io("connection lost".into()),
            completed: Vec::new(),
            stays_at: Default::default(),
            committed_phases: 0,
        };
        let e = CliError::from(EngineError::StepFailed(Box::new(failure)));
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let mut chain = Vec::new();
        let mut next = e.source();
        while let Some(cause) = next {
            chain.push(cause.to_string());
            next = cause.source();
        }
        assert_eq!(chain.last().map(String::as_str), Some("connection lost"));
    }

    #[test]
    fn a_resolve_error_is_bad_input() {
        let e = CliError::from(EngineError::Resolve(migrate_core::ResolveError::Unknown(
            "ffff".into(),
        )));
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
    }
}

//! The driver trait: what the engine needs from a database, and nothing of policy.

use crate::graph::Heads;
use crate::render::Dialect;
use crate::revision::Direction;
use crate::schema::Schema;
use std::time::Duration;

/// One step recorded in the history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The revision.
    pub revision: String,
    /// Apply or undo.
    pub direction: Direction,
    /// The revision's checksum when it ran.
    pub checksum: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The operating-system user that ran the tool.
    pub os_user: String,
    /// The host the tool ran on.
    pub host: String,
    /// The tool's version.
    pub tool_version: String,
}

/// How a history entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step was applied (timed by the database: its transaction's start to this row).
    Applied,
    /// The step failed after running this long, with this error.
    Failed {
        /// The error, one line.
        error: String,
        /// How long it ran.
        after: Duration,
    },
    /// An operator accepted the revision's new checksum (`--accept-changed`); nothing ran.
    Accepted,
}

impl Outcome {
    /// `applied`, `failed` or `accepted`, as the history table records it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed { .. } => "failed",
            Outcome::Accepted => "accepted",
        }
    }
}

/// The history table's `INSERT` for `entry`, the same for every dialect but for the two
/// timestamp expressions (and `error`, the already quoted error or `NULL`).
pub fn history_insert(
    entry: &HistoryEntry,
    error: &str,
    started_at: &str,
    finished_at: &str,
) -> String {
    use crate::render::quote_literal;
    format!(
        "INSERT INTO identity_migrate_history (revision, direction, checksum, outcome, error, started_at, finished_at, os_user, host, tool_version) VALUES ({}, {}, {}, {}, {error}, {started_at}, {finished_at}, {}, {}, {})",
        quote_literal(&entry.revision),
        quote_literal(entry.direction.as_str()),
        quote_literal(&entry.checksum),
        quote_literal(entry.outcome.as_str()),
        quote_literal(&entry.os_user),
        quote_literal(&entry.host),
        quote_literal(&entry.tool_version),
    )
}

/// One row read back from the history table.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    /// The revision.
    pub revision: String,
    /// Apply or undo.
    pub direction: Direction,
    /// The checksum recorded.
    pub checksum: String,
    /// `applied`, `failed` or `accepted`.
    pub outcome: String,
    /// The error of a failed step.
    pub error: Option<String>,
    /// When it finished, as the database wrote it (ISO 8601, UTC).
    pub finished_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The database user.
    pub db_user: String,
    /// The OS user and host, `user@host`.
    pub ran_by: String,
    /// The tool version.
    pub tool_version: String,
}

/// The tool's own tables, as found in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTables {
    /// `alembic_version` exists.
    pub version: bool,
    /// The history table exists.
    pub history: bool,
}

/// A database error, classified for the engine's policy and the operator's eyes.
///
/// Messages never hold a password. The variants carry the server's or the OS's text, not the
/// error values, so there is no `source()`: a driver turns its library's error into one of
/// these where it happens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The server could not be reached.
    #[error("cannot reach the database server: {0}")]
    Unreachable(String),
    /// The server refused the credentials.
    #[error("the database server refused the login: {0}")]
    Authentication(String),
    /// The database does not exist.
    #[error("{0}")]
    NoSuchDatabase(String),
    /// The migration lock was not obtained within its budget.
    #[error(
        "another migration holds the lock; gave up after {:.1} s (raise --lock-wait, or wait for it to finish)",
        .0.as_secs_f64()
    )]
    LockBusy(Duration),
    /// A statement gave up waiting for a table lock (`lock_timeout`): worth retrying.
    #[error("gave up waiting for a table lock: {0}")]
    LockTimeout(String),
    /// A statement failed.
    #[error("{message}{}", sqlstate(.code))]
    Statement {
        /// The SQLSTATE code, if the server sent one.
        code: Option<String>,
        /// The server's message, with its detail and hint.
        message: String,
    },
    /// The connection was lost or another I/O failure happened (a file, a child process); the
    /// message says which.
    #[error("{0}")]
    Io(String),
    /// The database or driver cannot do this.
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// ` (SQLSTATE 42P01)` after a statement's message, when the server sent a code.
fn sqlstate(code: &Option<String>) -> String {
    code.as_ref()
        .map_or_else(String::new, |code| format!(" (SQLSTATE {code})"))
}

impl DriverError {
    /// Whether the same work may succeed if tried again shortly.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DriverError::LockTimeout(_))
    }
}

/// A statement failed while executing a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    /// Which statement of the list failed, from 0 (`None`: beginning or committing the transaction).
    pub statement: Option<usize>,
    /// Why.
    pub error: DriverError,
}

/// The SQL of the tool's own state (version and history tables), which needs no connection:
/// `generate-sql` writes it for a database it cannot reach.
pub trait StateSql {
    /// The dialect to render for.
    fn dialect(&self) -> Dialect;
    /// Statements that create the tool's tables where missing (idempotent).
    fn bootstrap_statements(&self) -> Vec<String>;
    /// Statements that move `alembic_version` from `before` to `after` (an `UPDATE` when one
    /// revision replaces another, as Alembic writes it; else deletes and inserts). Plain SQL that
    /// every dialect accepts, so drivers rarely need their own.
    fn version_statements(&self, before: &Heads, after: &Heads) -> Vec<String> {
        use crate::render::quote_literal;
        let removed: Vec<&String> = before.difference(after).collect();
        let added: Vec<&String> = after.difference(before).collect();
        if let ([old], [new]) = (removed.as_slice(), added.as_slice()) {
            return vec![format!(
                "UPDATE alembic_version SET version_num = {} WHERE version_num = {}",
                quote_literal(new),
                quote_literal(old)
            )];
        }
        let deletes = removed.iter().map(|old| {
            format!(
                "DELETE FROM alembic_version WHERE version_num = {}",
                quote_literal(old)
            )
        });
        let inserts = added.iter().map(|new| {
            format!(
                "INSERT INTO alembic_version (version_num) VALUES ({})",
                quote_literal(new)
            )
        });
        deletes.chain(inserts).collect()
    }
    /// The statement that records `entry` in the history table.
    fn history_statement(&self, entry: &HistoryEntry) -> String;
}

/// One database session as the engine sees it. Every method is one short contract.
pub trait Driver {
    /// The SQL of the tool's state for this database.
    fn state_sql(&self) -> &dyn StateSql;
    /// The server's product and version, e.g. `PostgreSQL 15.19`.
    fn server_version(&mut self) -> Result<String, DriverError>;
    /// Tries once, without waiting, to take the migration lock (held until `unlock` or
    /// disconnect): `false` when another migrator holds it. The engine owns the waiting.
    fn try_lock(&mut self) -> Result<bool, DriverError>;
    /// Releases the migration lock if held; harmless otherwise.
    fn unlock(&mut self) -> Result<(), DriverError>;
    /// Which of the tool's own tables exist.
    fn state_tables(&mut self) -> Result<StateTables, DriverError>;
    /// The revisions recorded in `alembic_version` (empty when the table is missing).
    fn read_heads(&mut self) -> Result<Heads, DriverError>;
    /// The history table, oldest first (empty when it is missing).
    fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DriverError>;
    /// Runs the statements in one transaction: all of them, or none.
    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), ExecError>;
    /// Runs each statement on its own, outside any transaction block.
    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError>;
    /// Reads the live schema (the tool's own tables left out) into the model.
    fn introspect(&mut self) -> Result<Schema, DriverError>;
    /// The schema `expected` becomes once the database has created and read it back (its
    /// spelling of expressions, defaults and types), changing nothing: what `introspect` of a
    /// database holding exactly `expected` returns.
    fn canonicalize(&mut self, expected: &Schema) -> Result<Schema, DriverError>;
    /// The phased half of the driver, for a database whose revisions the engine runs in
    /// phases (see [`crate::phase`]); `None` (the default): every revision runs whole.
    fn phased(&mut self) -> Option<&mut dyn PhasedDriver> {
        None
    }
}

/// One row of the progress table: how far a phase of a revision that is not atomic got (see
/// [`crate::phase`]). Rows exist only while such a revision is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseProgress {
    /// The op's position in the revision's op list.
    pub op: usize,
    /// The phase's position in the op's phase list.
    pub phase: usize,
    /// Whether the phase is complete.
    pub done: bool,
    /// For a batched phase: the key of the last row of the last committed batch, as text.
    pub last_key: Option<String>,
    /// For a batched phase: rows updated so far.
    pub rows_done: i64,
}

/// What one committed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The key of the last row it took, as text; `None` when no row was left.
    pub last_key: Option<String>,
    /// How many rows it updated.
    pub rows: i64,
}

/// The SQL of the progress table, for drivers of databases that run revisions in phases.
pub trait ProgressSql {
    /// Creates the progress table where missing (idempotent).
    fn progress_bootstrap(&self) -> String;
    /// Records (inserts or replaces) one phase's progress for `revision` going `direction`.
    fn progress_statement(
        &self,
        revision: &str,
        direction: Direction,
        progress: &PhaseProgress,
    ) -> String;
    /// Removes every progress row of `revision` going `direction` (run with its bookkeeping).
    fn progress_clear(&self, revision: &str, direction: Direction) -> String;
}

/// What a database that runs revisions in phases (PostgreSQL) offers beyond [`Driver`]:
/// reading progress and running one batch of a batched update in a transaction of its own.
pub trait PhasedDriver {
    /// The progress table's SQL.
    fn progress_sql(&self) -> &'static dyn ProgressSql;
    /// The progress rows of `revision` going `direction` (empty when the table is missing).
    fn read_progress(
        &mut self,
        revision: &str,
        direction: Direction,
    ) -> Result<Vec<PhaseProgress>, DriverError>;
    /// Runs one batch in a transaction of its own, bounded by `time_limit`: `batch` binds `$1`
    /// (the last key done, as text, or NULL) and `$2` (the most rows to take) and returns the
    /// last key it took and how many rows; `record(outcome)` is SQL run in the same
    /// transaction, so that progress is committed exactly with the batch's rows.
    fn execute_batch(
        &mut self,
        batch: &str,
        after: Option<&str>,
        limit: i64,
        time_limit: Duration,
        record: &dyn Fn(&BatchOutcome) -> String,
    ) -> Result<BatchOutcome, ExecError>;
    /// The planner's estimate of a table's rows (`pg_class.reltuples`), for progress; `None`
    /// when unknown.
    fn estimate_rows(&mut self, table: &str) -> Result<Option<i64>, DriverError>;
}

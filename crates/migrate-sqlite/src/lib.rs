//! The SQLite driver: one connection to a database file (or to memory), the migration lock, the
//! tool's state tables, statement execution, introspection, and online backup and restore.
//!
//! It runs on rusqlite with its bundled SQLite, so every machine runs the same SQLite version
//! and the renderer's assumptions about it (3.35 or later) always hold.
//!
//! # Sessions
//!
//! Every connection runs in WAL mode (readers never block the migrator, nor the migrator them),
//! with a busy timeout (a statement that finds the database locked by another writer waits that
//! long, then fails as [`DriverError::LockTimeout`], which the engine retries), and with foreign
//! keys enforced unless [`SqliteOptions::foreign_keys`] says otherwise.
//!
//! # One migrator at a time
//!
//! SQLite has no advisory locks. [`Driver::try_lock`] tries an exclusive OS file lock
//! (`flock` on Unix) on `<database>.migrate-lock`, beside the database file (symbolic links
//! resolved, so two spellings of one path share a lock); the engine polls it within its budget
//! (`migrate_core::wait`). The lock
//! belongs to the open file, so it is released by `unlock`, by dropping the driver, and by the
//! kernel when the process dies: a crashed migrator never leaves it held. The lock file is left
//! in place: removing it would let a late-comer lock a new file while another still holds the old
//! one. Each revision's transaction is also `BEGIN IMMEDIATE`, which takes SQLite's write lock
//! at once, so the application's writers wait (within their busy timeout) rather than interleave.
//! An in-memory database is private to its connection, so locking it always succeeds.
//!
//! # Transactions and foreign keys
//!
//! A table rebuild drops the old table, which with foreign keys enforced would delete or null
//! the rows of the tables that reference it, and `PRAGMA foreign_keys` cannot change inside a
//! transaction. So [`Driver::execute_in_transaction`] turns foreign keys off before `BEGIN
//! IMMEDIATE`, runs the statements, and before COMMIT runs the foreign-key check (these framing
//! statements are SQLite's `migrate_core::render::transaction_framing`, which a dry run prints
//! too): if any
//! row of the database then breaks a foreign key the transaction is rolled back, so nothing is
//! committed that breaks one. Foreign keys are turned back on (as configured) on every path out.
//! One consequence: ON DELETE actions do not fire inside a migration, so a data migration that
//! deletes referenced rows and counts on a cascade fails the check loudly instead of cascading.
//! A database that already breaks a foreign key before the migration cannot be migrated until
//! those rows are fixed; the error lists them.
//!
//! # State tables
//!
//! The same `alembic_version` table as PostgreSQL and Alembic on SQLite, and the same history
//! columns in SQLite types ([`SqliteStateSql`]). Times are ISO-8601 UTC text with milliseconds.
//! The history row is one INSERT whose text is known in advance (so a dry run prints exactly
//! what runs); its start time is the transaction's, which SQLite does not keep, so the driver
//! writes it at `BEGIN` into a temporary view of the connection that the INSERT reads through
//! `sqlite_temp_master` (see [`SqliteStateSql::history_statement`]).
//!
//! # Introspection
//!
//! See [`introspect`] for how the renderer's conventions are read back, and [`backup`] for
//! backup and restore.

pub mod backup;
pub mod introspect;
pub mod url;

pub use backup::TableStats;
pub use url::{parse_url, SqliteTarget};

use migrate_core::driver::{
    Driver, DriverError, ExecError, HistoryEntry, HistoryRecord, Outcome, StateSql, StateTables,
};
use migrate_core::render::{quote_literal, transaction_framing, FOREIGN_KEY_CHECK};
use migrate_core::{Dialect, Direction, Heads, Schema};
use rusqlite::{Connection, OpenFlags};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version table, named and shaped exactly as Alembic keeps it, so its databases are adopted.
pub const VERSION_TABLE: &str = "alembic_version";
/// The append-only history table.
pub const HISTORY_TABLE: &str = "identity_migrate_history";
/// Appended to the database file's path to name the migration lock file.
pub const LOCK_SUFFIX: &str = ".migrate-lock";

/// The connection's temporary view holding its current transaction's start time.
const CLOCK_VIEW: &str = "identity_migrate_clock";

/// SQLite's current time as the history table keeps it: ISO 8601, UTC, milliseconds, 24 bytes.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// How a connection is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a statement waits for another connection's write lock before failing (retried
    /// by the engine within its budget).
    pub busy_timeout: Duration,
    /// Whether foreign keys are enforced outside migrations (inside them they are checked once,
    /// before COMMIT; see the crate's documentation).
    pub foreign_keys: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            foreign_keys: true,
        }
    }
}

/// The SQL of the tool's state tables on SQLite; needs no connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteStateSql;

/// A connection to one SQLite database.
pub struct SqliteDriver {
    conn: Connection,
    target: SqliteTarget,
    options: SqliteOptions,
    /// The lock file, while the migration lock is held (`None` for memory: see `locked`).
    lock_file: Option<File>,
    /// Whether the migration lock is held.
    locked: bool,
}

impl SqliteDriver {
    /// Opens the database (creating the file when missing) and sets the session up.
    pub fn connect(target: &SqliteTarget, options: SqliteOptions) -> Result<Self, DriverError> {
        let conn = match target {
            SqliteTarget::Memory => Connection::open_in_memory().map_err(classify)?,
            SqliteTarget::File(path) => open_file(path)?,
        };
        // Canonical once the file exists: the lock file sits beside the real database even when
        // it is reached through a symbolic link or another relative spelling.
        let target = match target {
            SqliteTarget::File(path) => {
                SqliteTarget::File(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
            }
            SqliteTarget::Memory => SqliteTarget::Memory,
        };
        conn.busy_timeout(options.busy_timeout).map_err(classify)?;
        // The first read proves that the file is a database (SQLite opens lazily).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| match classify(e) {
                DriverError::Unreachable(m) => DriverError::Unreachable(format!("{}: {m}", target)),
                other => other,
            })?;
        if matches!(target, SqliteTarget::File(_)) && !mode.eq_ignore_ascii_case("wal") {
            log::warn!("{target}: journal mode stays {mode}, WAL could not be set");
        }
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = {}",
            on_off(options.foreign_keys)
        ))
        .map_err(classify)?;
        Ok(SqliteDriver {
            conn,
            target,
            options,
            lock_file: None,
            locked: false,
        })
    }

    /// Opens the database for reading: a file that does not exist yet reads as the empty
    /// database it would start as (an in-memory one) and is not created, so that `status` and
    /// the other reading commands work before the first `migrate`.
    pub fn connect_or_empty(
        target: &SqliteTarget,
        options: SqliteOptions,
    ) -> Result<Self, DriverError> {
        match target {
            SqliteTarget::File(path) if !path.exists() => {
                log::debug!(
                    "{target} does not exist yet: shown as an empty database (`identity-migrate migrate` creates it)"
                );
                Self::connect(&SqliteTarget::Memory, options)
            }
            _ => Self::connect(target, options),
        }
    }

    /// The connection, for tools around the engine (backup, tests).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The database this driver is connected to (a file's path canonical).
    pub fn target(&self) -> &SqliteTarget {
        &self.target
    }

    /// The options the session was set up with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// The lock file's path: `<database>.migrate-lock` (none for an in-memory database).
    pub fn lock_path(&self) -> Option<PathBuf> {
        self.target.path().map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(LOCK_SUFFIX);
            PathBuf::from(name)
        })
    }

    /// Whether the migration lock is held by this driver.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// What is wrong with the database file, for `verify`: each line `PRAGMA quick_check`
    /// reports, and the rows breaking a foreign key. Empty when the database is sound.
    pub fn integrity_problems(&self) -> Result<Vec<String>, DriverError> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check").map_err(classify)?;
        let mut problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(classify)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?
            .into_iter()
            .filter(|line| line != "ok")
            .collect();
        if let Some(broken) = self.violations(FOREIGN_KEY_CHECK)? {
            problems.push(format!("foreign keys broken: {broken}"));
        }
        Ok(problems)
    }

    /// Restores the configured foreign-key enforcement (outside any transaction).
    fn restore_foreign_keys(&self) {
        if let Err(e) = self.conn.execute_batch(&format!(
            "PRAGMA foreign_keys = {}",
            on_off(self.options.foreign_keys)
        )) {
            log::warn!("could not restore PRAGMA foreign_keys: {e}");
        }
    }

    /// Starts a write transaction and notes its start time for the history row.
    fn begin(&self) -> Result<(), DriverError> {
        self.conn
            .execute_batch(transaction_framing(Dialect::Sqlite).begin)
            .map_err(classify)?;
        let clock = (|| {
            let now: String = self
                .conn
                .query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
            self.conn.execute_batch(&format!(
                "DROP VIEW IF EXISTS temp.{CLOCK_VIEW}; CREATE TEMP VIEW {CLOCK_VIEW} AS SELECT {}",
                quote_literal(&now)
            ))
        })();
        if let Err(e) = clock {
            self.rollback();
            return Err(classify(e));
        }
        Ok(())
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                log::warn!("ROLLBACK failed: {e}");
            }
        }
    }

    /// The rows that `listing` (a query of the foreign-key check's columns: table, rowid,
    /// referenced table) returns, described (at most a few), or `None`.
    fn violations(&self, listing: &str) -> Result<Option<String>, DriverError> {
        let mut stmt = self.conn.prepare(listing).map_err(classify)?;
        let rows: Vec<(String, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(classify)?
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let shown: Vec<String> = rows
            .iter()
            .take(5)
            .map(|(table, rowid, parent)| match rowid {
                Some(id) => format!("{table} rowid {id} -> {parent}"),
                None => format!("{table} -> {parent}"),
            })
            .collect();
        let more = if rows.len() > shown.len() {
            format!(", and {} more", rows.len() - shown.len())
        } else {
            String::new()
        };
        Ok(Some(format!(
            "{} row(s) reference a missing row ({}{more})",
            rows.len(),
            shown.join(", ")
        )))
    }

    fn table_exists(&self, name: &str) -> Result<bool, DriverError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(classify)
    }
}

impl Drop for SqliteDriver {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first says so explicitly.
        let _ = self.unlock();
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

/// Opens a database file read-write, creating it when missing. Not as a URI: a file name is a
/// file name, even one starting with `file:`.
fn open_file(path: &Path) -> Result<Connection, DriverError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(DriverError::Unreachable(format!(
                "cannot open the SQLite database {}: directory {} does not exist (create it first)",
                path.display(),
                dir.display()
            )));
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| {
        DriverError::Unreachable(format!(
            "cannot open the SQLite database {}: {}",
            path.display(),
            message_of(&e)
        ))
    })
}

/// The error's own message, without rusqlite's wrapping.
fn message_of(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(message)) => {
            if message.is_empty() {
                err.to_string()
            } else {
                message.clone()
            }
        }
        rusqlite::Error::SqliteFailure(err, None) => err.to_string(),
        other => other.to_string(),
    }
}

/// Classifies a rusqlite error for the engine's policy.
pub(crate) fn classify(e: rusqlite::Error) -> DriverError {
    use rusqlite::ErrorCode;
    let message = message_of(&e);
    match &e {
        rusqlite::Error::SqliteFailure(err, _) => match err.code {
            // Another connection holds the write lock beyond the busy timeout: worth retrying.
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                DriverError::LockTimeout(message)
            }
            ErrorCode::NotADatabase => {
                DriverError::Unreachable(format!("the file is not a SQLite database ({message})"))
            }
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                DriverError::Unreachable(message)
            }
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NoLargeFileSupport => DriverError::Io(message),
            _ => DriverError::Statement {
                code: None,
                message,
            },
        },
        _ => DriverError::Statement {
            code: None,
            message,
        },
    }
}

/// The history row's start time: the transaction's, written by the driver at `BEGIN` into a
/// temporary view (`CREATE VIEW identity_migrate_clock AS SELECT '<time>'`), read here from the
/// view's own SQL text in `sqlite_temp_master`. Reading the catalog rather than the view keeps
/// the statement valid in any session: where no driver wrote the view (a reviewed script run
/// with the `sqlite3` shell) it finds no row and falls back to the current time.
const STARTED_AT: &str = "COALESCE((SELECT substr(sql, instr(sql, '''') + 1, 24) FROM sqlite_temp_master WHERE type = 'view' AND name = 'identity_migrate_clock'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

impl StateSql for SqliteStateSql {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn bootstrap_statements(&self) -> Vec<String> {
        // The id is an alias of the rowid: rows are never deleted, so ids only grow, without
        // AUTOINCREMENT's extra sqlite_sequence table. SQLite has no database users: db_user
        // stays empty.
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\n    version_num VARCHAR(32) NOT NULL,\n    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n    id INTEGER PRIMARY KEY,\n    revision VARCHAR(32) NOT NULL,\n    direction VARCHAR(4) NOT NULL CHECK (direction IN ('up', 'down')),\n    checksum VARCHAR(64) NOT NULL,\n    outcome VARCHAR(8) NOT NULL CHECK (outcome IN ('applied', 'failed', 'accepted')),\n    error TEXT,\n    started_at TEXT NOT NULL,\n    finished_at TEXT NOT NULL,\n    db_user TEXT NOT NULL DEFAULT '',\n    os_user TEXT NOT NULL,\n    host TEXT NOT NULL,\n    tool_version TEXT NOT NULL\n)"
            ),
        ]
    }

    /// A successful (or accepted) step started when its transaction began (written by the driver at `BEGIN`: see the crate's documentation);
    /// a failed one `after` before this row, which its own transaction writes.
    fn history_statement(&self, entry: &HistoryEntry) -> String {
        let (error, started_at) = match &entry.outcome {
            Outcome::Applied | Outcome::Accepted => ("NULL".to_owned(), STARTED_AT.to_owned()),
            Outcome::Failed { error, after } => (
                quote_literal(error),
                format!(
                    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{}.{:03} seconds')",
                    after.as_secs(),
                    after.subsec_millis()
                ),
            ),
        };
        migrate_core::driver::history_insert(entry, &error, &started_at, NOW)
    }
}

impl Driver for SqliteDriver {
    fn state_sql(&self) -> &dyn StateSql {
        &SqliteStateSql
    }

    fn server_version(&mut self) -> Result<String, DriverError> {
        let version: String = self
            .conn
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .map_err(classify)?;
        Ok(format!("SQLite {version}"))
    }

    fn try_lock(&mut self) -> Result<bool, DriverError> {
        if self.locked {
            return Ok(true);
        }
        let Some(path) = self.lock_path() else {
            // An in-memory database is private to this connection: nobody else can migrate it.
            self.locked = true;
            return Ok(true);
        };
        let file = match self.lock_file.take() {
            Some(file) => file,
            None => open_lock_file(&path)?,
        };
        match file.try_lock() {
            Ok(()) => {
                self.lock_file = Some(file);
                self.locked = true;
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => {
                // Kept open for the next poll.
                self.lock_file = Some(file);
                Ok(false)
            }
            Err(TryLockError::Error(e)) => Err(DriverError::Io(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    fn unlock(&mut self) -> Result<(), DriverError> {
        self.locked = false;
        if let Some(file) = self.lock_file.take() {
            file.unlock()
                .map_err(|e| DriverError::Io(format!("cannot release the migration lock: {e}")))?;
        }
        Ok(())
    }

    fn state_tables(&mut self) -> Result<StateTables, DriverError> {
        Ok(StateTables {
            version: self.table_exists(VERSION_TABLE)?,
            history: self.table_exists(HISTORY_TABLE)?,
        })
    }

    fn read_heads(&mut self) -> Result<Heads, DriverError> {
        if !self.table_exists(VERSION_TABLE)? {
            return Ok(Heads::new());
        }
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT version_num FROM {VERSION_TABLE}"))
            .map_err(classify)?;
        let heads = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(classify)?
            .collect::<Result<Heads, _>>()
            .map_err(classify)?;
        Ok(heads)
    }

    fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DriverError> {
        if !self.table_exists(HISTORY_TABLE)? {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT revision, direction, checksum, outcome, error, \
             strftime('%Y-%m-%dT%H:%M:%SZ', finished_at), \
             round((julianday(finished_at) - julianday(started_at)) * 86400000.0, 3), \
             db_user, os_user || '@' || host, tool_version \
             FROM {HISTORY_TABLE} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(classify)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(HistoryRecord {
                    revision: r.get(0)?,
                    direction: if r.get::<_, String>(1)? == "down" {
                        Direction::Down
                    } else {
                        Direction::Up
                    },
                    checksum: r.get(2)?,
                    outcome: r.get(3)?,
                    error: r.get(4)?,
                    finished_at: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    duration_ms: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                    db_user: r.get(7)?,
                    ran_by: r.get(8)?,
                    tool_version: r.get(9)?,
                })
            })
            .map_err(classify)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        Ok(rows)
    }

    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), ExecError> {
        if statements.is_empty() {
            return Ok(());
        }
        let at_begin = |error| ExecError {
            statement: None,
            error,
        };
        // The dialect's framing, which a dry run prints: foreign keys off outside any
        // transaction, the only place where the pragma takes effect (see the crate's
        // documentation), restored on every path out; the checks before COMMIT.
        let framing = transaction_framing(Dialect::Sqlite);
        for sql in framing.before {
            self.conn
                .execute_batch(sql)
                .map_err(|e| at_begin(classify(e)))?;
        }
        let result = (|| {
            self.begin().map_err(at_begin)?;
            for (i, sql) in statements.iter().enumerate() {
                if let Err(e) = self.conn.execute_batch(sql) {
                    self.rollback();
                    return Err(ExecError {
                        statement: Some(i),
                        error: classify(e),
                    });
                }
            }
            for check in framing.checks {
                if let Err(e) = self.conn.execute_batch(check) {
                    // The check failed: say which rows broke a foreign key, as the listing
                    // query finds them.
                    let error = match self.violations(FOREIGN_KEY_CHECK) {
                        Ok(Some(broken)) => DriverError::Statement {
                            code: None,
                            message: format!(
                                "FOREIGN KEY constraint failed: {broken}; nothing was committed \
                                 (PRAGMA foreign_key_check lists them)"
                            ),
                        },
                        Ok(None) => classify(e),
                        Err(listing) => listing,
                    };
                    self.rollback();
                    return Err(at_begin(error));
                }
            }
            if let Err(e) = self.conn.execute_batch(framing.commit) {
                self.rollback();
                return Err(at_begin(classify(e)));
            }
            Ok(())
        })();
        self.restore_foreign_keys();
        result
    }

    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError> {
        for (i, sql) in statements.iter().enumerate() {
            self.conn.execute_batch(sql).map_err(|e| ExecError {
                statement: Some(i),
                error: classify(e),
            })?;
        }
        Ok(())
    }

    fn introspect(&mut self) -> Result<Schema, DriverError> {
        introspect::introspect(&mut self.conn)
    }

    fn canonicalize(&mut self, expected: &Schema) -> Result<Schema, DriverError> {
        introspect::canonicalize(expected)
    }
}

/// Opens the lock file, creating it when missing. An operator who may not write in the
/// database's directory can still lock an existing lock file: `flock` needs no write access.
fn open_lock_file(path: &Path) -> Result<File, DriverError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                File::open(path)
            } else {
                Err(e)
            }
        })
        .map_err(|e| {
            DriverError::Io(format!(
                "cannot open the migration lock file {}: {e}",
                path.display()
            ))
        })
}

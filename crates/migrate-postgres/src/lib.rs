//! The PostgreSQL driver: one work session and one lock session, the tool's state tables, and
//! statement execution. It holds SQL and sessions; every decision belongs to the engine.

pub mod backup;
mod introspect;
pub mod phased;
pub mod trace;
pub mod url;

use migrate_core::driver::{
    Driver, DriverError, ExecError, HistoryEntry, HistoryRecord, Outcome, StateSql, StateTables,
};
use migrate_core::render::{quote_ident, quote_literal};
use migrate_core::{Dialect, Direction, Heads};
use postgres::{Client, NoTls};
use std::time::{Duration, Instant};
use url::ConnectionSettings;

/// The version table, named and shaped exactly as Alembic keeps it, so its databases are adopted.
pub const VERSION_TABLE: &str = "alembic_version";
/// The append-only history table.
pub const HISTORY_TABLE: &str = "identity_migrate_history";

/// First key of the advisory lock: the tool's own (the second is derived from the schema).
const LOCK_CLASS: i32 = 0x1d3a_2a17;

/// Per-session settings pinned on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The schema that holds the identity tables and the tool's own (pinned as `search_path`).
    pub schema: String,
    /// How long one statement may wait for a table lock before giving up (and being retried).
    pub lock_timeout: Duration,
    /// How long one statement may run; `None` for no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            schema: "public".to_owned(),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: None,
        }
    }
}

/// The SQL of the tool's state tables on PostgreSQL; needs no connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresStateSql;

/// A connection to one PostgreSQL database.
pub struct PostgresDriver {
    client: Client,
    /// The lock's own connection, so that no transaction or snapshot of the work session is
    /// ever open while it waits (a waiting snapshot deadlocks `CREATE INDEX CONCURRENTLY`).
    lock_client: Option<Client>,
    settings: ConnectionSettings,
    session: SessionSettings,
    /// The work session's backend pid, read on first need (see [`phased`]).
    backend_pid: Option<i32>,
}

impl PostgresDriver {
    /// Connects and pins the session settings.
    pub fn connect(
        settings: &ConnectionSettings,
        session: SessionSettings,
    ) -> Result<Self, DriverError> {
        let client = open(settings, &session)?;
        Ok(PostgresDriver {
            client,
            lock_client: None,
            settings: settings.clone(),
            session,
            backend_pid: None,
        })
    }

    /// Creates the database the settings name, connecting to the `postgres` maintenance database.
    pub fn create_database(settings: &ConnectionSettings) -> Result<(), DriverError> {
        let mut maintenance = settings.clone();
        maintenance.dbname = "postgres".to_owned();
        let mut client = maintenance
            .to_postgres_config()
            .connect(NoTls)
            .map_err(|e| classify_connect(e, &maintenance))?;
        client
            .batch_execute(&format!(
                "CREATE DATABASE {}",
                quote_ident(settings.database())
            ))
            .map_err(classify)
    }

    /// The work session, for tools around the engine (backup, introspection, tests).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The connection settings this driver was opened with.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Every index left INVALID (by a failed or interrupted `CREATE INDEX CONCURRENTLY`) in a
    /// non-system schema, as `schema.index`; indexes still being built are not reported.
    pub fn invalid_indexes(&mut self) -> Result<Vec<String>, DriverError> {
        introspect::invalid_indexes(&mut self.client)
    }

    fn lock_key(&self) -> i32 {
        // FNV-1a: stable across Rust releases, unlike std's hashers. Advisory locks are already
        // scoped to the current database, so the schema is all that needs to go into the key.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.session.schema.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        i32::from_ne_bytes(h.to_ne_bytes())
    }

    fn qualified(&self, table: &str) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.session.schema),
            quote_ident(table)
        )
    }
}

impl Drop for PostgresDriver {
    fn drop(&mut self) {
        // Closing the lock session releases the lock on the server anyway; unlocking first
        // makes it immediate even if the socket close is delayed.
        let _ = self.unlock();
    }
}

fn open(settings: &ConnectionSettings, session: &SessionSettings) -> Result<Client, DriverError> {
    let mut config = settings.to_postgres_config();
    if config.get_application_name().is_none() {
        config.application_name("identity-migrate");
    }
    let mut client = config
        .connect(NoTls)
        .map_err(|e| classify_connect(e, settings))?;
    let statement_timeout = session.statement_timeout.map_or(0, |d| d.as_millis());
    // Server-side keepalives: if this host dies, the server notices within about a minute and
    // frees the migration lock, instead of after the kernel's two-hour default.
    client
        .batch_execute(&format!(
            "SET search_path = {}; SET lock_timeout = {}; SET statement_timeout = {}; SET client_min_messages = warning; \
             SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3",
            quote_ident(&session.schema),
            session.lock_timeout.as_millis(),
            statement_timeout
        ))
        .map_err(classify)?;
    Ok(client)
}

fn classify_connect(e: postgres::Error, settings: &ConnectionSettings) -> DriverError {
    if e.as_db_error().is_some() {
        return match classify(e) {
            DriverError::NoSuchDatabase(_) => DriverError::NoSuchDatabase(format!(
                "database \"{db}\" does not exist on {url}: create it (createdb {db}) or fix the URL",
                db = settings.database(),
                url = settings.redacted()
            )),
            other => other,
        };
    }
    let text = error_chain(&e);
    if text.contains("password missing") {
        return DriverError::Authentication(format!(
            "{} asks for a password and none was given: put it in DATABASE_URL, PGPASSWORD or ~/.pgpass",
            settings.redacted()
        ));
    }
    DriverError::Unreachable(format!("{}: {text}", settings.redacted()))
}

/// Classifies an error of an established session.
fn classify(e: postgres::Error) -> DriverError {
    if let Some(db) = e.as_db_error() {
        let mut message = db.message().to_owned();
        if let Some(detail) = db.detail() {
            message.push_str(" (");
            message.push_str(detail);
            message.push(')');
        }
        if let Some(hint) = db.hint() {
            message.push_str("; hint: ");
            message.push_str(hint);
        }
        return match db.code().code() {
            "28P01" | "28000" => DriverError::Authentication(message),
            "3D000" => DriverError::NoSuchDatabase(message),
            "55P03" => DriverError::LockTimeout(message),
            code => DriverError::Statement {
                code: Some(code.to_owned()),
                message,
            },
        };
    }
    if e.is_closed() {
        return DriverError::Io("connection failed: the server closed the connection".to_owned());
    }
    DriverError::Io(format!("connection failed: {}", error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn is_undefined_table(e: &postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == "42P01")
}

impl StateSql for PostgresStateSql {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn bootstrap_statements(&self) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\n    version_num varchar(32) NOT NULL,\n    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    revision varchar(32) NOT NULL,\n    direction varchar(4) NOT NULL CHECK (direction IN ('up', 'down')),\n    checksum varchar(64) NOT NULL,\n    outcome varchar(8) NOT NULL CHECK (outcome IN ('applied', 'failed', 'accepted')),\n    error text,\n    started_at timestamptz NOT NULL,\n    finished_at timestamptz NOT NULL,\n    db_user text NOT NULL DEFAULT current_user,\n    os_user text NOT NULL,\n    host text NOT NULL,\n    tool_version text NOT NULL\n)"
            ),
            // The progress of revisions run in phases (see `phased`): created with the others,
            // so that a script from `generate-sql` leaves the same tables as `migrate`.
            migrate_core::driver::ProgressSql::progress_bootstrap(&PostgresStateSql),
        ]
    }

    fn history_statement(&self, entry: &HistoryEntry) -> String {
        // A successful step is timed by the database itself: its transaction began right before
        // the revision's first statement, and this row is its last statement.
        let (error, started_at) = match &entry.outcome {
            Outcome::Applied | Outcome::Accepted => {
                ("NULL".to_owned(), "transaction_timestamp()".to_owned())
            }
            Outcome::Failed { error, after } => (
                quote_literal(error),
                format!(
                    "clock_timestamp() - interval '{} milliseconds'",
                    after.as_millis()
                ),
            ),
        };
        migrate_core::driver::history_insert(entry, &error, &started_at, "clock_timestamp()")
    }
}

impl Driver for PostgresDriver {
    fn state_sql(&self) -> &dyn StateSql {
        &PostgresStateSql
    }

    fn server_version(&mut self) -> Result<String, DriverError> {
        let row = self
            .client
            .query_one("SELECT current_setting('server_version')", &[])
            .map_err(classify)?;
        Ok(format!("PostgreSQL {}", row.get::<_, String>(0)))
    }

    fn lock(&mut self, budget: Duration) -> Result<(), DriverError> {
        if self.lock_client.is_some() {
            return Ok(());
        }
        let mut lock_client = open(&self.settings, &self.session)?;
        let key = self.lock_key();
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            let got: bool = lock_client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &key])
                .map_err(classify)?
                .get(0);
            if got {
                self.lock_client = Some(lock_client);
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= budget {
                return Err(DriverError::LockBusy(waited));
            }
            log::debug!("migration lock busy; polling again in {pause:?}");
            std::thread::sleep(jitter(pause).min(budget.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    fn unlock(&mut self) -> Result<(), DriverError> {
        if let Some(mut lock_client) = self.lock_client.take() {
            lock_client
                .query_one(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&LOCK_CLASS, &self.lock_key()],
                )
                .map_err(classify)?;
        }
        Ok(())
    }

    fn state_tables(&mut self) -> Result<StateTables, DriverError> {
        let row = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
                &[
                    &self.qualified(VERSION_TABLE),
                    &self.qualified(HISTORY_TABLE),
                ],
            )
            .map_err(classify)?;
        Ok(StateTables {
            version: row.get(0),
            history: row.get(1),
        })
    }

    fn read_heads(&mut self) -> Result<Heads, DriverError> {
        match self
            .client
            .query(&format!("SELECT version_num FROM {VERSION_TABLE}"), &[])
        {
            Ok(rows) => Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect()),
            Err(e) if is_undefined_table(&e) => Ok(Heads::new()),
            Err(e) => Err(classify(e)),
        }
    }

    fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DriverError> {
        let sql = format!(
            "SELECT revision, direction, checksum, outcome, error, \
             to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             (extract(epoch FROM finished_at - started_at) * 1000)::float8, \
             db_user, os_user || '@' || host, tool_version \
             FROM {HISTORY_TABLE} ORDER BY id"
        );
        let rows = match self.client.query(&sql, &[]) {
            Ok(rows) => rows,
            Err(e) if is_undefined_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(classify(e)),
        };
        Ok(rows
            .iter()
            .map(|r| HistoryRecord {
                revision: r.get(0),
                direction: if r.get::<_, String>(1) == "down" {
                    Direction::Down
                } else {
                    Direction::Up
                },
                checksum: r.get(2),
                outcome: r.get(3),
                error: r.get(4),
                finished_at: r.get(5),
                duration_ms: r.get(6),
                db_user: r.get(7),
                ran_by: r.get(8),
                tool_version: r.get(9),
            })
            .collect())
    }

    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.watched(|client| transaction(client, statements))
    }

    fn introspect(&mut self) -> Result<migrate_core::Schema, DriverError> {
        introspect::introspect(&mut self.client, &self.session.schema)
    }

    fn canonicalize(
        &mut self,
        expected: &migrate_core::Schema,
    ) -> Result<migrate_core::Schema, DriverError> {
        introspect::canonicalize(&mut self.client, &self.session.schema, expected)
    }

    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.watched(|client| {
            for (i, sql) in statements.iter().enumerate() {
                client.batch_execute(sql).map_err(|e| ExecError {
                    statement: Some(i),
                    error: classify(e),
                })?;
            }
            Ok(())
        })
    }

    fn phased(&mut self) -> Option<&mut dyn migrate_core::driver::PhasedDriver> {
        Some(self)
    }
}

/// Runs `statements` in one transaction on `client`: all of them, or none.
fn transaction(client: &mut Client, statements: &[String]) -> Result<(), ExecError> {
    // BEGIN travels with the first statement and COMMIT with the last: three round trips
    // for a typical revision instead of five, and a failure still names its statement.
    let last = statements.len().saturating_sub(1);
    for (i, sql) in statements.iter().enumerate() {
        let mut message = String::with_capacity(sql.len() + 16);
        if i == 0 {
            message.push_str("BEGIN;\n");
        }
        message.push_str(sql);
        if i == last {
            message.push_str(";\nCOMMIT");
        }
        if let Err(e) = client.batch_execute(&message) {
            // The transaction is aborted (or, if COMMIT itself failed, already over);
            // either way nothing of it stays. ROLLBACK ends the aborted block.
            let _ = client.batch_execute("ROLLBACK");
            return Err(ExecError {
                statement: Some(i),
                error: classify(e),
            });
        }
    }
    Ok(())
}

/// Spreads pollers apart so that a crowd of waiting migrators does not poll in lockstep.
fn jitter(pause: Duration) -> Duration {
    let seed = std::process::id() ^ Instant::now().elapsed().subsec_nanos();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = (seed ^ nanos) % 1000;
    pause + pause * spread / 1000
}

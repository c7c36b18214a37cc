//! The PostgreSQL driver: one work session and one lock session, the tool's state tables, and
//! statement execution. It holds SQL and sessions; every decision belongs to the engine.

pub mod backup;
pub mod backup_session;
pub mod interrupt;
mod introspect;
pub mod phased;
pub mod scratch;
pub mod sizes;
pub mod tls;
pub mod trace;
pub mod url;

use migrate_core::driver::{
    Driver, DriverError, ExecError, HistoryEntry, HistoryRecord, Outcome, StateSql, StateTables,
};
use migrate_core::render::{quote_ident, quote_literal, transaction_framing};
use migrate_core::{Dialect, Direction, Heads};
use postgres::{Client, NoTls};
use std::time::Duration;
use tls::SslMode;
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

/// What protects a session: see [`PostgresDriver::security`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// The `sslmode` in force (`disable` over a Unix socket, as in libpq).
    pub mode: SslMode,
    /// Whether the session runs over a Unix socket.
    pub socket: bool,
    /// The TLS protocol, such as `TLSv1.3`; `None` when the session is not encrypted.
    pub protocol: Option<String>,
    /// The TLS cipher suite.
    pub cipher: Option<String>,
    /// What was checked of the server certificate.
    pub verification: tls::Verification,
    /// Whether the host is this machine.
    pub loopback: bool,
}

impl Security {
    /// Whether the session is encrypted.
    pub fn encrypted(&self) -> bool {
        self.protocol.is_some()
    }

    /// The operator should hear that a remote host is trusted without its name being checked.
    pub fn weak_for_remote(&self) -> bool {
        !self.loopback && self.verification != tls::Verification::ChainAndHost
    }
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.protocol, self.socket) {
            (Some(protocol), _) => write!(
                f,
                "encrypted, {protocol} {}, {} (sslmode={})",
                self.cipher.as_deref().unwrap_or("?"),
                self.verification,
                self.mode
            ),
            (None, true) => f.write_str("not encrypted: Unix socket (TLS does not apply)"),
            (None, false) => write!(f, "not encrypted (sslmode={})", self.mode),
        }
    }
}

/// The SQL of the tool's state tables on PostgreSQL; needs no connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresStateSql;

/// A connection to one PostgreSQL database.
pub struct PostgresDriver {
    client: Client,
    /// Whether this session holds the migration lock. It is taken on the work session itself,
    /// by polling `pg_try_advisory_lock` outside any transaction: a waiting migrator holds one
    /// connection (N pods need N connections, not 2N) and no snapshot between polls (a snapshot
    /// held while waiting would deadlock `CREATE INDEX CONCURRENTLY`).
    locked: bool,
    /// Whether the server was found fit for the migration lock (a primary, no transaction
    /// pooler): checked on the first poll only.
    lock_checked: bool,
    settings: ConnectionSettings,
    session: SessionSettings,
    /// The work session's backend pid, read on first need (see [`phased`]).
    backend_pid: Option<i32>,
    /// A second session that names the sessions blocking the work one (see [`phased`]). It is
    /// opened only by the lock holder, and only after a statement gave up waiting for a table
    /// lock: a migrator that meets no blocker, or waits for the migration lock, keeps one.
    watcher: Option<Client>,
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
            locked: false,
            lock_checked: false,
            settings: settings.clone(),
            session,
            backend_pid: None,
            watcher: None,
        })
    }

    /// Creates the database the settings name, connecting to the `postgres` maintenance database.
    pub fn create_database(settings: &ConnectionSettings) -> Result<(), DriverError> {
        let mut maintenance = settings.clone();
        maintenance.dbname = "postgres".to_owned();
        let mut client = connect_client(&maintenance, "identity-migrate")?;
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

    /// What protects this session: encryption (from the server's `pg_stat_ssl`) and what was
    /// checked of the server certificate (from the mode this connection was made with).
    pub fn security(&mut self) -> Result<Security, DriverError> {
        let row = self
            .client
            .query_opt(
                "SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                &[],
            )
            .map_err(classify)?;
        let tls = &self.settings.tls;
        Ok(Security {
            mode: self.settings.effective_ssl_mode(),
            socket: matches!(self.settings.host, url::Host::Socket(_)),
            protocol: row.as_ref().map(|r| r.get(0)),
            cipher: row.as_ref().map(|r| r.get(1)),
            verification: tls.verification(),
            loopback: self.settings.is_loopback(),
        })
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
        // Closing the session releases the lock on the server anyway; unlocking first makes it
        // immediate even if the socket close is delayed.
        let _ = self.unlock();
    }
}

/// Opens a plain session with the settings' TLS (libpq's meaning of every `sslmode`), named
/// `application_name` unless the settings name it; errors are one line, without the password.
pub fn connect_client(
    settings: &ConnectionSettings,
    application_name: &str,
) -> Result<Client, DriverError> {
    let mut config = settings.to_postgres_config();
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if settings.read_write_only {
        config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
    }
    let connector = || -> Result<tokio_postgres_rustls::MakeRustlsConnect, DriverError> {
        let tls = settings.tls.client_config().map_err(|e| {
            DriverError::Unreachable(format!("{}: TLS setting {e}", settings.redacted()))
        })?;
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    };
    let result = match settings.effective_ssl_mode() {
        SslMode::Disable => config.connect(NoTls),
        SslMode::Allow => match config.connect(NoTls) {
            // libpq's `allow`: plaintext first, TLS only when the server turns plaintext away.
            Err(e)
                if e.as_db_error()
                    .is_some_and(|db| db.code().code() == "28000") =>
            {
                log::info!(
                    "the server refused an unencrypted session; sslmode=allow retries with TLS"
                );
                config.ssl_mode(postgres::config::SslMode::Require);
                config.connect(connector()?)
            }
            other => other,
        },
        SslMode::Prefer => match config.connect(connector()?) {
            Err(e) if tls::rustls_error(&e).is_some() => {
                // libpq's `prefer` retries without TLS when the handshake fails; never silently.
                log::warn!(
                    "TLS with {} failed ({}); sslmode=prefer falls back to an unencrypted connection as libpq does (set sslmode=require to refuse)",
                    settings.redacted(),
                    error_chain(&e)
                );
                config.ssl_mode(postgres::config::SslMode::Disable);
                config.connect(NoTls)
            }
            other => other,
        },
        _ => config.connect(connector()?),
    };
    result.map_err(|e| classify_connect(e, settings))
}

fn open(settings: &ConnectionSettings, session: &SessionSettings) -> Result<Client, DriverError> {
    let mut client = connect_client(settings, "identity-migrate")?;
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
    abandon_work_of_a_dead_client(&mut client)?;
    Ok(client)
}

/// How often the server checks, while it runs a statement of this session, that the client
/// is still there (PostgreSQL 14+): a killed migrator's `ALTER TABLE` is abandoned within
/// about this long instead of running on and holding its locks against the next run.
const CLIENT_CHECK_INTERVAL_MS: u32 = 1000;

fn abandon_work_of_a_dead_client(client: &mut Client) -> Result<(), DriverError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(classify)?
        .get(0);
    if version >= 140_000 {
        client
            .batch_execute(&format!(
                "SET client_connection_check_interval = {CLIENT_CHECK_INTERVAL_MS}"
            ))
            .map_err(classify)?;
    }
    Ok(())
}

/// The lock is taken only to change the database: a standby would fail at the first write,
/// so it is refused before anything starts.
fn refuse_standby(client: &mut Client, settings: &ConnectionSettings) -> Result<(), DriverError> {
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .map_err(classify)?
        .get(0);
    if in_recovery {
        return Err(DriverError::Statement {
            code: Some("25006".to_owned()),
            message: format!(
                "{} is a read-only standby (in recovery), and migrations write: point the URL at the primary, or list the hosts with target_session_attrs=read-write",
                settings.redacted()
            ),
        });
    }
    Ok(())
}

/// The migration lock and the session's `SET`s live in a server session. Behind a pooler in
/// transaction (or statement) mode, the tool's two sessions are handed the same server
/// connection in turn, so neither would hold: the pooler shows itself by giving both the same
/// backend. Two idle sessions of a pooler get its most recently used connection, so the probe
/// needs no load to see it; a direct or session-pooled connection never shares a backend.
fn refuse_transaction_pooler(
    work: &mut Client,
    lock: &mut Client,
    settings: &ConnectionSettings,
) -> Result<(), DriverError> {
    let pid = |client: &mut Client| -> Result<i32, DriverError> {
        Ok(client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(classify)?
            .get(0))
    };
    let lock_pid = pid(lock)?;
    let work_pid = pid(work)?;
    if lock_pid == work_pid {
        return Err(DriverError::Unsupported(format!(
            "{} is a pooler in transaction mode (two sessions got the same server backend), where the migration lock and session settings cannot hold: connect directly to PostgreSQL, or through a session-pooled port (pool_mode=session)",
            settings.redacted()
        )));
    }
    Ok(())
}

fn classify_connect(e: postgres::Error, settings: &ConnectionSettings) -> DriverError {
    if let Some(db) = e.as_db_error() {
        // pg_hba.conf's `hostnossl ... reject`: the server takes only TLS sessions.
        if db.message().contains("no encryption") {
            return DriverError::Authentication(format!(
                "{}: {}; the server accepts only TLS: set sslmode=require or stronger (verify-full with sslrootcert)",
                settings.redacted(),
                db.message()
            ));
        }
        return match classify(e) {
            DriverError::NoSuchDatabase(_) => DriverError::NoSuchDatabase(format!(
                "database \"{db}\" does not exist on {url}: create it (createdb {db}) or fix the URL",
                db = settings.database(),
                url = settings.redacted()
            )),
            other => other,
        };
    }
    if let Some(tls_error) = tls::rustls_error(&e) {
        let url = settings.redacted();
        return DriverError::Unreachable(
            match tls::explain_certificate_error(tls_error, &settings.tls, settings.host_name()) {
                Some(line) => format!("{url}: {line}"),
                None => format!(
                    "{url}: TLS handshake failed (sslmode={}): {tls_error}",
                    settings.tls.mode
                ),
            },
        );
    }
    let text = error_chain(&e);
    if text.contains("server does not support TLS") {
        return DriverError::Unreachable(format!(
            "{}: the server does not offer TLS, and sslmode={} demands it: enable ssl on the server, or lower sslmode to prefer",
            settings.redacted(),
            settings.tls.mode
        ));
    }
    if text.contains("does not allow writes") {
        return DriverError::Unreachable(format!(
            "{}: no host accepts writes (a standby is read-only), and target_session_attrs=read-write demands it: list the primary among the hosts",
            settings.redacted()
        ));
    }
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

    fn try_lock(&mut self) -> Result<bool, DriverError> {
        if self.locked {
            return Ok(true);
        }
        if !self.lock_checked {
            refuse_standby(&mut self.client, &self.settings)?;
            // A second session only for as long as the pooler probe needs it: closed before
            // the engine's wait, so that a waiting migrator holds one connection.
            let mut probe = open(&self.settings, &self.session)?;
            refuse_transaction_pooler(&mut self.client, &mut probe, &self.settings)?;
            drop(probe);
            self.lock_checked = true;
        }
        let key = self.lock_key();
        let got: bool = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &key])
            .map_err(classify)?
            .get(0);
        self.locked = got;
        Ok(got)
    }

    fn unlock(&mut self) -> Result<(), DriverError> {
        self.watcher = None;
        if std::mem::take(&mut self.locked) {
            let key = self.lock_key();
            self.client
                .query_one("SELECT pg_advisory_unlock($1, $2)", &[&LOCK_CLASS, &key])
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
        match self.watched(|client| transaction(client, statements)) {
            Err(e) if is_history_id_collision(&e.error) => {
                // Crash recovery can take the history's identity sequence back below ids
                // already used (PostgreSQL 15 after `CREATE DATABASE ... TEMPLATE`): the row
                // is not a duplicate, its id is. Move the sequence past them and run again
                // (the failed transaction left nothing behind).
                log::warn!(
                    "the history table's id sequence was behind its rows (a crash recovery?): moved it forward, running the step again"
                );
                let table = quote_literal(&self.qualified(HISTORY_TABLE));
                self.client
                    .batch_execute(&format!(
                        "SELECT setval(pg_get_serial_sequence({table}, 'id'), (SELECT max(id) FROM {HISTORY_TABLE}))"
                    ))
                    .map_err(|e| ExecError {
                        statement: None,
                        error: classify(e),
                    })?;
                self.watched(|client| transaction(client, statements))
            }
            other => other,
        }
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
    // for a typical revision instead of five, and a failure still names its statement. The
    // framing is the dialect's, which a dry run prints (PostgreSQL's has no checks).
    let framing = transaction_framing(Dialect::Postgres);
    debug_assert!(framing.before.is_empty() && framing.checks.is_empty());
    let last = statements.len().saturating_sub(1);
    for (i, sql) in statements.iter().enumerate() {
        let mut message = String::with_capacity(sql.len() + 16);
        if i == 0 {
            message.push_str(framing.begin);
            message.push_str(";\n");
        }
        message.push_str(sql);
        if i == last {
            message.push_str(";\n");
            message.push_str(framing.commit);
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

fn is_history_id_collision(e: &DriverError) -> bool {
    matches!(e, DriverError::Statement { code: Some(code), message }
        if code == "23505" && message.contains(&format!("\"{HISTORY_TABLE}_pkey\"")))
}

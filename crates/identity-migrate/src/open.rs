//! The one door to a database: the configuration becomes a [`Database`] (which database it is,
//! decided here and nowhere else), a [`Connected`] session with what its kind can do, and its
//! backup half; an archive gets its reader from its own content ([`archive_reader`]). No other
//! file of the CLI names a database kind: a command asks for a capability and gets a clear
//! refusal where the database lacks it. A third database is one driver crate and an arm in each
//! `match` here.

use crate::config::Resolved;
use crate::error::CliError;
use migrate_backup::{ArchiveReader, BackupDriver, Manifest};
use migrate_core::driver::{Driver, DriverError, ProgressSql, StateSql};
use migrate_core::lint::LintContext;
use migrate_core::Dialect;
use migrate_postgres::backup_session::PostgresBackup;
use migrate_postgres::url::{self, ConnectionSettings};
use migrate_postgres::{PostgresDriver, PostgresStateSql, SessionSettings};
use migrate_sqlite::backup::SqliteArchiveReader;
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteStateSql, SqliteTarget};
use std::path::{Path, PathBuf};

/// The file used when no database is configured, in the working directory.
pub const DEFAULT_SQLITE_FILE: &str = "identity_service.db";

/// Which database: the only place the CLI knows.
// One value per command: boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Kind {
    /// A PostgreSQL database (the settings may hold a password: print [`Database::redacted`]).
    Postgres(ConnectionSettings),
    /// A SQLite file or in-memory database.
    Sqlite(SqliteTarget),
}

/// The database a command works on.
#[derive(Debug, Clone)]
pub struct Database {
    kind: Kind,
}

/// Whether `url` names a SQLite database (`sqlite:`, `sqlite+driver:`).
fn is_sqlite_url(url: &str) -> bool {
    let scheme = url.split(':').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("sqlite")
        || scheme
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("sqlite+"))
}

impl Database {
    /// The configured database, or the embedded default SQLite file.
    pub fn resolve(cfg: &Resolved) -> Result<Database, CliError> {
        let kind = match cfg.database_url.as_deref() {
            Some(u) if is_sqlite_url(u) => {
                Kind::Sqlite(migrate_sqlite::parse_url(u).map_err(CliError::Config)?)
            }
            Some(u) => Kind::Postgres(url::parse_with_process_env(u)?),
            // Said when the file is created (see `connect`), not on every command: `status` and
            // the others print the database they work on anyway.
            None => Kind::Sqlite(SqliteTarget::File(PathBuf::from(DEFAULT_SQLITE_FILE))),
        };
        if let Kind::Sqlite(_) = &kind {
            // Refused rather than ignored: the operator asked for something SQLite cannot do.
            if cfg.schema != "public" {
                return Err(CliError::Config(format!(
                    "--schema {} applies to PostgreSQL only: a SQLite database has no schemas to choose from",
                    cfg.schema
                )));
            }
            if cfg.statement_timeout.is_some() {
                log::warn!("--statement-timeout applies to PostgreSQL only: ignored on SQLite");
            }
        }
        Ok(Database { kind })
    }

    /// An empty database that lives only as long as its connection: the stand-in for a database
    /// not created yet, on which a plan is made without creating anything.
    pub fn empty() -> Database {
        Database {
            kind: Kind::Sqlite(SqliteTarget::Memory),
        }
    }

    /// The database as it may be printed: a URL without its password, or a SQLite path.
    pub fn redacted(&self) -> String {
        match &self.kind {
            Kind::Postgres(settings) => settings.redacted(),
            Kind::Sqlite(target) => target.to_string(),
        }
    }

    /// The SQL dialect the database speaks.
    pub fn dialect(&self) -> Dialect {
        match &self.kind {
            Kind::Postgres(_) => Dialect::Postgres,
            Kind::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A database file that does not exist yet (nothing has been migrated into it).
    pub fn is_missing_file(&self) -> bool {
        matches!(&self.kind, Kind::Sqlite(SqliteTarget::File(path)) if !path.exists())
    }

    /// Connects. A missing database (a PostgreSQL database, a SQLite file) is created only
    /// when `create` is set, so that a mistyped name is an error rather than a new database.
    pub fn connect(&self, cfg: &Resolved, create: bool) -> Result<Connected, CliError> {
        log::debug!("connecting to {} (from {})", self.redacted(), cfg.source);
        match &self.kind {
            Kind::Postgres(settings) => {
                let session = SessionSettings {
                    schema: cfg.schema.clone(),
                    lock_timeout: cfg.lock_timeout,
                    statement_timeout: cfg.statement_timeout,
                };
                let mut driver = match PostgresDriver::connect(settings, session.clone()) {
                    Err(DriverError::NoSuchDatabase(_)) if create => {
                        log::info!("creating database {}", settings.database());
                        PostgresDriver::create_database(settings)?;
                        PostgresDriver::connect(settings, session)?
                    }
                    other => other?,
                };
                // `-v` says what protects the session; asking costs a round trip, so only then.
                if log::log_enabled!(log::Level::Debug) {
                    let security = driver.security()?;
                    log::debug!("connected to {}: {security}", settings.redacted());
                }
                require_schema(&mut driver, settings, &cfg.schema)?;
                Ok(Connected {
                    session: Session::Postgres(Box::new(driver)),
                })
            }
            Kind::Sqlite(target) => {
                if self.is_missing_file() {
                    if !create {
                        return Err(missing_file(target).into());
                    }
                    if cfg.database_url.is_none() {
                        // `migrate` has said it already, even with -q.
                        log::debug!(
                            "creating the embedded SQLite database ./{DEFAULT_SQLITE_FILE}"
                        );
                    } else {
                        log::info!("creating database {target}");
                    }
                }
                Ok(Connected {
                    session: Session::Sqlite(SqliteDriver::connect(target, sqlite_options(cfg))?),
                })
            }
        }
    }

    /// Connects for a command that only reads: a database file not created yet reads as the
    /// empty database it would start as, and is not created (the SQLite driver's rule).
    pub fn connect_to_read(&self, cfg: &Resolved) -> Result<Connected, CliError> {
        match &self.kind {
            Kind::Sqlite(target) => {
                log::debug!("connecting to {} (from {})", self.redacted(), cfg.source);
                Ok(Connected {
                    session: Session::Sqlite(SqliteDriver::connect_or_empty(
                        target,
                        sqlite_options(cfg),
                    )?),
                })
            }
            Kind::Postgres(_) => self.connect(cfg, false),
        }
    }

    /// The backup half of the database's driver. A restore target (`restore_target`) that is a
    /// SQLite file not there yet is created; a backup's source must exist.
    pub fn backup_driver(
        &self,
        cfg: &Resolved,
        restore_target: bool,
    ) -> Result<Box<dyn BackupDriver>, CliError> {
        match &self.kind {
            Kind::Postgres(settings) => Ok(Box::new(PostgresBackup::new(settings.clone()))),
            Kind::Sqlite(_) => match self.connect(cfg, restore_target)?.session {
                Session::Sqlite(driver) => Ok(Box::new(driver)),
                Session::Postgres(_) => Err(CliError::Io(
                    "a SQLite target connected to PostgreSQL".to_owned(),
                )),
            },
        }
    }

    /// The server's connection settings, for what only a database server can do (`trace`,
    /// `seed`); on SQLite, the refusal that `refusal` words from the database's name.
    pub fn server_settings(
        &self,
        refusal: impl FnOnce(&str) -> String,
    ) -> Result<ConnectionSettings, CliError> {
        match &self.kind {
            Kind::Postgres(settings) => Ok(settings.clone()),
            Kind::Sqlite(target) => Err(CliError::Config(refusal(&target.to_string()))),
        }
    }

    /// Refuses an archive of another kind of database than this one, saying where it goes.
    pub fn refuse_foreign_archive(&self, path: &Path, manifest: &Manifest) -> Result<(), CliError> {
        let is_sqlite = manifest.format == migrate_sqlite::backup::FORMAT;
        match &self.kind {
            Kind::Postgres(_) if is_sqlite => Err(CliError::Config(format!(
                "{} is a SQLite backup: restore it into a SQLite database (--database-url sqlite:PATH)",
                path.display()
            ))),
            Kind::Sqlite(_) if !is_sqlite => Err(CliError::Config(format!(
                "{} is a PostgreSQL backup (format {}): restore it into a PostgreSQL database (--database-url postgresql://...)",
                path.display(),
                manifest.format
            ))),
            _ => Ok(()),
        }
    }
}

fn sqlite_options(cfg: &Resolved) -> SqliteOptions {
    SqliteOptions {
        busy_timeout: cfg.busy_timeout,
        ..SqliteOptions::default()
    }
}

fn missing_file(target: &SqliteTarget) -> DriverError {
    DriverError::NoSuchDatabase(format!(
        "database file {} does not exist: run `identity-migrate migrate` to create it, or check the path",
        target.path().map_or_else(String::new, |p| p.display().to_string())
    ))
}

/// The reader of the archive that `manifest` describes, chosen by its content: a SQLite file is
/// read by SQLite; a PostgreSQL archive with the client tools of the server it came from, else
/// those of the configured server.
pub fn archive_reader(
    cfg: &Resolved,
    manifest: &Manifest,
) -> Result<Box<dyn ArchiveReader>, CliError> {
    if manifest.format == migrate_sqlite::backup::FORMAT {
        return Ok(Box::new(SqliteArchiveReader));
    }
    let major = manifest
        .server_version
        .split(['.', ' '])
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    match migrate_postgres::backup::find_tools(major) {
        Ok(tools) => Ok(Box::new(tools)),
        Err(e) => match cfg.database_url.as_deref() {
            Some(u) if !is_sqlite_url(u) => {
                log::debug!("{e}; using the tools of the configured server");
                let settings = url::parse_with_process_env(u)?;
                Ok(PostgresBackup::new(settings).archive_reader()?)
            }
            _ => Err(e.into()),
        },
    }
}

/// A plain session on a database server (no migration settings), cancelled by an interruption:
/// for bulk loading (`seed`).
pub fn plain_session(
    settings: &ConnectionSettings,
    application: &str,
) -> Result<postgres::Client, CliError> {
    let client = migrate_postgres::connect_client(settings, application)?;
    migrate_postgres::interrupt::cancel_on_interrupt(&client);
    Ok(client)
}

/// A schema that does not exist is bad input, named: otherwise the first statement fails with
/// "no schema has been selected to create in", which does not say why.
fn require_schema(
    driver: &mut PostgresDriver,
    settings: &ConnectionSettings,
    schema: &str,
) -> Result<(), CliError> {
    let exists: bool = driver
        .client()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .map_err(|e| DriverError::Io(format!("cannot read the schemas: {e}")))?
        .get(0);
    if exists {
        return Ok(());
    }
    Err(CliError::Config(format!(
        "schema {:?} does not exist in {}: create it (CREATE SCHEMA {}) or fix --schema",
        crate::one_line(schema),
        settings.redacted(),
        migrate_core::render::quote_ident(schema)
    )))
}

/// The SQL of the tool's state tables in `dialect`.
pub fn state_sql(dialect: Dialect) -> &'static dyn StateSql {
    // `Dialect` may grow; this binary has drivers for these two, and names only them.
    match dialect {
        Dialect::Sqlite => &SqliteStateSql,
        _ => &PostgresStateSql,
    }
}

/// What protects a session with a database server, in no database's terms (`status --json`
/// shows it as its `connection`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    /// Whether TLS is in use.
    pub encrypted: bool,
    /// The TLS protocol.
    pub protocol: Option<String>,
    /// The TLS cipher suite.
    pub cipher: Option<String>,
    /// The `sslmode` in force.
    pub sslmode: String,
    /// Whether the server's certificate chain was verified.
    pub certificate_chain_verified: bool,
    /// Whether the server's host name was verified.
    pub host_name_verified: bool,
    /// A remote host trusted without its name being checked: the operator should hear it.
    #[serde(skip)]
    pub weak_for_remote: bool,
    /// The one-line summary (`-v`, `check`, `status`).
    #[serde(skip)]
    pub summary: String,
}

/// An open connection, with what only one kind of database can report.
pub struct Connected {
    session: Session,
}

/// The connection of each kind.
enum Session {
    /// PostgreSQL (boxed: its driver is several times the size of SQLite's).
    Postgres(Box<PostgresDriver>),
    /// SQLite.
    Sqlite(SqliteDriver),
}

impl Connected {
    /// The connection as the engine's driver; an interruption cancels what it runs.
    pub fn into_driver(self) -> Box<dyn Driver> {
        match self.session {
            Session::Postgres(mut d) => {
                migrate_postgres::interrupt::cancel_on_interrupt(d.client());
                d
            }
            Session::Sqlite(d) => Box::new(d),
        }
    }

    /// The connection as a driver, borrowed.
    pub fn driver(&mut self) -> &mut dyn Driver {
        match &mut self.session {
            Session::Postgres(d) => d.as_mut(),
            Session::Sqlite(d) => d,
        }
    }

    /// Puts what the live database tells lint into `ctx`: on a database server, its major
    /// version and the sizes of its tables (keyed as the schema model names them: unqualified in
    /// `schema`); an embedded database tells nothing more.
    pub fn read_lint_facts(&mut self, schema: &str, ctx: &mut LintContext) -> Result<(), CliError> {
        if let Session::Postgres(d) = &mut self.session {
            if let Some(major) = migrate_postgres::sizes::server_major(d.client()) {
                ctx.pg_major = major;
            }
            ctx.sizes = migrate_postgres::sizes::live_sizes(d.client(), schema)?;
        }
        Ok(())
    }

    /// What protects the session with a database server (encryption, protocol, certificate
    /// checks); `None` for an embedded database.
    pub fn protection(&mut self) -> Result<Option<Protection>, CliError> {
        use migrate_postgres::tls::Verification;
        match &mut self.session {
            Session::Postgres(d) => {
                let security = d.security()?;
                Ok(Some(Protection {
                    encrypted: security.encrypted(),
                    protocol: security.protocol.clone(),
                    cipher: security.cipher.clone(),
                    sslmode: security.mode.as_str().to_owned(),
                    certificate_chain_verified: security.verification != Verification::None,
                    host_name_verified: security.verification == Verification::ChainAndHost,
                    weak_for_remote: security.weak_for_remote(),
                    summary: security.to_string(),
                }))
            }
            Session::Sqlite(_) => Ok(None),
        }
    }

    /// The dialect's own health check for `verify`: its name, whether it passed, and what was
    /// found. PostgreSQL: no index left invalid by a failed concurrent build. SQLite: the file's
    /// structure (`quick_check`) and every foreign key holding.
    pub fn health(&mut self) -> Result<(&'static str, bool, String), CliError> {
        match &mut self.session {
            Session::Postgres(d) => {
                let invalid = d.invalid_indexes()?;
                Ok((
                    "indexes",
                    invalid.is_empty(),
                    if invalid.is_empty() {
                        "no invalid index".to_owned()
                    } else {
                        format!("invalid: {}", invalid.join(", "))
                    },
                ))
            }
            Session::Sqlite(d) => {
                let problems = d.integrity_problems()?;
                Ok((
                    "integrity",
                    problems.is_empty(),
                    if problems.is_empty() {
                        "quick_check ok, every foreign key holds".to_owned()
                    } else {
                        problems.join("; ")
                    },
                ))
            }
        }
    }
}

/// The progress table's SQL of the one driver that runs revisions in phases: what a wrapped
/// driver answers before it has asked the driver it wraps.
pub fn phased_progress_sql() -> &'static dyn ProgressSql {
    &PostgresStateSql
}

/// Cancels what every database session and client tool of this process is running (a
/// signal arrived): the work stops at once and its cleanup runs.
pub fn interrupt_sessions() {
    migrate_postgres::interrupt::interrupt();
}

/// What a traced statement is made of: the report's tests build one.
#[cfg(test)]
pub use migrate_postgres::trace::{Relation, TakenLock};
pub use migrate_postgres::trace::{StatementTrace, TraceError};

/// Revisions run on a scratch copy of a database server, each statement measured: the locks it
/// took, the relations it rewrote, how long each lock was held. The copy is dropped with this.
pub trait Tracer {
    /// The copy's session as a driver: for what runs untraced (the state tables, the revisions
    /// before the traced range, the bookkeeping after a statement outside a transaction).
    fn driver(&mut self) -> &mut dyn Driver;
    /// The SQL of the tool's state tables on the copy.
    fn state_sql(&self) -> &'static dyn StateSql;
    /// Runs `statements` in one transaction, tracing each, then `bookkeeping`, and commits.
    fn trace_transaction(
        &mut self,
        statements: &[String],
        bookkeeping: &[String],
    ) -> Result<Vec<StatementTrace>, TraceError>;
    /// Runs one statement outside a transaction, traced.
    fn trace_autocommit(&mut self, sql: &str) -> Result<StatementTrace, TraceError>;
    /// How the copy was made, for the report.
    fn made_from(&self) -> String;
    /// The copy's name.
    fn scratch_name(&self) -> String;
}

/// A database URL the driver's parser refused: bad input, in the parser's words.
impl From<url::UrlError> for CliError {
    fn from(e: url::UrlError) -> Self {
        CliError::Url(e.to_string())
    }
}

/// A trace on PostgreSQL: a worker and a monitor session on the scratch copy. Fields drop in
/// order: the sessions end before the copy is dropped.
struct ScratchTrace {
    worker: PostgresDriver,
    monitor: PostgresDriver,
    scratch: migrate_postgres::scratch::Scratch,
}

impl Tracer for ScratchTrace {
    fn driver(&mut self) -> &mut dyn Driver {
        &mut self.worker
    }

    fn state_sql(&self) -> &'static dyn StateSql {
        &PostgresStateSql
    }

    fn trace_transaction(
        &mut self,
        statements: &[String],
        bookkeeping: &[String],
    ) -> Result<Vec<StatementTrace>, TraceError> {
        migrate_postgres::trace::trace_transaction(
            self.worker.client(),
            statements,
            bookkeeping,
            true,
        )
    }

    fn trace_autocommit(&mut self, sql: &str) -> Result<StatementTrace, TraceError> {
        migrate_postgres::trace::trace_autocommit(self.worker.client(), self.monitor.client(), sql)
    }

    fn made_from(&self) -> String {
        self.scratch.made_from().to_owned()
    }

    fn scratch_name(&self) -> String {
        self.scratch.name().to_owned()
    }
}

impl From<migrate_postgres::scratch::ScratchError> for CliError {
    fn from(e: migrate_postgres::scratch::ScratchError) -> Self {
        match e {
            migrate_postgres::scratch::ScratchError::Driver(e) => e.into(),
            migrate_postgres::scratch::ScratchError::Io(message) => CliError::Io(message),
        }
    }
}

/// A tracer on a scratch copy of the server database `live` (from [`Database::server_settings`]):
/// a template copy, or with `from_backup` a restore of that backup, verified first.
pub fn tracer(
    live: &ConnectionSettings,
    cfg: &Resolved,
    from_backup: Option<&Path>,
) -> Result<Box<dyn Tracer>, CliError> {
    let mut restore = |settings: &ConnectionSettings| -> Result<String, CliError> {
        let path = from_backup.unwrap_or(Path::new(""));
        let safety = migrate_backup::BackupRequest {
            dir: std::env::temp_dir(),
            output: None,
            snapshot: migrate_backup::SnapshotRequest {
                format: None,
                one_file: true,
                jobs: 1,
                compress: None,
            },
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let options = migrate_backup::RestoreOptions {
            replace: false,
            request: migrate_backup::RestoreRequest {
                in_place: true,
                jobs: 1,
                session_wait: std::time::Duration::from_secs(10),
            },
        };
        let mut driver = PostgresBackup::new(settings.clone());
        migrate_backup::verify_and_restore(&mut driver, path, &options, &safety, &mut |_| {})?;
        Ok(format!(
            "a restore of the verified backup {}",
            path.display()
        ))
    };
    let restore: Option<migrate_postgres::scratch::Restore<'_, CliError>> = match from_backup {
        Some(_) => Some(&mut restore),
        None => None,
    };
    let scratch = migrate_postgres::scratch::Scratch::create(live, restore)?;
    let session = SessionSettings {
        schema: cfg.schema.clone(),
        lock_timeout: cfg.lock_timeout,
        statement_timeout: cfg.statement_timeout,
    };
    let worker = PostgresDriver::connect(scratch.settings(), session.clone())?;
    let monitor = PostgresDriver::connect(scratch.settings(), session)?;
    Ok(Box::new(ScratchTrace {
        worker,
        monitor,
        scratch,
    }))
}

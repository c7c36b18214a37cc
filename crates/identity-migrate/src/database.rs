//! Which database a command works on: PostgreSQL named by a URL, or a SQLite file (the embedded
//! default when nothing is configured), and the connection to it.
//!
//! Everything dialect-specific that the CLI needs lives here, so the commands ask the engine and
//! print, whatever the database.

use crate::config::Resolved;
use crate::error::CliError;
use migrate_core::driver::{Driver, DriverError, StateSql};
use migrate_core::Dialect;
use migrate_postgres::url::{self, ConnectionSettings};
use migrate_postgres::{PostgresDriver, PostgresStateSql, SessionSettings};
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteStateSql, SqliteTarget};
use std::path::PathBuf;

/// The file used when no database is configured, in the working directory.
pub const DEFAULT_SQLITE_FILE: &str = "identity_service.db";

/// The database a command works on.
// One value per command: boxing the settings would buy nothing and touch every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Database {
    /// A PostgreSQL database (the settings may hold a password: print [`Database::redacted`]).
    Postgres(ConnectionSettings),
    /// A SQLite file or in-memory database.
    Sqlite(SqliteTarget),
}

/// An open connection, with what only one dialect can report.
pub enum Connected {
    /// PostgreSQL (boxed: its driver is several times the size of SQLite's).
    Postgres(Box<PostgresDriver>),
    /// SQLite.
    Sqlite(SqliteDriver),
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
        let database = match cfg.database_url.as_deref() {
            Some(u) if is_sqlite_url(u) => {
                Database::Sqlite(migrate_sqlite::parse_url(u).map_err(CliError::Config)?)
            }
            Some(u) => Database::Postgres(url::parse_with_process_env(u)?),
            // Said when the file is created (see `connect`), not on every command: `status` and
            // the others print the database they work on anyway.
            None => Database::Sqlite(SqliteTarget::File(PathBuf::from(DEFAULT_SQLITE_FILE))),
        };
        if let Database::Sqlite(_) = &database {
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
        Ok(database)
    }

    /// The database as it may be printed: a URL without its password, or a SQLite path.
    pub fn redacted(&self) -> String {
        match self {
            Database::Postgres(settings) => settings.redacted(),
            Database::Sqlite(target) => target.to_string(),
        }
    }

    /// The SQL dialect the database speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Postgres(_) => Dialect::Postgres,
            Database::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A SQLite file that does not exist yet (nothing has been migrated into it).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, Database::Sqlite(SqliteTarget::File(path)) if !path.exists())
    }

    /// Connects. A missing database (a PostgreSQL database, a SQLite file) is created only
    /// when `create` is set, so that a mistyped name is an error rather than a new database.
    pub fn connect(&self, cfg: &Resolved, create: bool) -> Result<Connected, CliError> {
        log::debug!("connecting to {} (from {})", self.redacted(), cfg.source);
        match self {
            Database::Postgres(settings) => {
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
                Ok(Connected::Postgres(Box::new(driver)))
            }
            Database::Sqlite(target) => {
                if self.is_missing_file() {
                    if !create {
                        return Err(DriverError::NoSuchDatabase(format!(
                            "database file {} does not exist: run `identity-migrate migrate` to create it, or check the path",
                            target.path().map_or_else(String::new, |p| p.display().to_string())
                        ))
                        .into());
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
                let options = SqliteOptions {
                    busy_timeout: cfg.busy_timeout,
                    ..SqliteOptions::default()
                };
                Ok(Connected::Sqlite(SqliteDriver::connect(target, options)?))
            }
        }
    }
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

impl Connected {
    /// The connection as the engine's driver.
    pub fn into_driver(self) -> Box<dyn Driver> {
        match self {
            Connected::Postgres(d) => d,
            Connected::Sqlite(d) => Box::new(d),
        }
    }

    /// The connection as a driver, borrowed.
    pub fn driver(&mut self) -> &mut dyn Driver {
        match self {
            Connected::Postgres(d) => d.as_mut(),
            Connected::Sqlite(d) => d,
        }
    }

    /// What protects the session (PostgreSQL only): encryption, protocol, certificate checks.
    pub fn security(&mut self) -> Result<Option<migrate_postgres::Security>, CliError> {
        match self {
            Connected::Postgres(d) => Ok(Some(d.security()?)),
            Connected::Sqlite(_) => Ok(None),
        }
    }

    /// The dialect's own health check for `verify`: its name, whether it passed, and what was
    /// found. PostgreSQL: no index left invalid by a failed concurrent build. SQLite: the file's
    /// structure (`quick_check`) and every foreign key holding.
    pub fn health(&mut self) -> Result<(&'static str, bool, String), CliError> {
        match self {
            Connected::Postgres(d) => {
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
            Connected::Sqlite(d) => {
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

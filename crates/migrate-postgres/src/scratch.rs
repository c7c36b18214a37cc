//! The scratch copy a trace runs on: made with `CREATE DATABASE .. TEMPLATE` (PostgreSQL copies
//! the files; it needs nobody else connected to the database) or empty, for the caller to
//! restore a verified backup into. It is dropped on every way out: success, failure, or a
//! panic; its name (`<db>__trace_<pid>`) says what it was should a killed process leave one
//! behind, and the next trace of the same database drops it: while a trace runs, a session of
//! it holds an advisory lock named after its copy (on the maintenance database), which the
//! server releases when that session ends however the process ended. A copy whose lock is free
//! is debris.

use crate::url::ConnectionSettings;
use migrate_core::driver::DriverError;
use migrate_core::render::quote_ident;
use postgres::Client;

/// Why no scratch copy could be made.
#[derive(Debug)]
pub enum ScratchError {
    /// A session could not be opened.
    Driver(DriverError),
    /// The server refused a step; the message says what to do.
    Io(String),
}

impl From<DriverError> for ScratchError {
    fn from(e: DriverError) -> Self {
        ScratchError::Driver(e)
    }
}

/// Fills an empty scratch database (given its settings) and says how the copy was made.
pub type Restore<'a, E> = &'a mut dyn FnMut(&ConnectionSettings) -> Result<String, E>;

/// A scratch database that is dropped when this goes out of scope.
pub struct Scratch {
    maintenance: ConnectionSettings,
    settings: ConnectionSettings,
    how: String,
    /// The session holding the copy's owner lock (see the module's documentation).
    owner: Option<Client>,
}

/// The advisory lock key (hashed by the server) that says a trace still owns `scratch`.
fn owner_key(scratch: &str) -> String {
    format!("identity-migrate trace {scratch}")
}

/// Drops the scratch copies of `base` that no running trace owns: left by a killed one.
fn sweep(admin: &mut Client, base: &str, own: &str) {
    let escaped: String = base
        .chars()
        .flat_map(|c| match c {
            '\\' | '%' | '_' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("{escaped}\\_\\_trace\\_%");
    let Ok(rows) = admin.query(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 AND datname <> $2",
        &[&pattern, &own],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let key = owner_key(&name);
        let free = admin
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !free {
            continue;
        }
        match admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&name)
        )) {
            Ok(()) => log::warn!("dropped {name}: the scratch copy of a trace that was killed"),
            Err(e) => log::warn!(
                "could not drop {name}, the scratch copy of a trace that was killed: {}; drop it by hand",
                db_message(&e)
            ),
        }
        let _ = admin.query_one(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        );
    }
}

impl Scratch {
    /// Copies `live` into a new database: from a template, or, with `restore`, an empty database
    /// that `restore` fills (given its settings; it returns how the copy was made, and on an
    /// error the database is dropped).
    pub fn create<E: From<ScratchError>>(
        live: &ConnectionSettings,
        restore: Option<Restore<'_, E>>,
    ) -> Result<Scratch, E> {
        let mut maintenance = live.clone();
        maintenance.dbname = "postgres".to_owned();
        let mut settings = live.clone();
        let base: String = live.database().chars().take(40).collect();
        settings.dbname = format!("{base}__trace_{}", std::process::id());
        let mut admin = connect(&maintenance).map_err(ScratchError::from)?;
        let _ = admin.batch_execute("SET client_min_messages = warning");
        // Owned before it exists, so that no other trace's sweep can take it for debris.
        admin
            .query_one(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&owner_key(&settings.dbname)],
            )
            .map_err(|e| {
                ScratchError::Io(format!(
                    "cannot mark the scratch database as this trace's: {}",
                    db_message(&e)
                ))
            })?;
        sweep(&mut admin, &base, &settings.dbname);
        let name = quote_ident(&settings.dbname);
        // One left by a killed trace of the same pid is garbage by construction.
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
        let how = match restore {
            None => {
                let sql = format!(
                    "CREATE DATABASE {name} TEMPLATE {}",
                    quote_ident(live.database())
                );
                if let Err(e) = admin.batch_execute(&sql) {
                    let others = admin
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                            &[&live.database()],
                        )
                        .map(|r| r.get::<_, i64>(0))
                        .unwrap_or(0);
                    return Err(ScratchError::Io(
                        if e.code().map(|c| c.code()) == Some("55006") {
                            format!(
                            "cannot copy {} as a template: {others} other session(s) are connected to it; \
                             trace from a verified backup instead (--from-backup PATH; `identity-migrate backup` makes one)",
                            live.redacted()
                        )
                        } else {
                            format!(
                                "cannot create the scratch copy of {}: {}",
                                live.redacted(),
                                db_message(&e)
                            )
                        },
                    )
                    .into());
                }
                format!("a template copy of {}", live.redacted())
            }
            Some(restore) => {
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .map_err(|e| {
                        ScratchError::Io(format!(
                            "cannot create the scratch database: {}",
                            db_message(&e)
                        ))
                    })?;
                // Drops the database if the restore fails.
                let guard = Scratch {
                    maintenance: maintenance.clone(),
                    settings: settings.clone(),
                    how: String::new(),
                    owner: None,
                };
                let how = restore(&settings)?;
                std::mem::forget(guard);
                how
            }
        };
        Ok(Scratch {
            maintenance,
            settings,
            how,
            owner: Some(admin),
        })
    }

    /// The copy's connection settings.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The copy's database name.
    pub fn name(&self) -> &str {
        &self.settings.dbname
    }

    /// How the copy was made, for the report.
    pub fn made_from(&self) -> &str {
        &self.how
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.settings.dbname)
        );
        let dropped = match self.owner.as_mut() {
            Some(owner) => Ok(owner.batch_execute(&sql)),
            None => connect(&self.maintenance).map(|mut c| c.batch_execute(&sql)),
        };
        match dropped {
            Ok(Ok(())) => log::debug!("dropped the scratch database {}", self.settings.dbname),
            Ok(Err(e)) => log::error!(
                "could not drop the scratch database {}: {}; drop it by hand",
                self.settings.dbname,
                db_message(&e)
            ),
            Err(e) => log::error!(
                "could not drop the scratch database {}: {e}; drop it by hand",
                self.settings.dbname
            ),
        }
    }
}

/// With the settings' TLS, as every other session of the tool (issue 11).
fn connect(settings: &ConnectionSettings) -> Result<Client, DriverError> {
    crate::connect_client(settings, "identity-migrate trace")
}

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

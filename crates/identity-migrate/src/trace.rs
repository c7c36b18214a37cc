//! `trace`: run revisions on a scratch copy of the database and report, per statement, the
//! locks it took, the relations it rewrote and how long each lock was held.
//!
//! The copy is made with `CREATE DATABASE .. TEMPLATE` (PostgreSQL copies the files; it needs
//! nobody else connected to the database) or, with `--from-backup`, by restoring a backup
//! whose checksums are verified first. The live database is only read (its revision); the
//! trace itself takes the locks it measures, so it never runs there. Each revision runs as
//! `migrate` runs it: one transaction (committed on the copy, so the next revision finds what
//! it needs, and held times end where `migrate`'s commit would), `CONCURRENTLY` statements
//! outside. The copy is dropped on every way out: success, failure, or a panic; its name
//! (`<db>__trace_<pid>`) says what it was should a killed process leave one behind, and the
//! next trace of the same database drops it: while a trace runs, a session of it holds an
//! advisory lock named after its copy (on the maintenance database), which the server releases
//! when that session ends however the process ended. A copy whose lock is free is debris.

use crate::args::TraceArgs;
use crate::commands::io_error;
use crate::config::Resolved;
use crate::error::CliError;
use crate::lint_cmd::range_steps;
use crate::open::Database;
use migrate_core::driver::{Driver, DriverError};
use migrate_core::render::quote_ident;
use migrate_core::{Dialect, Direction, Heads, RevisionGraph};
use migrate_engine::{EngineError, Intent, Options, RunIdentity};
use migrate_postgres::backup_session::PostgresBackup;
use migrate_postgres::trace::{self, StatementTrace};
use migrate_postgres::url::ConnectionSettings;
use migrate_postgres::{PostgresDriver, SessionSettings};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// A scratch database that is dropped when this goes out of scope.
struct Scratch {
    maintenance: ConnectionSettings,
    settings: ConnectionSettings,
    how: String,
    /// The session holding the copy's owner lock (see the module's documentation).
    owner: Option<postgres::Client>,
}

/// The advisory lock key (hashed by the server) that says a trace still owns `scratch`.
fn owner_key(scratch: &str) -> String {
    format!("identity-migrate trace {scratch}")
}

/// Drops the scratch copies of `base` that no running trace owns: left by a killed one.
fn sweep(admin: &mut postgres::Client, base: &str, own: &str) {
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
    /// Copies `live` into a new database, from a template or from a backup.
    fn create(live: &ConnectionSettings, backup: Option<&Path>) -> Result<Scratch, CliError> {
        let mut maintenance = live.clone();
        maintenance.dbname = "postgres".to_owned();
        let mut settings = live.clone();
        let base: String = live.database().chars().take(40).collect();
        settings.dbname = format!("{base}__trace_{}", std::process::id());
        let mut admin = connect(&maintenance)?;
        let _ = admin.batch_execute("SET client_min_messages = warning");
        // Owned before it exists, so that no other trace's sweep can take it for debris.
        admin
            .query_one(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&owner_key(&settings.dbname)],
            )
            .map_err(|e| {
                CliError::Io(format!(
                    "cannot mark the scratch database as this trace's: {}",
                    db_message(&e)
                ))
            })?;
        sweep(&mut admin, &base, &settings.dbname);
        let name = quote_ident(&settings.dbname);
        // One left by a killed trace of the same pid is garbage by construction.
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
        let how = match backup {
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
                    return Err(CliError::Io(
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
                    ));
                }
                format!("a template copy of {}", live.redacted())
            }
            Some(path) => {
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .map_err(|e| {
                        CliError::Io(format!(
                            "cannot create the scratch database: {}",
                            db_message(&e)
                        ))
                    })?;
                let scratch = Scratch {
                    maintenance: maintenance.clone(),
                    settings: settings.clone(),
                    how: String::new(),
                    owner: None,
                };
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
                migrate_backup::verify_and_restore(
                    &mut driver,
                    path,
                    &options,
                    &safety,
                    &mut |_| {},
                )?;
                std::mem::forget(scratch);
                format!("a restore of the verified backup {}", path.display())
            }
        };
        Ok(Scratch {
            maintenance,
            settings,
            how,
            owner: Some(admin),
        })
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
fn connect(settings: &ConnectionSettings) -> Result<postgres::Client, CliError> {
    Ok(migrate_postgres::connect_client(
        settings,
        "identity-migrate trace",
    )?)
}

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// One traced revision.
struct TracedStep {
    revision: String,
    message: String,
    direction: Direction,
    transactional: bool,
    elapsed_ms: f64,
    statements: Vec<StatementTrace>,
}

/// `identity-migrate trace`.
pub fn run(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    args: &TraceArgs,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let live = database.server_settings(|target| {
        format!(
            "trace measures PostgreSQL's table locks, and {target} is SQLite (one writer for the whole file, readers never blocked): use `identity-migrate lint`"
        )
    })?;
    let current = {
        let mut connected = database.connect(cfg, false)?;
        connected.driver().read_heads()?
    };
    let (from, steps) = match &args.range {
        Some(range) => range_steps(graph, range)?,
        None => {
            let target = graph
                .resolve("heads", &current)
                .map_err(EngineError::from)?;
            let steps = graph
                .plan_upgrade(&current, &target)
                .map_err(EngineError::from)?;
            (current.clone(), steps)
        }
    };
    let applied_now = graph.applied(&current).map_err(EngineError::from)?;
    let applied_from = graph.applied(&from).map_err(EngineError::from)?;
    if !applied_now.is_subset(&applied_from) {
        return Err(CliError::Config(format!(
            "trace runs forward from the database's revision ({}), and the range starts before it: name a range after it",
            crate::output::heads_text(&current)
        )));
    }
    let Some(last) = steps.last() else {
        writeln!(
            out,
            "nothing to trace: no revision to run from {}",
            crate::output::heads_text(&from)
        )
        .map_err(io_error)?;
        return Ok(());
    };
    let to = last.heads_after.clone();
    let scratch = Scratch::create(&live, args.from_backup.as_deref())?;
    let session = SessionSettings {
        schema: cfg.schema.clone(),
        lock_timeout: cfg.lock_timeout,
        statement_timeout: cfg.statement_timeout,
    };
    let mut worker = PostgresDriver::connect(&scratch.settings, session.clone())?;
    let mut monitor = PostgresDriver::connect(&scratch.settings, session)?;
    let options = Options::new(RunIdentity {
        os_user: "identity-migrate trace".to_owned(),
        host: "scratch".to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    let state_sql = crate::open::state_sql(Dialect::Postgres);
    let tables = worker.state_tables()?;
    if !(tables.version && tables.history) {
        worker
            .execute_in_transaction(&state_sql.bootstrap_statements())
            .map_err(|e| EngineError::Driver(e.error))?;
    }
    // Up to the range's start, untraced.
    if from != current {
        let before = migrate_engine::prepare(
            graph,
            state_sql,
            &options,
            &upgrade_to(graph, &from)?,
            &current,
        )?;
        for p in &before {
            let all: Vec<String> = p.statements.iter().chain(&p.bookkeeping).cloned().collect();
            let run = if p.transactional {
                worker.execute_in_transaction(&all)
            } else {
                worker.execute_each(&all)
            };
            run.map_err(|e| EngineError::Driver(e.error))?;
        }
    }
    let prepared =
        migrate_engine::prepare(graph, state_sql, &options, &upgrade_to(graph, &to)?, &from)?;
    let mut traced = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let started = Instant::now();
        let statements = if p.transactional {
            trace::trace_transaction(worker.client(), &p.statements, &p.bookkeeping, true)
                .map_err(|e| trace_failed(&p.step.revision, &e))?
        } else {
            let mut each = Vec::with_capacity(p.statements.len());
            for sql in &p.statements {
                each.push(
                    trace::trace_autocommit(worker.client(), monitor.client(), sql)
                        .map_err(|e| trace_failed(&p.step.revision, &e))?,
                );
            }
            worker
                .execute_in_transaction(&p.bookkeeping)
                .map_err(|e| EngineError::Driver(e.error))?;
            each
        };
        traced.push(TracedStep {
            revision: p.step.revision.clone(),
            message: p.message.clone(),
            direction: p.step.direction,
            transactional: p.transactional,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            statements,
        });
    }
    drop(worker);
    drop(monitor);
    let how = scratch.how.clone();
    let name = scratch.settings.dbname.clone();
    drop(scratch);
    print(out, &database.redacted(), &how, &name, &traced, args.json)
}

fn trace_failed(revision: &str, e: &trace::TraceError) -> CliError {
    CliError::Engine(EngineError::Driver(DriverError::Statement {
        code: None,
        message: format!("trace of {revision} on the scratch copy failed: {e}"),
    }))
}

/// An upgrade intent that ends at exactly `ids`.
fn upgrade_to(graph: &RevisionGraph, ids: &Heads) -> Result<Intent, CliError> {
    let heads: Heads = graph.heads().iter().map(|h| (*h).to_owned()).collect();
    match ids.iter().collect::<Vec<_>>().as_slice() {
        [one] => Ok(Intent::Upgrade((*one).clone())),
        _ if ids == &heads => Ok(Intent::Upgrade("heads".to_owned())),
        _ => Err(CliError::Config(
            "a trace range must end at one revision or at the heads".to_owned(),
        )),
    }
}

fn print(
    out: &mut dyn Write,
    database: &str,
    how: &str,
    scratch: &str,
    steps: &[TracedStep],
    json: bool,
) -> Result<(), CliError> {
    if json {
        let value = json!({
            "database": database,
            "scratch": {"name": scratch, "made_from": how, "dropped": true},
            "steps": steps.iter().map(|s| json!({
                "revision": s.revision,
                "message": s.message,
                "direction": s.direction.as_str(),
                "transactional": s.transactional,
                "elapsed_ms": round(s.elapsed_ms),
                "statements": s.statements.iter().map(|t| json!({
                    "sql": t.sql,
                    "transactional": t.transactional,
                    "elapsed_ms": round(t.elapsed.as_secs_f64() * 1000.0),
                    "locks": t.locks.iter().map(|l| json!({
                        "relation": l.relation.to_string(),
                        "kind": l.relation.kind_name(),
                        "mode": l.mode.sql_name(),
                        "blocks_reads": l.mode.blocks_reads(),
                        "blocks_writes": l.mode.blocks_writes(),
                        "held_ms": round(l.held.as_secs_f64() * 1000.0),
                    })).collect::<Vec<_>>(),
                    "rewritten": t.rewritten.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        return writeln!(out, "{value}").map_err(io_error);
    }
    writeln!(
        out,
        "trace of {} revision(s) of {database} on {how} ({scratch}, dropped)",
        steps.len()
    )
    .map_err(io_error)?;
    for s in steps {
        writeln!(
            out,
            "\n{} {}  {}  ({}, {:.0} ms)",
            s.revision,
            s.direction.as_str(),
            s.message,
            if s.transactional {
                "one transaction"
            } else {
                "outside a transaction"
            },
            s.elapsed_ms
        )
        .map_err(io_error)?;
        for (i, t) in s.statements.iter().enumerate() {
            writeln!(
                out,
                "  #{} {}  ({:.1} ms)",
                i + 1,
                one_line(&t.sql),
                t.elapsed.as_secs_f64() * 1000.0
            )
            .map_err(io_error)?;
            // Tables in full; the locks on their indexes (which follow the table's) and the
            // rewrites of indexes are counted here and listed in --json.
            for l in t.locks.iter().filter(|l| l.relation.is_table()) {
                let blocks = if l.mode.blocks_reads() {
                    "blocks reads and writes"
                } else if l.mode.blocks_writes() {
                    "blocks writes"
                } else {
                    "blocks no reads or writes"
                };
                writeln!(
                    out,
                    "      {:<22} on {} held {:.1} ms ({blocks})",
                    l.mode.sql_name(),
                    l.relation,
                    l.held.as_secs_f64() * 1000.0
                )
                .map_err(io_error)?;
            }
            let others = t.locks.iter().filter(|l| !l.relation.is_table()).count();
            if others > 0 {
                writeln!(out, "      and {others} lock(s) on indexes and sequences")
                    .map_err(io_error)?;
            }
            for r in t.rewritten.iter().filter(|r| r.is_table()) {
                let indexes = t.rewritten.iter().filter(|r| !r.is_table()).count();
                writeln!(out, "      rewrote {r} (and {indexes} index(es))").map_err(io_error)?;
            }
        }
    }
    Ok(())
}

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn one_line(sql: &str) -> String {
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 100 {
        format!("{}...", line.chars().take(97).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn long_statements_are_cut_on_one_line() {
        assert_eq!(
            one_line("ALTER TABLE t\n  ADD c int"),
            "ALTER TABLE t ADD c int"
        );
        assert!(one_line(&"x ".repeat(200)).ends_with("..."));
    }
}

//! One function per command: connect, ask the engine, print the result.

use crate::args::{
    BackupArgs, BackupCommand, Cli, Command, DialectArg, GenerateSqlArgs, MigrateArgs,
};
use crate::config::{self, Resolved};
use crate::database::{Connected, Database};
use crate::error::CliError;
use crate::output::{self, duration_text, heads_text, Framing};
use migrate_core::driver::HistoryRecord;
use migrate_core::{Dialect, Direction, Heads, RevisionGraph, Target};
use migrate_engine::{Engine, EngineError, Event, Intent, Options, RunIdentity};
use migrate_postgres::url::{self, ConnectionSettings};
use serde_json::json;
use std::io::Write;
use std::time::Instant;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let cfg = config::resolve(&cli.global, &|k| std::env::var(k).ok())?;
    let graph = identity_schema::graph();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Status(a) if a.all_environments => {
            crate::promote::status_all(&mut out, &cli.global, &graph, &a)
        }
        Command::Status(a) => {
            let at_head = status(&mut out, &cfg, &graph, a.json)?;
            match at_head {
                Some(pending) if a.exit_code => Err(CliError::Pending(format!(
                    "{pending} revision(s) pending (--exit-code)"
                ))),
                _ => Ok(()),
            }
        }
        Command::List(a) => list(&mut out, &cfg, &graph, a.json),
        Command::Migrate(run) => {
            migrate(&mut out, &cfg, &graph, Intent::Upgrade("head".into()), &run)
        }
        Command::MigrateTo { target, run } => {
            migrate(&mut out, &cfg, &graph, Intent::Upgrade(target), &run)
        }
        Command::Rollback { target, run } => {
            migrate(&mut out, &cfg, &graph, Intent::Downgrade(target), &run)
        }
        Command::GenerateSql(a) => generate_sql(&mut out, &cfg, &graph, &a),
        Command::Backup(a) => match &a.verify {
            Some(BackupCommand::Verify { path, .. })
                if crate::sqlite_backup::is_sqlite_backup(path) =>
            {
                // A SQLite backup is small enough to be read whole every time: no --full needed.
                crate::sqlite_backup::verify(&mut out, path)
            }
            Some(BackupCommand::Verify { path, full }) => {
                backup_verify(&mut out, &cfg, path, *full)
            }
            None => match Database::resolve(&cfg)? {
                Database::Sqlite(target) => {
                    crate::sqlite_backup::backup(&mut out, &cfg, &target, &a)
                }
                Database::Postgres(_) => backup(&mut out, &cfg, &a),
            },
        },
        Command::Restore {
            path,
            yes,
            jobs,
            in_place,
        } => match Database::resolve(&cfg)? {
            Database::Sqlite(target) => {
                crate::sqlite_backup::restore(&mut out, &cfg, &target, &path, yes)
            }
            Database::Postgres(_) => {
                crate::sqlite_backup::refuse_sqlite_backup(&path)?;
                restore(
                    &mut out,
                    &cfg,
                    &path,
                    &migrate_backup::RestoreOptions {
                        replace: yes,
                        jobs,
                        in_place,
                        session_wait: cfg.lock_wait,
                    },
                )
            }
        },
        Command::Seed { users, seed } => seed_data(&mut out, &cfg, users, seed),
        Command::Check(a) => check(&mut out, &cfg, &graph, a.json),
        Command::Verify(a) => verify(&mut out, &cfg, &graph, a.json),
        Command::Revision {
            message,
            autogenerate,
            dir,
        } => crate::scaffold::revision(&mut out, &graph, &message, autogenerate, dir.as_deref()),
        Command::Lint(a) => crate::lint_cmd::run(&mut out, &cfg, &graph, &a),
        Command::Trace(a) => crate::trace::run(&mut out, &cfg, &graph, &a),
        Command::Wait(a) => crate::wait::wait(
            &mut out,
            &cfg,
            &graph,
            &a.revision,
            std::time::Duration::from_secs(a.timeout),
            a.json,
        ),
        Command::Promote(a) => crate::promote::promote(&mut out, &cli.global, &graph, &a),
        Command::Completions { shell } => crate::shell::completions(&mut out, &graph, shell),
        Command::Man => crate::shell::man(&mut out),
    }
}

/// The PostgreSQL connection settings of the configured database (commands that only
/// PostgreSQL has: `seed`, and the `pg_dump` backups).
fn settings(cfg: &Resolved) -> Result<ConnectionSettings, CliError> {
    let url = cfg.database_url.as_deref().ok_or(CliError::NoDatabase)?;
    Ok(url::parse_with_process_env(url)?)
}

/// The configured database and a connection to it, for a command that only reads. A SQLite
/// file not created yet reads as the empty database it would start as (and is not created).
pub(crate) fn connect(cfg: &Resolved) -> Result<(Connected, Database), CliError> {
    let database = Database::resolve(cfg)?;
    if database.is_missing_file() {
        log::debug!(
            "{} does not exist yet: shown as an empty database (`identity-migrate migrate` creates it)",
            database.redacted()
        );
        let empty = Database::Sqlite(migrate_sqlite::SqliteTarget::Memory);
        return Ok((empty.connect(cfg, true)?, database));
    }
    Ok((database.connect(cfg, false)?, database))
}

pub(crate) fn engine<'g>(
    connected: Connected,
    graph: &'g RevisionGraph,
    cfg: &Resolved,
    run: Option<&MigrateArgs>,
) -> Engine<'g> {
    let mut options = Options::new(identity());
    options.lock_wait = cfg.lock_wait;
    options.retry_budget = cfg.lock_budget;
    if let Some(run) = run {
        options.single_transaction = run.single_transaction;
        options.accept_changed = run.accept_changed;
    }
    let mut connected = connected;
    if let Connected::Postgres(driver) = &mut connected {
        migrate_postgres::interrupt::cancel_on_interrupt(driver.client());
    }
    let driver = Box::new(crate::signals::Interruptible::new(connected.into_driver()));
    // A database that ran the series 0.1.0 released and 0.2.0 withdrew is told the way forward
    // (and `rollback` takes it back down that series).
    Engine::new(driver, graph, options).with_withdrawal(identity_schema::withdrawal())
}

fn identity() -> RunIdentity {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    RunIdentity {
        os_user,
        host,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// A failed write of the command's output as an error (a closed pipe ends quietly).
pub(crate) fn io_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::OutputClosed;
    }
    CliError::Io(format!("cannot write output: {e}"))
}

fn message_of<'g>(graph: &'g RevisionGraph, id: &str) -> &'g str {
    graph.get(id).map_or("", |r| r.message.as_str())
}

/// Prints where the database stands; returns the number of pending revisions when it is not
/// at head.
fn status(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<Option<usize>, CliError> {
    let (mut connected, database) = connect(cfg)?;
    let security = connected.security()?;
    let status = engine(connected, graph, cfg, None).status()?;
    let current: Vec<_> = status
        .current
        .iter()
        .map(|id| json!({"revision": id, "message": message_of(graph, id), "head": status.heads.contains(id)}))
        .collect();
    if json {
        let value = json!({
            "database": database.redacted(),
            "current": current,
            "heads": status.heads,
            "pending": status.pending,
            "at_head": status.at_head,
            "connection": security.as_ref().map(security_json),
        });
        writeln!(out, "{value}").map_err(io_error)?;
        return Ok((!status.at_head).then_some(status.pending));
    }
    let current_text = if status.current.is_empty() {
        "base (no revision applied)".to_owned()
    } else {
        status
            .current
            .iter()
            .map(|id| {
                let head = if status.heads.contains(id) {
                    " (head)"
                } else {
                    ""
                };
                format!("{id}{head} {}", message_of(graph, id))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let state = if status.at_head {
        "up to date".to_owned()
    } else {
        format!(
            "{} revision(s) pending: run `identity-migrate migrate`",
            status.pending
        )
    };
    let mut rows = vec![("database", database.redacted())];
    if let Some(security) = &security {
        rows.push(("tls", security.to_string()));
    }
    rows.extend([
        ("current", current_text),
        ("head", status.heads.join(", ")),
        ("pending", status.pending.to_string()),
        ("state", state),
    ]);
    output::key_values(out, &rows).map_err(io_error)?;
    Ok((!status.at_head).then_some(status.pending))
}

/// The connection's protection as `status --json` and `verify --json` report it.
fn security_json(security: &migrate_postgres::Security) -> serde_json::Value {
    json!({
        "encrypted": security.encrypted(),
        "protocol": security.protocol,
        "cipher": security.cipher,
        "sslmode": security.mode.as_str(),
        "certificate_chain_verified": security.verification != migrate_postgres::tls::Verification::None,
        "host_name_verified": security.verification == migrate_postgres::tls::Verification::ChainAndHost,
    })
}

fn list(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (connected, _) = connect(cfg)?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    let history = engine.history()?;
    let applied = graph.applied(&status.current).map_err(EngineError::from)?;
    let last_applied = |id: &str| -> Option<&HistoryRecord> {
        history
            .iter()
            .rev()
            .find(|h| h.revision == id && h.direction == Direction::Up && h.outcome == "applied")
    };
    if json {
        let items: Vec<_> = graph
            .revisions()
            .iter()
            .map(|r| {
                let record = applied
                    .contains(&r.id)
                    .then(|| last_applied(&r.id))
                    .flatten();
                json!({
                    "revision": r.id,
                    "down_revisions": r.down,
                    "message": r.message,
                    "created": r.created,
                    "applied": applied.contains(&r.id),
                    "current": status.current.contains(&r.id),
                    "head": status.heads.contains(&r.id),
                    "applied_at": record.map(|h| h.finished_at.clone()),
                    "duration_ms": record.map(|h| h.duration_ms),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items)).map_err(io_error)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = graph
        .revisions()
        .iter()
        .map(|r| {
            let record = applied
                .contains(&r.id)
                .then(|| last_applied(&r.id))
                .flatten();
            let mut marks = Vec::new();
            if status.current.contains(&r.id) {
                marks.push("current");
            }
            if status.heads.contains(&r.id) {
                marks.push("head");
            }
            vec![
                r.id.clone(),
                if r.down.is_empty() {
                    "-".to_owned()
                } else {
                    r.down.join(",")
                },
                if applied.contains(&r.id) { "yes" } else { "no" }.to_owned(),
                marks.join(","),
                record.map_or_else(String::new, |h| h.finished_at.clone()),
                record.map_or_else(String::new, |h| duration_text(h.duration_ms)),
                r.message.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "REVISION",
            "DOWN",
            "APPLIED",
            "MARK",
            "APPLIED AT",
            "TOOK",
            "MESSAGE",
        ],
        &rows,
    )
    .map_err(io_error)
}

fn migrate(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    intent: Intent,
    run: &MigrateArgs,
) -> Result<(), CliError> {
    let target = match &intent {
        Intent::Upgrade(t) | Intent::Downgrade(t) => t,
    };
    exact_revision(target, "REV")?;
    // Lint refuses a dangerous plan before anything is touched (created, backed up, locked).
    crate::lint_cmd::guard(out, cfg, graph, &intent, run)?;
    let database = Database::resolve(cfg)?;
    // A SQLite file not created yet is the empty database it would start as: the plan is made
    // on an empty in-memory database first, so a dry run, a refused target or a plan with
    // nothing to do creates no file. A PostgreSQL database is created only when asked, since a
    // mistyped name would otherwise become a new database.
    let mut from_nothing = false;
    let created_now = database.is_missing_file();
    let mut engine = if created_now {
        let empty = Database::Sqlite(migrate_sqlite::SqliteTarget::Memory).connect(cfg, true)?;
        let mut planner = engine(empty, graph, cfg, Some(run));
        if run.dry_run || planner.script(&intent)?.steps.is_empty() {
            from_nothing = true;
            planner
        } else {
            engine(database.connect(cfg, true)?, graph, cfg, Some(run))
        }
    } else {
        let create = run.create_database && !run.dry_run;
        engine(database.connect(cfg, create)?, graph, cfg, Some(run))
    };
    refuse_upgrade_below_current(&mut engine, graph, &intent)?;
    if cfg.database_url.is_none() && !run.dry_run {
        // Said even with -q: a deployment whose DATABASE_URL failed to mount must not pass for
        // a migration of its database.
        eprintln!(
            "note: no database configured: migrating the embedded SQLite database ./{} (set DATABASE_URL or pass --database-url for PostgreSQL)",
            crate::database::DEFAULT_SQLITE_FILE
        );
    }
    if run.dry_run {
        let script = engine.script(&intent)?;
        let (from, to) = match (script.steps.first(), script.steps.last()) {
            (Some(first), Some(last)) => (
                heads_text(&first.step.heads_before),
                heads_text(&last.step.heads_after),
            ),
            _ => {
                let status = engine.status()?;
                (heads_text(&status.current), heads_text(&status.current))
            }
        };
        let mut header = vec![
            "identity-migrate dry run: nothing below was executed".to_owned(),
            format!("Database: {}", database.redacted()),
            format!("From {from} to {to}: {} step(s)", script.steps.len()),
        ];
        if from_nothing {
            header.push(
                "The database file does not exist yet: planned from an empty database (nothing was created)."
                    .to_owned(),
            );
        }
        if run.backup && !script.steps.is_empty() {
            header.push(format!(
                "A verified backup would be taken first, into {} (none was taken now).",
                cfg.backup_dir.display()
            ));
        }
        let framing = if database.dialect() == Dialect::Sqlite {
            Framing::SqliteShell
        } else {
            Framing::Transactions
        };
        output::script(out, &header, &script, framing).map_err(io_error)?;
        return Ok(());
    }
    if run.backup {
        // Only when there is something to run: the backup is the price of a change.
        if engine.script(&intent)?.steps.is_empty() {
            log::info!("nothing to migrate: no backup taken");
        } else if created_now {
            log::info!("the database is created by this migration: nothing to back up");
        } else {
            let taken = match &database {
                Database::Postgres(settings) => {
                    take_backup(settings, &backup_request(cfg, None, "custom", 1)?)?.path
                }
                Database::Sqlite(target) => crate::sqlite_backup::take(cfg, target, None)?.path,
            };
            writeln!(out, "backup   {} (verified)", taken.display()).map_err(io_error)?;
        }
    }
    let started = Instant::now();
    let mut spinner: Option<indicatif::ProgressBar> = None;
    let mut on_event = |event: &Event| {
        // A spinner while a step runs (a long revision shows it is alive), gone before its line.
        if let Event::StepStarted(step) | Event::Retrying { step, .. } = event {
            let doing = match step.direction {
                Direction::Up => "applying",
                Direction::Down => "reverting",
            };
            if let Some(bar) = spinner.take() {
                bar.finish_and_clear();
            }
            spinner = crate::progress::spinner(false, &format!("{doing} {}", step.revision));
        }
        // A backfill's progress in the step's spinner (the log has it too, every few seconds).
        if let Event::BatchProgress {
            step,
            table,
            rows_done,
            estimate,
        } = event
        {
            if let Some(bar) = &spinner {
                let of = match estimate {
                    Some(total) if *total > 0 => format!(
                        " of about {total} ({:.0}%)",
                        (*rows_done as f64 * 100.0 / *total as f64).min(100.0)
                    ),
                    _ => String::new(),
                };
                bar.set_message(format!(
                    "applying {}: backfill of {table}: {rows_done} row(s){of}",
                    step.revision
                ));
            }
        }
        if let Event::StepFinished(_) = event {
            if let Some(bar) = spinner.take() {
                bar.finish_and_clear();
            }
        }
        let line = match event {
            Event::Accepted(ids) => Some(
                ids.iter()
                    .map(|id| {
                        format!("accepted {id}  its new checksum is recorded (--accept-changed)")
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Event::Planned { steps } if steps.is_empty() => None,
            Event::Planned { steps } => Some(format!("{} step(s) to run", steps.len())),
            Event::StepFinished(r) => Some(format!(
                "{} {}  {}  ({})",
                if r.step.direction == Direction::Up {
                    "applied "
                } else {
                    "reverted"
                },
                r.step.revision,
                r.message,
                duration_text(r.elapsed.as_secs_f64() * 1000.0)
            )),
            _ => None,
        };
        if let Some(line) = line {
            // A closed stdout must not stop a migration halfway: the database is what matters.
            let _ = writeln!(out, "{line}");
        }
    };
    let reports = engine.run(&intent, &mut on_event);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let reports = reports?;
    let status = engine.status()?;
    let at = heads_text(&status.current);
    let head_note = if status.at_head { " (head)" } else { "" };
    let summary = match reports.first().map(|r| r.step.direction) {
        None => format!("Nothing to do: the database is at {at}{head_note}."),
        Some(Direction::Up) => format!(
            "Applied {} revision(s) in {}; the database is at {at}{head_note}.",
            reports.len(),
            duration_text(started.elapsed().as_secs_f64() * 1000.0)
        ),
        Some(Direction::Down) => format!(
            "Reverted {} revision(s) in {}; the database is at {at}{head_note}.",
            reports.len(),
            duration_text(started.elapsed().as_secs_f64() * 1000.0)
        ),
    };
    writeln!(out, "{summary}").map_err(io_error)
}

/// A revision named on the command line is taken as written: `abc ` is not `abc` (a stray
/// space usually means a pasted or templated value went wrong).
fn exact_revision(rev: &str, what: &str) -> Result<(), CliError> {
    if rev.trim() != rev || rev.is_empty() {
        return Err(CliError::Config(format!(
            "{what} {rev:?} has leading or trailing white space (or is empty): give the revision exactly"
        )));
    }
    Ok(())
}

/// `migrate-to` only goes up: a target the database is already past would be "nothing to do",
/// which hides a mistake (the operator meant `rollback`).
fn refuse_upgrade_below_current(
    engine: &mut Engine<'_>,
    graph: &RevisionGraph,
    intent: &Intent,
) -> Result<(), CliError> {
    let Intent::Upgrade(target) = intent else {
        return Ok(());
    };
    let current = engine.status()?.current;
    let Ok(Target::Revisions(ids)) = graph.resolve(target, &current) else {
        return Ok(());
    };
    let Ok(applied) = graph.applied(&current) else {
        return Ok(());
    };
    if ids != current && ids.iter().all(|id| applied.contains(id)) {
        return Err(CliError::Config(format!(
            "revision {} is below the current revision {}: migrate-to only goes up; to go down, run `identity-migrate rollback {target}`",
            heads_text(&ids),
            heads_text(&current)
        )));
    }
    Ok(())
}

fn generate_sql(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    args: &GenerateSqlArgs,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let dialect = match args.dialect {
        Some(DialectArg::Postgres) => Dialect::Postgres,
        Some(DialectArg::Sqlite) => Dialect::Sqlite,
        None => database.dialect(),
    };
    exact_revision(&args.to, "--to")?;
    if let Some(rev) = &args.from {
        exact_revision(rev, "--from")?;
    }
    let from: Heads = match &args.from {
        Some(rev) => match graph
            .resolve(rev, &Heads::new())
            .map_err(EngineError::from)?
        {
            Target::Base => Heads::new(),
            Target::Revisions(ids) => ids,
        },
        None => current_or_base(cfg, graph, &database)?,
    };
    let target = graph.resolve(&args.to, &from).map_err(EngineError::from)?;
    let applied = graph.applied(&from).map_err(EngineError::from)?;
    let downward = match &target {
        Target::Base => !from.is_empty(),
        Target::Revisions(ids) => ids.iter().all(|id| applied.contains(id)) && ids != &from,
    };
    let to_text = match &target {
        Target::Base => "base".to_owned(),
        Target::Revisions(ids) => heads_text(ids),
    };
    // Resolved ids, so a relative `--to` means the same in the plan as in the header; several
    // ids only come from `heads`.
    let to_arg = match &target {
        Target::Base => "base".to_owned(),
        Target::Revisions(ids) if ids.len() > 1 => "heads".to_owned(),
        Target::Revisions(ids) => heads_text(ids),
    };
    let intent = if downward {
        Intent::Downgrade(to_arg)
    } else {
        Intent::Upgrade(to_arg)
    };
    let state_sql = crate::database::state_sql(dialect);
    let steps =
        migrate_engine::prepare(graph, state_sql, &Options::new(identity()), &intent, &from)?;
    // A range with a revision that builds indexes concurrently cannot be one transaction: the
    // script then frames each revision as `migrate` runs it.
    let one_transaction = steps.iter().all(|s| s.transactional);
    let script = migrate_engine::Script {
        bootstrap: if from.is_empty() {
            state_sql.bootstrap_statements()
        } else {
            Vec::new()
        },
        steps,
        single_transaction: one_transaction,
    };
    let (dialect_name, apply, framing) = if dialect == Dialect::Sqlite {
        (
            "SQLite",
            "Apply with: sqlite3 -bail DATABASE < FILE (the script is one transaction: all or nothing)",
            Framing::SqliteShell,
        )
    } else if one_transaction {
        (
            "PostgreSQL",
            "Apply with: psql -v ON_ERROR_STOP=1 -1 -f FILE (one transaction: all or nothing)",
            Framing::Bare,
        )
    } else {
        (
            "PostgreSQL",
            "Apply with: psql -v ON_ERROR_STOP=1 -f FILE (each revision in its own transaction, as `migrate` runs them; a concurrent index build outside any)",
            Framing::Transactions,
        )
    };
    let mut header = vec![
        "identity-migrate generate-sql".to_owned(),
        format!(
            "Range: {} -> {to_text} ({} step(s)), {dialect_name}",
            heads_text(&from),
            script.steps.len()
        ),
        apply.to_owned(),
    ];
    if script.steps.iter().any(|s| !s.transactional) {
        header.push(
            "WARNING: some statements cannot run in a transaction: apply without -1".to_owned(),
        );
    }
    match &args.output {
        Some(path) => {
            let mut buffer = Vec::new();
            output::script(&mut buffer, &header, &script, framing).map_err(io_error)?;
            std::fs::write(path, buffer)
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            log::info!("wrote {} ({} step(s))", path.display(), script.steps.len());
            Ok(())
        }
        None => output::script(out, &header, &script, framing).map_err(io_error),
    }
}

/// The database's current revision when it can be reached, else base (said on stderr).
fn current_or_base(
    cfg: &Resolved,
    graph: &RevisionGraph,
    database: &Database,
) -> Result<Heads, CliError> {
    if database.is_missing_file() {
        log::info!(
            "{} does not exist yet: generating from base",
            database.redacted()
        );
        return Ok(Heads::new());
    }
    match database.connect(cfg, false) {
        Ok(mut connected) => {
            let heads = connected.driver().read_heads()?;
            identity_schema::withdrawal()
                .applied(graph, &heads)
                .map_err(EngineError::from)?;
            log::info!(
                "generating from the current revision of {}: {}",
                database.redacted(),
                heads_text(&heads)
            );
            Ok(heads)
        }
        // A connection that fails is a failure, as for every other reading command: a script
        // "from base" for a database that is not at base would be dangerous. `--from base`
        // asks for that script explicitly.
        Err(CliError::Engine(EngineError::Driver(e))) => Err(CliError::Io(format!(
            "{e} (to generate the script without a connection, pass --from REV, or --from base for the whole chain)"
        ))),
        Err(e) => Err(e),
    }
}

pub(crate) fn backup_request(
    cfg: &Resolved,
    output: Option<&std::path::Path>,
    format: &str,
    jobs: u32,
) -> Result<migrate_backup::BackupRequest, CliError> {
    Ok(migrate_backup::BackupRequest {
        dir: cfg.backup_dir.clone(),
        output: output.map(std::path::Path::to_owned),
        format: migrate_backup::Format::parse(format)
            .ok_or_else(|| CliError::Config(format!("unknown backup format {format:?}")))?,
        jobs,
        compress: None,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

pub(crate) fn take_backup(
    settings: &ConnectionSettings,
    request: &migrate_backup::BackupRequest,
) -> Result<migrate_backup::Backup, CliError> {
    let mut line = crate::progress::Transfer::new("backup");
    let taken = migrate_backup::backup(settings, request, &mut |p| line.update(p))?;
    drop(line);
    log::info!(
        "backup {} written and verified: {} table(s), {} row(s), {:.1} MB",
        taken.path.display(),
        taken.manifest.tables.len(),
        taken.manifest.tables.values().sum::<u64>(),
        taken.manifest.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
    );
    Ok(taken)
}

fn backup(out: &mut dyn Write, cfg: &Resolved, args: &BackupArgs) -> Result<(), CliError> {
    let settings = settings(cfg)?;
    let format = args.format.as_deref().unwrap_or("directory");
    let mut request = backup_request(cfg, args.output.as_deref(), format, args.jobs)?;
    if args.compress.is_some() && request.format == migrate_backup::Format::Plain {
        return Err(CliError::Config(
            "--compress applies to the custom and directory formats, not to plain".to_owned(),
        ));
    }
    request.compress = args.compress;
    let taken = take_backup(&settings, &request)?;
    let m = &taken.manifest;
    let rows = [
        ("backup", taken.path.display().to_string()),
        (
            "manifest",
            migrate_backup::manifest_path(&taken.path)
                .display()
                .to_string(),
        ),
        (
            "format",
            format!(
                "{}{}",
                m.format,
                if request.format == migrate_backup::Format::Plain {
                    String::new()
                } else {
                    format!(
                        ", zlib level {}",
                        request
                            .compress
                            .unwrap_or_else(|| migrate_backup::default_compression(request.format))
                    )
                }
            ),
        ),
        (
            "revision",
            if m.revisions.is_empty() {
                "base".to_owned()
            } else {
                m.revisions.join(", ")
            },
        ),
        ("tables", m.tables.len().to_string()),
        ("rows", m.tables.values().sum::<u64>().to_string()),
        (
            "size",
            format!(
                "{:.1} MB",
                m.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
            ),
        ),
        (
            "verified",
            "a full read of the archive as it was written: every table's rows and data digest"
                .to_owned(),
        ),
    ];
    output::key_values(out, &rows).map_err(io_error)
}

fn backup_verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &std::path::Path,
    full: bool,
) -> Result<(), CliError> {
    // The archive is read with the client tools of the server it came from, found by the manifest.
    let manifest = migrate_backup::read_manifest(path)?;
    let major = manifest
        .server_version
        .split(['.', ' '])
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    let tools = match migrate_postgres::backup::find_tools(major) {
        Ok(tools) => tools,
        Err(e) if cfg.database_url.is_some() => {
            log::debug!("{e}; using the tools of the configured server");
            migrate_backup::tools_for(&settings(cfg)?)?
        }
        Err(e) => return Err(e.into()),
    };
    let check = if full {
        migrate_backup::Check::Full
    } else {
        migrate_backup::Check::Fast
    };
    let spinner = crate::progress::spinner(false, &format!("verifying {}", path.display()));
    let manifest = migrate_backup::verify(path, &tools, check);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let manifest = manifest?;
    let files = manifest.files.len();
    let rows = manifest.tables.values().sum::<u64>();
    let tables = manifest.tables.len();
    if full || manifest.format == "plain" {
        writeln!(
            out,
            "{}: intact ({files} file(s) match their SHA-256; {rows} row(s) in {tables} table(s) read back, every table's data digest matching)",
            path.display()
        )
    } else {
        writeln!(
            out,
            "{}: intact ({files} file(s) match their SHA-256, decoded in full when written; table of contents readable, with the {tables} table(s) of the manifest; --full decodes it again)",
            path.display()
        )
    }
    .map_err(io_error)
}

fn restore(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &std::path::Path,
    options: &migrate_backup::RestoreOptions,
) -> Result<(), CliError> {
    let settings = settings(cfg)?;
    let safety = backup_request(cfg, None, "custom", 1)?;
    let mut line = crate::progress::Transfer::new("restore");
    let restored =
        migrate_backup::restore(&settings, path, options, &safety, &mut |p| line.update(p))?;
    drop(line);
    match &restored.method {
        migrate_backup::Method::Swap => writeln!(
            out,
            "restored with {} parallel session(s) into a scratch database, checked, and swapped in atomically",
            options.jobs
        ),
        migrate_backup::Method::InPlace(why) => writeln!(
            out,
            "restored in place in one transaction ({why})"
        ),
    }
    .map_err(io_error)?;
    if let Some(previous) = &restored.previous {
        writeln!(
            out,
            "previous database kept as {previous} (DROP DATABASE \"{previous}\" once it is no longer needed)"
        )
        .map_err(io_error)?;
    }
    if let Some(safety) = &restored.safety_backup {
        writeln!(
            out,
            "safety backup of the previous content: {}",
            safety.path.display()
        )
        .map_err(io_error)?;
    }
    writeln!(
        out,
        "restored {} into {}: {} row(s) in {} table(s), matching the manifest; the database is at {}",
        path.display(),
        settings.redacted(),
        restored.manifest.tables.values().sum::<u64>(),
        restored.manifest.tables.len(),
        if restored.revisions.is_empty() { "base".to_owned() } else { restored.revisions.join(", ") }
    )
    .map_err(io_error)
}

fn seed_data(out: &mut dyn Write, cfg: &Resolved, users: u64, seed: u64) -> Result<(), CliError> {
    let settings = match Database::resolve(cfg)? {
        Database::Postgres(settings) => settings,
        Database::Sqlite(target) => {
            return Err(CliError::Config(format!(
                "seed loads PostgreSQL with COPY, and {target} is SQLite: point DATABASE_URL at a PostgreSQL database"
            )))
        }
    };
    let mut client = migrate_postgres::connect_client(&settings, "identity-migrate seed")?;
    migrate_postgres::interrupt::cancel_on_interrupt(&client);
    let scale = identity_seed::Scale::users(users);
    let spinner = crate::progress::spinner(false, "seeding");
    let report = identity_seed::seed_with_progress(&mut client, &scale, seed, &mut |p| match p {
        identity_seed::Progress::Loaded {
            table,
            rows,
            elapsed,
        } => {
            if let Some(bar) = &spinner {
                bar.set_message(format!("seeding: loaded {table}"));
            }
            log::info!(
                "loaded {rows} row(s) into {table} ({:.1} s)",
                elapsed.as_secs_f64()
            );
        }
        identity_seed::Progress::Rebuilt { objects, elapsed } => {
            log::info!(
                "rebuilt {objects} index(es) and key(s) ({:.1} s)",
                elapsed.as_secs_f64()
            );
        }
    })
    .map_err(|e| CliError::Config(format!("cannot seed {}: {e}", settings.redacted())));
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let report = report?;
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|(table, n)| vec![table.clone(), n.to_string()])
        .collect();
    output::table(out, &["TABLE", "ROWS"], &rows).map_err(io_error)?;
    writeln!(out, "seeded {} row(s)", report.total()).map_err(io_error)
}

fn check(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (connected, database) = connect(cfg)?;
    let report = engine(connected, graph, cfg, None).check()?;
    if json {
        let value = json!({
            "database": database.redacted(),
            "current": report.current,
            "clean": report.is_clean(),
            "pending": report.pending,
            "changed": report.changed,
            "differences": report.differences.iter().map(|d| json!({
                "change": d.change.to_string(),
                "object": d.object.to_string(),
                "name": d.name,
                "detail": d.detail,
                "text": d.to_string(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}").map_err(io_error)?;
    } else {
        writeln!(out, "database  {}", database.redacted()).map_err(io_error)?;
        writeln!(out, "revision  {}", heads_text(&report.current)).map_err(io_error)?;
        for d in &report.differences {
            writeln!(out, "drift     {d}").map_err(io_error)?;
        }
        for id in &report.pending {
            writeln!(out, "pending   {id} {}", message_of(graph, id)).map_err(io_error)?;
        }
        for id in &report.changed {
            writeln!(
                out,
                "changed   {id}: edited after it was applied (checksum differs)"
            )
            .map_err(io_error)?;
        }
        if report.is_clean() {
            writeln!(
                out,
                "clean     the schema is exactly what revision {} defines",
                heads_text(&report.current)
            )
            .map_err(io_error)?;
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Drift(format!(
            "not clean: {} difference(s), {} pending revision(s), {} changed revision(s)",
            report.differences.len(),
            report.pending.len(),
            report.changed.len()
        )))
    }
}

fn verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (mut connected, database) = connect(cfg)?;
    let mut items: Vec<(&str, bool, String)> = vec![("connect", true, database.redacted())];
    let security = connected.security()?;
    if let Some(security) = &security {
        if security.weak_for_remote() {
            log::warn!(
                "{} is not this machine, and sslmode={} does not check that the server is the one named: use sslmode=verify-full with sslrootcert",
                database.redacted(),
                security.mode
            );
        }
        items.push(("tls", true, security.to_string()));
    }
    let version = connected.driver().server_version()?;
    items.push(("server", true, version));
    let health = connected.health()?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    items.push((
        "revision",
        status.at_head,
        if status.at_head {
            format!("{} (head)", heads_text(&status.current))
        } else {
            format!(
                "{} with {} pending: run `identity-migrate migrate`",
                heads_text(&status.current),
                status.pending
            )
        },
    ));
    let report = engine.check()?;
    let drift = report.differences.len() + report.changed.len();
    items.push((
        "schema",
        drift == 0,
        if drift == 0 {
            "matches its revision".to_owned()
        } else {
            format!("{drift} difference(s): run `identity-migrate check`")
        },
    ));
    items.push(health);
    let ok = items.iter().all(|(_, ok, _)| *ok);
    if json {
        let value = json!({
            "ok": ok,
            "checks": items.iter().map(|(name, ok, detail)| json!({"check": name, "ok": ok, "detail": detail})).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}").map_err(io_error)?;
    } else {
        for (name, ok, detail) in &items {
            writeln!(
                out,
                "{:<5} {name:<9} {detail}",
                if *ok { "ok" } else { "FAIL" }
            )
            .map_err(io_error)?;
        }
    }
    if ok {
        Ok(())
    } else {
        let failed: Vec<&str> = items
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(n, _, _)| *n)
            .collect();
        Err(CliError::Drift(format!(
            "verify failed: {}",
            failed.join(", ")
        )))
    }
}

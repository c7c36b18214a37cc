//! One function per command: connect, ask the engine, print the result. One file per group
//! of commands; this one dispatches and holds what they share.

mod backup;
mod check;
mod generate_sql;
mod migrate;
mod seed;
mod status;

use backup::{backup, backup_verify, restore};
pub(crate) use backup::{safety_request, take_backup};
use check::{check, verify};
use generate_sql::generate_sql;
use migrate::migrate;
use seed::seed_data;
use status::{list, status};

use crate::args::{BackupCommand, Cli, Command, MigrateArgs};
use crate::config::{self, Resolved};
use crate::error::CliError;
use crate::open::{Connected, Database};
use crate::report::Format;
use migrate_core::RevisionGraph;
use migrate_engine::{Engine, Intent, Options, RunIdentity};

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
            let at_head = status(&mut out, &cfg, &graph, Format::json(a.json))?;
            match at_head {
                Some(pending) if a.exit_code => Err(CliError::Pending(format!(
                    "{pending} revision(s) pending (--exit-code)"
                ))),
                _ => Ok(()),
            }
        }
        Command::List(a) => list(&mut out, &cfg, &graph, Format::json(a.json)),
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
            Some(BackupCommand::Verify { path, full, json }) => {
                backup_verify(&mut out, &cfg, path, *full, Format::json(*json))
            }
            None => backup(&mut out, &cfg, &a),
        },
        Command::Restore {
            path,
            yes,
            jobs,
            in_place,
            json,
        } => restore(
            &mut out,
            &cfg,
            &path,
            &migrate_backup::RestoreOptions {
                replace: yes,
                request: migrate_backup::RestoreRequest {
                    in_place,
                    jobs,
                    session_wait: cfg.lock_wait,
                },
            },
            Format::json(json),
        ),
        Command::Seed { users, seed } => seed_data(&mut out, &cfg, users, seed),
        Command::Check(a) => check(&mut out, &cfg, &graph, Format::json(a.json)),
        Command::Verify(a) => verify(&mut out, &cfg, &graph, Format::json(a.json)),
        Command::Revision {
            message,
            autogenerate,
            dir,
            json,
        } => crate::scaffold::revision(
            &mut out,
            &graph,
            &message,
            autogenerate,
            dir.as_deref(),
            Format::json(json),
        ),
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

/// The configured database and a connection to it, for a command that only reads (a database
/// file not created yet reads as the empty database it would start as, and is not created).
pub(crate) fn connect(cfg: &Resolved) -> Result<(Connected, Database), CliError> {
    let database = Database::resolve(cfg)?;
    Ok((database.connect_to_read(cfg)?, database))
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

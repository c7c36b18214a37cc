//! One function per command: connect, ask the engine, print the result. One file per group
//! of commands; this one only dispatches, and `session` holds what they start from.

mod backup;
mod check;
mod generate_sql;
mod lint;
mod migrate;
mod promote;
mod revision;
mod seed;
mod session;
mod shell;
mod status;
mod trace;
mod wait;

use backup::{backup, backup_verify, restore};
use check::{check, verify};
use generate_sql::generate_sql;
use migrate::migrate;
use seed::seed_data;
use status::{list, status};

use crate::args::{BackupCommand, Cli, Command};
use crate::config::{self};
use crate::error::CliError;
use crate::report::Format;
use migrate_engine::Intent;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let cfg = config::resolve(&cli.global, &|k| std::env::var(k).ok())?;
    let graph = identity_schema::graph();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Status(a) if a.all_environments => {
            promote::status_all(&mut out, &cli.global, &graph, &a)
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
        } => revision::revision(
            &mut out,
            &graph,
            &message,
            autogenerate,
            dir.as_deref(),
            Format::json(json),
        ),
        Command::Lint(a) => lint::run(&mut out, &cfg, &graph, &a),
        Command::Trace(a) => trace::run(&mut out, &cfg, &graph, &a),
        Command::Wait(a) => wait::wait(
            &mut out,
            &cfg,
            &graph,
            &a.revision,
            std::time::Duration::from_secs(a.timeout),
            a.json,
        ),
        Command::Promote(a) => promote::promote(&mut out, &cli.global, &graph, &a),
        Command::Completions { shell } => shell::completions(&mut out, &graph, shell),
        Command::Man => shell::man(&mut out),
    }
}

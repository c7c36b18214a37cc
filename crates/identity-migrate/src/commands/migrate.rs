//! `migrate`, `migrate-to` and `rollback`: the engine run, with a backup first.

use super::{engine, io_error, safety_request, take_backup};
use crate::args::MigrateArgs;
use crate::config::Resolved;
use crate::error::CliError;
use crate::open::Database;
use crate::output::{self, duration_text, heads_text, Framing};
use migrate_core::{Dialect, Direction, RevisionGraph, Target};
use migrate_engine::{Engine, Event, Intent};
use std::io::Write;
use std::time::Instant;

pub(super) fn migrate(
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
        let empty = Database::empty().connect(cfg, true)?;
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
    refuse_rollback_while_half_way(&mut engine, &intent)?;
    if cfg.database_url.is_none() && !run.dry_run {
        // Said even with -q: a deployment whose DATABASE_URL failed to mount must not pass for
        // a migration of its database.
        eprintln!(
            "note: no database configured: migrating the embedded SQLite database ./{} (set DATABASE_URL or pass --database-url for PostgreSQL)",
            crate::open::DEFAULT_SQLITE_FILE
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
            let taken = take_backup(cfg, &database, &safety_request(cfg))?.path;
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
pub(super) fn exact_revision(rev: &str, what: &str) -> Result<(), CliError> {
    if rev.trim() != rev || rev.is_empty() {
        return Err(CliError::Config(format!(
            "{what} {rev:?} has leading or trailing white space (or is empty): give the revision exactly"
        )));
    }
    Ok(())
}

/// A rollback while an upgrade stopped half-way would run downgrades over a schema that is
/// neither the revision's nor its parent's; finishing the upgrade first gives it one.
fn refuse_rollback_while_half_way(
    engine: &mut Engine<'_>,
    intent: &Intent,
) -> Result<(), CliError> {
    if !matches!(intent, Intent::Downgrade(_)) {
        return Ok(());
    }
    match engine
        .half_way()?
        .into_iter()
        .find(|h| h.direction == Direction::Up)
    {
        Some(h) => Err(CliError::Refused(format!(
            "{} stopped half-way through its upgrade ({} phase(s) committed): run `identity-migrate migrate` first to finish it, then roll back",
            h.revision, h.phases_done
        ))),
        None => Ok(()),
    }
}

/// `migrate-to` only goes up: a target the database is already past would be "nothing to do",
/// which hides a mistake (the operator meant `rollback`).
pub(super) fn refuse_upgrade_below_current(
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

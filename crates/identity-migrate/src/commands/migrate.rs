//! `migrate`, `migrate-to` and `rollback`: the engine run, with a backup first.

use super::backup::{safety_request, take_backup};
use super::session::engine;
use crate::args::MigrateArgs;
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::Database;
use crate::output::{heads_text, Framing};
use crate::report::{self, Format};
use migrate_core::{Direction, RevisionGraph, Target};
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
    let format = Format::json(run.json);
    let target = match &intent {
        Intent::Upgrade(t) | Intent::Downgrade(t) => t,
    };
    exact_revision(target, "REV")?;
    // Lint refuses a dangerous plan before anything is touched (created, backed up, locked).
    super::lint::guard(out, cfg, graph, &intent, run)?;
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
                first.step.heads_before.iter().cloned().collect(),
                last.step.heads_after.iter().cloned().collect(),
            ),
            _ => {
                let current: Vec<String> = engine.status()?.current.into_iter().collect();
                (current.clone(), current)
            }
        };
        // The dialect's own framing: what its driver executes around each transaction.
        let framing = Framing::Transactions;
        let report = report::DryRun {
            dry_run: true,
            database: database.redacted(),
            from,
            to,
            database_missing: from_nothing,
            backup_into: (run.backup && !script.steps.is_empty())
                .then(|| cfg.backup_dir.display().to_string()),
            bootstrap: script.bootstrap.clone(),
            steps: script.steps.iter().map(report::PlannedStep::of).collect(),
            script,
            framing,
        };
        report::emit(out, &report, format).map_err(io_error)?;
        return Ok(());
    }
    let text = format == Format::Text;
    let mut backup = None;
    if run.backup {
        // Only when there is something to run: the backup is the price of a change.
        if engine.script(&intent)?.steps.is_empty() {
            log::info!("nothing to migrate: no backup taken");
        } else if created_now {
            log::info!("the database is created by this migration: nothing to back up");
        } else {
            let taken = take_backup(cfg, &database, &safety_request(cfg))?.path;
            let taken = taken.display().to_string();
            if text {
                report::Progress::Backup(&taken)
                    .write_text(out)
                    .map_err(io_error)?;
            }
            backup = Some(taken);
        }
    }
    let started = Instant::now();
    let mut accepted = Vec::new();
    let mut steps = Vec::new();
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
            spinner = crate::progress::spinner(!text, &format!("{doing} {}", step.revision));
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
        let progress = match event {
            Event::Accepted(ids) => {
                accepted.extend(ids.iter().cloned());
                Some(report::Progress::Accepted(ids))
            }
            Event::Planned { steps } => Some(report::Progress::Planned(steps.len())),
            Event::StepFinished(r) => {
                steps.push(report::MigratedStep {
                    revision: r.step.revision.clone(),
                    direction: r.step.direction.as_str().to_owned(),
                    message: r.message.clone(),
                    duration_ms: r.elapsed.as_secs_f64() * 1000.0,
                });
                steps.last().map(report::Progress::Step)
            }
            _ => None,
        };
        if let Some(progress) = progress.filter(|_| text) {
            // A closed stdout must not stop a migration halfway: the database is what matters.
            let _ = progress.write_text(out);
        }
    };
    let reports = engine.run(&intent, &mut on_event);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let reports = reports?;
    let status = engine.status()?;
    let report = report::Migration {
        backup,
        accepted,
        direction: reports
            .first()
            .map(|r| r.step.direction.as_str().to_owned()),
        steps,
        current: status.current.into_iter().collect(),
        at_head: status.at_head,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    report::emit(out, &report, format).map_err(io_error)
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

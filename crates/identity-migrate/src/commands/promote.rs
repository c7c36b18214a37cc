//! The environments of identity-migrate.toml together: `promote --from ENV --to ENV` and
//! `status --all-environments`.
//!
//! Promotion applies to the target exactly the revisions the source is at, never beyond, as
//! Flyway's and Atlas's promotions do. It refuses (exit 3, nothing changed) when the source is
//! not clean (drift, edited revisions, an unhealthy schema), when the target is not clean, and
//! when the target has a revision the source lacks (the source is behind it, or the two
//! diverged): a promotion never takes a database back. Before the first statement it takes
//! the target's verified backup, unless `--no-backup`.

use super::backup::{safety_request, take_backup};
use super::session::engine;
use crate::args::{GlobalArgs, PromoteArgs, StatusArgs};
use crate::config::{self, Resolved};
use crate::error::io_error;
use crate::error::CliError;
use crate::open::Database;
use crate::output::{self, heads_text};
use migrate_core::{Direction, Heads, ResolveError, RevisionGraph};
use migrate_engine::{EngineError, Event, Intent};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// One named environment, resolved, with its database.
struct Environment {
    name: String,
    cfg: Resolved,
    database: Database,
}

impl Environment {
    fn resolve(global: &GlobalArgs, name: &str) -> Result<Environment, CliError> {
        let cfg = config::resolve_environment(global, name, &process_env)?;
        if cfg.database_url.is_none() {
            return Err(CliError::Config(format!(
                "environment {name:?} names no database: set its database_url or database_url_env in {}",
                config::CONFIG_FILE
            )));
        }
        let database = Database::resolve(&cfg)?;
        Ok(Environment {
            name: name.to_owned(),
            cfg,
            database,
        })
    }
}

/// Every revision `current` has applied, as the identity graph (and its withdrawn series) sees it.
fn applied(graph: &RevisionGraph, current: &Heads) -> Result<BTreeSet<String>, CliError> {
    identity_schema::withdrawal()
        .applied(graph, current)
        .map_err(|e| CliError::Engine(EngineError::from(e)))
}

/// Why a clean-check failed, or `None` when it passed.
fn unclean(report: &migrate_engine::CheckReport, health: &(&str, bool, String)) -> Option<String> {
    let mut problems = Vec::new();
    if !report.differences.is_empty() {
        problems.push(format!(
            "{} difference(s) from its revision (first: {})",
            report.differences.len(),
            report.differences[0]
        ));
    }
    if !report.changed.is_empty() {
        problems.push(format!(
            "revision(s) edited after they were applied: {}",
            report.changed.join(", ")
        ));
    }
    if !health.1 {
        problems.push(format!("{}: {}", health.0, health.2));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Runs `promote`.
pub fn promote(
    out: &mut dyn Write,
    global: &GlobalArgs,
    graph: &RevisionGraph,
    args: &PromoteArgs,
) -> Result<(), CliError> {
    if global.database_url.is_some() || global.environment.is_some() {
        return Err(CliError::Config(
            "promote works on the environments it names: drop --database-url and --env, and use --from and --to".to_owned(),
        ));
    }
    if args.from == args.to {
        return Err(CliError::Config(format!(
            "--from and --to both name {:?}: promote from one environment to another",
            args.from
        )));
    }
    let source = Environment::resolve(global, &args.from)?;
    let target = Environment::resolve(global, &args.to)?;
    if source.database.redacted() == target.database.redacted() {
        return Err(CliError::Config(format!(
            "environments {:?} and {:?} are the same database ({}): nothing to promote",
            source.name,
            target.name,
            source.database.redacted()
        )));
    }

    // The source: where it is, and that it is what its revision says.
    let mut connected = source.database.connect(&source.cfg, false)?;
    let health = connected.health()?;
    let report = engine(connected, graph, &source.cfg, None).check()?;
    if let Some(problems) = unclean(&report, &health) {
        return Err(CliError::Refused(format!(
            "source {} ({}) is not clean: {problems}; run `identity-migrate --env {} check`, nothing was promoted",
            source.name,
            source.database.redacted(),
            source.name
        )));
    }
    let source_at = report.current;
    let source_applied = applied(graph, &source_at)?;

    // The target: clean too, and nothing in it that the source lacks.
    let mut connected = target.database.connect(&target.cfg, false)?;
    let health = connected.health()?;
    let mut target_engine = engine(connected, graph, &target.cfg, None);
    let report = match target_engine.check() {
        Err(EngineError::Resolve(ResolveError::UnknownCurrent(ids))) => {
            return Err(CliError::Refused(format!(
                "target {} is at {}, which this identity-migrate does not know (a newer release migrated it): the source lacks it; nothing was promoted",
                target.name,
                ids.join(", ")
            )))
        }
        other => other?,
    };
    if let Some(problems) = unclean(&report, &health) {
        return Err(CliError::Refused(format!(
            "target {} ({}) is not clean: {problems}; run `identity-migrate --env {} check`, nothing was promoted",
            target.name,
            target.database.redacted(),
            target.name
        )));
    }
    let target_before = report.current;
    let target_applied = applied(graph, &target_before)?;
    let lacking: Vec<&String> = target_applied.difference(&source_applied).collect();
    if !lacking.is_empty() {
        let how = if target_applied.is_superset(&source_applied) {
            "is behind"
        } else {
            "has diverged from"
        };
        return Err(CliError::Refused(format!(
            "source {} (at {}) {how} target {} (at {}): the target has {} revision(s) the source lacks ({}); promote never takes a database back, nothing was promoted",
            source.name,
            heads_text(&source_at),
            target.name,
            heads_text(&target_before),
            lacking.len(),
            lacking.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let to_apply: Vec<String> = graph
        .revisions()
        .iter()
        .filter(|r| source_applied.contains(&r.id) && !target_applied.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();

    let mut backup = None;
    let mut applied_now: Vec<String> = Vec::new();
    if !to_apply.is_empty() && !args.dry_run {
        if !args.no_backup {
            let path =
                take_backup(&target.cfg, &target.database, &safety_request(&target.cfg))?.path;
            if !args.json {
                writeln!(out, "backup   {} (verified)", path.display()).map_err(io_error)?;
            }
            backup = Some(path);
        }
        let json = args.json;
        let mut on_event = |event: &Event| {
            if let Event::StepFinished(r) = event {
                if r.step.direction == Direction::Up {
                    applied_now.push(r.step.revision.clone());
                    if !json {
                        let _ = writeln!(out, "applied  {}  {}", r.step.revision, r.message);
                    }
                }
            }
        };
        // One upgrade per head of the source: exactly its revisions, never beyond.
        for head in &source_at {
            target_engine.run(&Intent::Upgrade(head.clone()), &mut on_event)?;
        }
    }
    let target_after = if args.dry_run {
        target_before.clone()
    } else {
        target_engine.status()?.current
    };

    if args.json {
        let value = json!({
            "from": {"environment": source.name, "database": source.database.redacted(), "revision": source_at},
            "to": {"environment": target.name, "database": target.database.redacted(), "before": target_before, "after": target_after},
            "to_apply": to_apply,
            "applied": applied_now,
            "backup": backup.as_ref().map(|p| p.display().to_string()),
            "dry_run": args.dry_run,
        });
        writeln!(out, "{value}").map_err(io_error)?;
        return Ok(());
    }
    let rows = vec![
        vec![
            "from".to_owned(),
            source.name.clone(),
            source.database.redacted(),
            heads_text(&source_at),
            heads_text(&source_at),
        ],
        vec![
            "to".to_owned(),
            target.name.clone(),
            target.database.redacted(),
            heads_text(&target_before),
            heads_text(&target_after),
        ],
    ];
    output::table(
        out,
        &["", "ENVIRONMENT", "DATABASE", "BEFORE", "AFTER"],
        &rows,
    )
    .map_err(io_error)?;
    let summary = if to_apply.is_empty() {
        format!(
            "Nothing to promote: {} is already at {}.",
            target.name,
            heads_text(&source_at)
        )
    } else if args.dry_run {
        format!(
            "Dry run: {} revision(s) would be applied to {} ({}){}; nothing was changed.",
            to_apply.len(),
            target.name,
            to_apply.join(", "),
            if args.no_backup {
                ""
            } else {
                ", after a verified backup"
            }
        )
    } else {
        format!(
            "Promoted {} revision(s) from {} to {}: both are at {}.",
            applied_now.len(),
            source.name,
            target.name,
            heads_text(&target_after)
        )
    };
    writeln!(out, "{summary}").map_err(io_error)
}

/// What `status --all-environments` found for one environment.
struct Row {
    name: String,
    database: String,
    outcome: Result<migrate_engine::Status, String>,
}

fn look(global: &GlobalArgs, graph: &RevisionGraph, name: &str) -> Row {
    let env = match Environment::resolve(global, name) {
        Ok(env) => env,
        Err(e) => {
            return Row {
                name: name.to_owned(),
                database: String::new(),
                outcome: Err(e.to_string()),
            }
        }
    };
    let outcome = super::session::connect(&env.cfg)
        .and_then(|(connected, _)| Ok(engine(connected, graph, &env.cfg, None).status()?))
        .map_err(|e| e.to_string());
    Row {
        name: env.name,
        database: env.database.redacted(),
        outcome,
    }
}

/// Runs `status --all-environments`: one row per environment; exit 1 when one could not be
/// read, else (with `--exit-code`) 4 when one has revisions pending.
pub fn status_all(
    out: &mut dyn Write,
    global: &GlobalArgs,
    graph: &RevisionGraph,
    args: &StatusArgs,
) -> Result<(), CliError> {
    if global.database_url.is_some() || global.environment.is_some() {
        return Err(CliError::Config(
            "--all-environments reads every environment of the configuration: drop --database-url and --env".to_owned(),
        ));
    }
    let names = config::environment_names(global)?;
    let rows: Vec<Row> = names.iter().map(|n| look(global, graph, n)).collect();
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| match &r.outcome {
                Ok(s) => json!({
                    "environment": r.name, "database": r.database, "current": s.current,
                    "heads": s.heads, "pending": s.pending, "at_head": s.at_head, "error": null,
                }),
                Err(e) => json!({
                    "environment": r.name, "database": r.database, "current": null,
                    "heads": null, "pending": null, "at_head": null, "error": e,
                }),
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items)).map_err(io_error)?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| match &r.outcome {
                Ok(s) => vec![
                    r.name.clone(),
                    r.database.clone(),
                    heads_text(&s.current),
                    s.pending.to_string(),
                    if s.at_head {
                        "up to date".to_owned()
                    } else {
                        "pending".to_owned()
                    },
                ],
                Err(e) => vec![
                    r.name.clone(),
                    r.database.clone(),
                    "-".to_owned(),
                    "-".to_owned(),
                    format!("error: {e}"),
                ],
            })
            .collect();
        output::table(
            out,
            &["ENVIRONMENT", "DATABASE", "CURRENT", "PENDING", "STATE"],
            &table,
        )
        .map_err(io_error)?;
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(CliError::Unreachable(format!(
            "could not read environment(s) {}: see the table",
            failed.join(", ")
        )));
    }
    let pending: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome.as_ref().is_ok_and(|s| !s.at_head))
        .map(|r| r.name.as_str())
        .collect();
    if args.exit_code && !pending.is_empty() {
        return Err(CliError::Pending(format!(
            "revisions pending in {} (--exit-code)",
            pending.join(", ")
        )));
    }
    Ok(())
}

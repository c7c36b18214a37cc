//! `trace`: run revisions on a scratch copy of the database and report, per statement, the
//! locks it took, the relations it rewrote and how long each lock was held.
//!
//! The copy is made with `CREATE DATABASE .. TEMPLATE` (PostgreSQL copies the files; it needs
//! nobody else connected to the database) or, with `--from-backup`, by restoring a backup
//! whose checksums are verified first. The live database is only read (its revision); the
//! trace itself takes the locks it measures, so it never runs there. Each revision runs as
//! `migrate` runs it: one transaction (committed on the copy, so the next revision finds what
//! it needs, and held times end where `migrate`'s commit would), `CONCURRENTLY` statements
//! outside. The copy is dropped on every way out: success, failure, or a panic, and one left
//! by a killed trace is dropped by the next.
//!
//! The database machinery (the copy, its owner lock and sweep, the sessions, the measuring) is
//! the driver's, reached through [`crate::open::tracer`]; this module picks the revisions, runs
//! them through it and prints the report.

use super::lint::range_steps;
use crate::args::TraceArgs;
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::{Database, StatementTrace, TraceError};
use migrate_core::driver::DriverError;
use migrate_core::{Direction, Heads, RevisionGraph};
use migrate_engine::{EngineError, Intent, Options, RunIdentity};
use serde_json::json;
use std::io::Write;
use std::time::Instant;

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
    let mut tracer = crate::open::tracer(&live, cfg, args.from_backup.as_deref())?;
    let options = Options::new(RunIdentity {
        os_user: "identity-migrate trace".to_owned(),
        host: "scratch".to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    let state_sql = tracer.state_sql();
    let worker = tracer.driver();
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
        let worker = tracer.driver();
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
            tracer
                .trace_transaction(&p.statements, &p.bookkeeping)
                .map_err(|e| trace_failed(&p.step.revision, &e))?
        } else {
            let mut each = Vec::with_capacity(p.statements.len());
            for sql in &p.statements {
                each.push(
                    tracer
                        .trace_autocommit(sql)
                        .map_err(|e| trace_failed(&p.step.revision, &e))?,
                );
            }
            tracer
                .driver()
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
    let how = tracer.made_from();
    let name = tracer.scratch_name();
    // The copy is dropped before the report is printed, as the report says.
    drop(tracer);
    print(out, &database.redacted(), &how, &name, &traced, args.json)
}

fn trace_failed(revision: &str, e: &TraceError) -> CliError {
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
    use super::{one_line, print, TracedStep};
    use crate::open::{Relation, StatementTrace, TakenLock};
    use migrate_core::lock::LockMode;
    use migrate_core::Direction;
    use std::time::Duration;

    fn relation(name: &str, kind: char) -> Relation {
        Relation {
            schema: "public".to_owned(),
            name: name.to_owned(),
            kind,
        }
    }

    fn steps() -> Vec<TracedStep> {
        vec![
            TracedStep {
                revision: "aaaa00000001".to_owned(),
                message: "add users.locale".to_owned(),
                direction: Direction::Up,
                transactional: true,
                elapsed_ms: 12.34,
                statements: vec![StatementTrace {
                    sql: "ALTER TABLE users\n  ADD COLUMN locale text NOT NULL DEFAULT 'en'"
                        .to_owned(),
                    transactional: true,
                    elapsed: Duration::from_micros(4_250),
                    locks: vec![
                        TakenLock {
                            relation: relation("users", 'r'),
                            mode: LockMode::AccessExclusive,
                            held: Duration::from_micros(9_050),
                        },
                        TakenLock {
                            relation: relation("users_pkey", 'i'),
                            mode: LockMode::AccessExclusive,
                            held: Duration::from_micros(9_050),
                        },
                    ],
                    rewritten: vec![relation("users", 'r'), relation("users_pkey", 'i')],
                }],
            },
            TracedStep {
                revision: "aaaa00000002".to_owned(),
                message: "index users.locale".to_owned(),
                direction: Direction::Up,
                transactional: false,
                elapsed_ms: 30.0,
                statements: vec![StatementTrace {
                    sql: "CREATE INDEX CONCURRENTLY users_locale ON users (locale)".to_owned(),
                    transactional: false,
                    elapsed: Duration::from_millis(25),
                    locks: vec![TakenLock {
                        relation: relation("users", 'r'),
                        mode: LockMode::ShareUpdateExclusive,
                        held: Duration::from_millis(25),
                    }],
                    rewritten: Vec::new(),
                }],
            },
        ]
    }

    /// Pins the report byte for byte, text and JSON, whatever moves around it.
    #[test]
    fn the_report_reads_as_it_always_has() {
        for json in [false, true] {
            let mut out = Vec::new();
            print(
                &mut out,
                "postgresql://app@db/identity",
                "a template copy of postgresql://app@db/identity",
                "identity__trace_42",
                &steps(),
                json,
            )
            .expect("print");
            let text = String::from_utf8(out).expect("utf-8");
            if json {
                insta::assert_snapshot!("trace_report_json", text);
            } else {
                insta::assert_snapshot!("trace_report_text", text);
            }
        }
    }

    #[test]
    fn long_statements_are_cut_on_one_line() {
        assert_eq!(
            one_line("ALTER TABLE t\n  ADD c int"),
            "ALTER TABLE t ADD c int"
        );
        assert!(one_line(&"x ".repeat(200)).ends_with("..."));
    }
}

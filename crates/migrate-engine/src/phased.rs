//! Running a revision in phases (see `migrate_core::phase`): what cannot hold a lock while it
//! works (a `VALIDATE` scan, a backfill, the swap of an online type change, a concurrent index
//! build) commits on its own, and its progress is kept in the database, so that after a
//! `kill -9` or a lost connection, running `migrate` again resumes where the run stopped.
//!
//! - The transactional phases of consecutive ops share one transaction, committed with the
//!   next phase that needs its own (or with the revision's version and history rows), and are
//!   marked done in that same transaction.
//! - An `OwnTransaction` phase commits with its own progress row.
//! - An `Autocommit` phase (`CREATE INDEX CONCURRENTLY`) first runs its cleanup (what a
//!   crashed or failed attempt left: an INVALID index), then itself, then its progress row.
//! - A `Batches` phase commits each batch with its progress row (the last key done and the
//!   rows so far), so every row is updated exactly once however often the run is interrupted.
//!   A batch takes at most the job's rows, and fewer when batches run long: its time is
//!   bounded by [`BATCH_TIME_LIMIT`], and the executor halves the batch when it passes
//!   [`BATCH_TARGET`].
//! - The version and history rows are written in the last transaction, together with the
//!   removal of the revision's progress rows: `status` shows it applied only when all of it is.

use crate::retry::Backoff;
use crate::{Engine, Event, PreparedStep};
use migrate_core::driver::{BatchOutcome, DriverError, ExecError, PhaseProgress, ProgressSql};
use migrate_core::phase::{BatchJob, Phase};
use migrate_core::render::{phases, quote_ident, render_ops};
use migrate_core::{Dialect, Direction, Op, RenderError, Schema, Step};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A batch that runs longer than this is halved for the next one.
pub const BATCH_TARGET: Duration = Duration::from_millis(500);
/// A batch is cancelled after this long (and retried at a quarter of its size).
pub const BATCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// How often a running backfill logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One phase of a step, named by its op's position and its own (the progress table's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseUnit {
    /// The op's position in the revision's op list (the first op of a group).
    pub op: usize,
    /// The phase's position in the op's phase list.
    pub index: usize,
    /// The phase.
    pub phase: Phase,
}

/// The phases of `ops` against `before`, or an empty list when every phase is transactional
/// (then the step runs whole, as [`render_ops`] gives it). Consecutive ops that are one
/// transactional phase each are rendered together, as [`render_ops`] does, so that their
/// changes of one table stay one `ALTER TABLE`; when `table_by_table` (the revision's
/// [`migrate_core::Revision::table_by_table`]), such a run is cut where it moves on to another
/// table whose writes it blocks, and each part after the first commits on its own.
pub(crate) fn phase_units(
    revision: &str,
    direction: Direction,
    ops: &[Op],
    before: &Schema,
    dialect: Dialect,
    table_by_table: bool,
) -> Result<Vec<PhaseUnit>, RenderError> {
    let mut schema = before.clone();
    let mut units = Vec::new();
    let mut i = 0;
    let model_error = |op: usize, error| RenderError::Model {
        revision: revision.to_owned(),
        direction,
        op,
        error: Box::new(error),
    };
    while i < ops.len() {
        let own = phases(&ops[i], &schema, dialect)?;
        if own.iter().all(|p| matches!(p, Phase::Transaction(_))) {
            // A run of plain ops: rendered together, from a copy of the schema.
            let mut end = i + 1;
            let mut probe = schema.clone();
            ops[i].apply(&mut probe).map_err(|e| model_error(i, e))?;
            while end < ops.len()
                && phases(&ops[end], &probe, dialect)?
                    .iter()
                    .all(|p| matches!(p, Phase::Transaction(_)))
            {
                ops[end]
                    .apply(&mut probe)
                    .map_err(|e| model_error(end, e))?;
                end += 1;
            }
            // Table by table when the revision allows it: each segment commits on its own.
            let segments = if table_by_table {
                crate::lock_order::table_segments(&ops[i..end], &schema, before)
            } else {
                std::iter::once(0..end - i).collect()
            };
            for (n, segment) in segments.into_iter().enumerate() {
                let (from, to) = (i + segment.start, i + segment.end);
                let unit_before = schema.clone();
                let rendered: Vec<String> =
                    render_ops(revision, direction, &ops[from..to], &mut schema, dialect)?
                        .into_iter()
                        .map(|s| s.sql)
                        .collect();
                let ordered = crate::lock_order::with_lock_order(
                    revision,
                    direction,
                    &ops[from..to],
                    &unit_before,
                    rendered,
                    dialect,
                )?;
                let statements: Vec<migrate_core::Statement> = ordered
                    .into_iter()
                    .map(migrate_core::Statement::new)
                    .collect();
                if !statements.is_empty() {
                    units.push(PhaseUnit {
                        op: from,
                        index: 0,
                        // The first shares the transaction of what came before, as any run of
                        // plain ops does; each later one commits what came before it.
                        phase: if n == 0 {
                            Phase::Transaction(statements)
                        } else {
                            Phase::OwnTransaction(statements)
                        },
                    });
                }
            }
            i = end;
            continue;
        }
        for (index, phase) in own.into_iter().enumerate() {
            units.push(PhaseUnit {
                op: i,
                index,
                phase,
            });
        }
        ops[i].apply(&mut schema).map_err(|e| model_error(i, e))?;
        i += 1;
    }
    if units
        .iter()
        .all(|u| matches!(u.phase, Phase::Transaction(_)))
    {
        units.clear();
    }
    Ok(units)
}

/// A revision that a phased run left half-way: some of its phases committed, its version row
/// not written yet. Running `migrate` again resumes it after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfWay {
    /// The revision.
    pub revision: String,
    /// The direction it was being run in.
    pub direction: Direction,
    /// Its phases committed so far.
    pub phases_done: usize,
    /// Rows its batched updates committed so far.
    pub rows_done: i64,
}

/// Why a phased step stopped.
#[derive(Debug)]
pub(crate) struct PhasedError {
    /// The statement that failed, when one did.
    pub statement: Option<String>,
    /// Why.
    pub error: DriverError,
    /// Phases of the step committed (they stay; the next run resumes after them).
    pub committed: usize,
}

impl Engine<'_> {
    /// The revisions a phased run left half-way (their progress rows say so), in graph order.
    /// Reads only; takes no lock. Only the revisions a run could have stopped in are asked
    /// about: the next upgrades (not applied, every revision below applied) and the downgrades
    /// of the current revisions.
    pub fn half_way(&mut self) -> Result<Vec<HalfWay>, crate::EngineError> {
        let current = self.driver.read_heads()?;
        // A withdrawn revision's database is served by the released chain (as a rollback is).
        let graph = self.graph_for(&current, true)?;
        let applied = graph.applied(&current)?;
        let candidates: Vec<(String, Direction)> = graph
            .revisions()
            .iter()
            .filter_map(|r| {
                if current.contains(&r.id) {
                    Some((r.id.clone(), Direction::Down))
                } else if !applied.contains(&r.id) && r.down.iter().all(|d| applied.contains(d)) {
                    Some((r.id.clone(), Direction::Up))
                } else {
                    None
                }
            })
            .collect();
        let Some(driver) = self.driver.phased() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (revision, direction) in candidates {
            let rows = driver.read_progress(&revision, direction)?;
            if rows.is_empty() {
                continue;
            }
            out.push(HalfWay {
                phases_done: rows.iter().filter(|r| r.done).count(),
                rows_done: rows.iter().map(|r| r.rows_done).sum(),
                revision,
                direction,
            });
        }
        Ok(out)
    }

    /// Runs a step whose ops have phases, resuming after what an earlier run committed.
    pub(crate) fn execute_phased(
        &mut self,
        p: &PreparedStep,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(), PhasedError> {
        let fail = |statement: Option<String>, error: DriverError, committed: usize| PhasedError {
            statement,
            error,
            committed,
        };
        let Some(phased) = self.driver.phased() else {
            return Err(fail(
                None,
                DriverError::Unsupported("running a revision in phases".to_owned()),
                0,
            ));
        };
        let sql: &'static dyn ProgressSql = phased.progress_sql();
        let (revision, direction) = (p.step.revision.as_str(), p.step.direction);
        self.driver
            .execute_in_transaction(&[sql.progress_bootstrap()])
            .map_err(|e| fail(None, e.error, 0))?;
        let progress: HashMap<(usize, usize), PhaseProgress> = self
            .driver
            .phased()
            .map(|d| d.read_progress(revision, direction))
            .transpose()
            .map_err(|e| fail(None, e, 0))?
            .unwrap_or_default()
            .into_iter()
            .map(|r| ((r.op, r.phase), r))
            .collect();
        let mut committed = progress.values().filter(|r| r.done).count();
        if committed > 0 {
            log::info!(
                "{revision}: resuming: {committed} of its {} phase(s) were committed by an earlier run",
                p.phases.len()
            );
        }
        let done_row = |op: usize, phase: usize| {
            sql.progress_statement(
                revision,
                direction,
                &PhaseProgress {
                    op,
                    phase,
                    done: true,
                    last_key: None,
                    rows_done: 0,
                },
            )
        };
        // Transactional phases not committed yet, with their progress rows.
        let mut pending: Vec<String> = Vec::new();
        let mut pending_phases = 0;
        for unit in &p.phases {
            let key = (unit.op, unit.index);
            if progress.get(&key).is_some_and(|r| r.done) {
                continue;
            }
            if !matches!(unit.phase, Phase::Transaction(_)) && !pending.is_empty() {
                self.transaction_with_retries(&p.step, &pending, on_event)
                    .map_err(|(s, e)| fail(s, e, committed))?;
                committed += pending_phases;
                pending.clear();
                pending_phases = 0;
            }
            match &unit.phase {
                Phase::Transaction(statements) => {
                    pending.extend(statements.iter().map(|s| s.sql.clone()));
                    pending.push(done_row(unit.op, unit.index));
                    pending_phases += 1;
                }
                Phase::OwnTransaction(statements) => {
                    let mut all: Vec<String> = statements.iter().map(|s| s.sql.clone()).collect();
                    all.push(done_row(unit.op, unit.index));
                    self.transaction_with_retries(&p.step, &all, on_event)
                        .map_err(|(s, e)| fail(s, e, committed))?;
                    committed += 1;
                }
                Phase::Autocommit {
                    statement, cleanup, ..
                } => {
                    let cleanup: Vec<String> = cleanup.iter().map(|s| s.sql.clone()).collect();
                    let one = [statement.sql.clone()];
                    let result = self.with_retries(&p.step, on_event, |driver| {
                        // What a crashed or timed-out attempt left goes first.
                        driver.execute_each(&cleanup)?;
                        driver.execute_each(&one)
                    });
                    if let Err(e) = result {
                        if let Err(c) = self.driver.execute_each(&cleanup) {
                            log::warn!(
                                "{revision}: could not remove what the failed step left: {}",
                                c.error
                            );
                        }
                        return Err(fail(Some(statement.sql.clone()), e.error, committed));
                    }
                    self.transaction_with_retries(
                        &p.step,
                        &[done_row(unit.op, unit.index)],
                        on_event,
                    )
                    .map_err(|(s, e)| fail(s, e, committed))?;
                    committed += 1;
                }
                Phase::Batches(job) => {
                    self.run_batches(p, unit, job, progress.get(&key), on_event)
                        .map_err(|(s, e)| fail(s, e, committed))?;
                    committed += 1;
                }
            }
        }
        pending.push(sql.progress_clear(revision, direction));
        pending.extend(p.bookkeeping.iter().cloned());
        self.transaction_with_retries(&p.step, &pending, on_event)
            .map_err(|(s, e)| fail(s, e, committed))
    }

    /// Runs `statements` in one transaction, retried within the lock budget.
    fn transaction_with_retries(
        &mut self,
        step: &Step,
        statements: &[String],
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(), (Option<String>, DriverError)> {
        self.with_retries(step, on_event, |driver| {
            driver.execute_in_transaction(statements)
        })
        .map_err(|e| {
            let statement = e.statement.and_then(|i| statements.get(i).cloned());
            (statement, e.error)
        })
    }

    /// The batches of one `Batches` phase, from where an earlier run stopped.
    fn run_batches(
        &mut self,
        p: &PreparedStep,
        unit: &PhaseUnit,
        job: &BatchJob,
        prior: Option<&PhaseProgress>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(), (Option<String>, DriverError)> {
        let (revision, direction) = (p.step.revision.as_str(), p.step.direction);
        let table = match &job.table.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&job.table.name)),
            None => quote_ident(&job.table.name),
        };
        let Some(driver) = self.driver.phased() else {
            return Err((None, DriverError::Unsupported("batches".to_owned())));
        };
        let sql: &'static dyn ProgressSql = driver.progress_sql();
        let estimate = driver.estimate_rows(&table).ok().flatten();
        let mut after: Option<String> = prior.and_then(|r| r.last_key.clone());
        let mut rows_done = prior.map_or(0, |r| r.rows_done);
        if let Some(key) = &after {
            log::info!(
                "{revision}: resuming the backfill of {} after key {key} ({rows_done} row(s) done)",
                job.table.name
            );
        }
        let most = i64::from(job.rows.max(1));
        let mut limit = most;
        let started = Instant::now();
        let rows_at_start = rows_done;
        let mut reported = Instant::now();
        loop {
            let batch_started = Instant::now();
            let record = |o: &BatchOutcome| {
                sql.progress_statement(
                    revision,
                    direction,
                    &PhaseProgress {
                        op: unit.op,
                        phase: unit.index,
                        done: false,
                        last_key: o.last_key.clone().or_else(|| after.clone()),
                        rows_done: rows_done + o.rows,
                    },
                )
            };
            let result = self.with_retries(&p.step, on_event, |driver| match driver.phased() {
                Some(d) => d.execute_batch(
                    &job.batch.sql,
                    after.as_deref(),
                    limit,
                    BATCH_TIME_LIMIT,
                    &record,
                ),
                None => Err(ExecError {
                    statement: None,
                    error: DriverError::Unsupported("batches".to_owned()),
                }),
            });
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(e) if is_statement_timeout(&e.error) && limit > 1 => {
                    limit = (limit / 4).max(1);
                    log::warn!(
                        "{revision}: a batch of {} ran past {} s; trying {limit} row(s) a batch",
                        job.table.name,
                        BATCH_TIME_LIMIT.as_secs()
                    );
                    continue;
                }
                Err(e) => return Err((Some(job.batch.sql.clone()), e.error)),
            };
            let took = batch_started.elapsed();
            rows_done += outcome.rows;
            let finished = outcome.last_key.is_none();
            if finished || reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                let rate =
                    (rows_done - rows_at_start) as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let of = match estimate {
                    Some(total) if total > 0 => format!(
                        " of about {total} ({:.0}%)",
                        (rows_done as f64 * 100.0 / total as f64).min(100.0)
                    ),
                    _ => String::new(),
                };
                log::info!(
                    "{revision}: backfill of {}: {rows_done} row(s){of}, {rate:.0} rows/s",
                    job.table.name
                );
                on_event(&Event::BatchProgress {
                    step: p.step.clone(),
                    table: job.table.name.clone(),
                    rows_done,
                    estimate,
                });
            }
            match outcome.last_key {
                None => break,
                Some(key) => after = Some(key),
            }
            if took > BATCH_TARGET && limit > 1 {
                limit = (limit / 2).max(1);
            } else if took < BATCH_TARGET / 4 && limit < most {
                limit = (limit * 2).min(most);
            }
            if let Some(rate) = job.rows_per_second.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(outcome.rows as f64 / f64::from(rate));
                if due > took {
                    std::thread::sleep(due - took);
                }
            }
        }
        let done = sql.progress_statement(
            revision,
            direction,
            &PhaseProgress {
                op: unit.op,
                phase: unit.index,
                done: true,
                last_key: after,
                rows_done,
            },
        );
        self.transaction_with_retries(&p.step, &[done], on_event)
    }

    /// Runs `work` until it succeeds, fails for a reason other than a lost race for a table
    /// lock, or the lock budget is spent; each retry is logged with the error, which names the
    /// sessions that blocked it.
    pub(crate) fn with_retries<T>(
        &mut self,
        step: &Step,
        on_event: &mut dyn FnMut(&Event),
        mut work: impl FnMut(&mut dyn migrate_core::driver::Driver) -> Result<T, ExecError>,
    ) -> Result<T, ExecError> {
        let mut backoff = Backoff::new(self.options.retry_budget);
        loop {
            match work(self.driver.as_mut()) {
                Err(e) if e.error.is_retryable() => match backoff.next_pause() {
                    Some(pause) => {
                        log::warn!(
                            "{}: {}; retrying in {} ms (attempt {})",
                            step.revision,
                            e.error,
                            pause.as_millis(),
                            backoff.attempt
                        );
                        on_event(&Event::Retrying {
                            step: step.clone(),
                            attempt: backoff.attempt,
                        });
                        std::thread::sleep(pause);
                    }
                    None => {
                        let error = match e.error {
                            DriverError::LockTimeout(m) => DriverError::LockTimeout(format!(
                                "{m}; gave up after {} attempt(s) in {:.1} s, the lock budget (--lock-budget)",
                                backoff.attempt,
                                backoff.elapsed().as_secs_f64()
                            )),
                            other => other,
                        };
                        return Err(ExecError {
                            statement: e.statement,
                            error,
                        });
                    }
                },
                other => return other,
            }
        }
    }
}

fn is_statement_timeout(e: &DriverError) -> bool {
    matches!(e, DriverError::Statement { code: Some(code), .. } if code == "57014")
}

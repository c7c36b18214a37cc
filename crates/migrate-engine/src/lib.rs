//! The engine holds the policy: lock, read the state, validate it, plan, apply each step with
//! its version and history rows in one transaction, record failures, unlock on every path.
//!
//! It knows no database: everything goes through [`Driver`]. It knows no particular revisions:
//! any [`RevisionGraph`] will do.

use migrate_core::checksum::checksums_for;
use migrate_core::driver::{
    Driver, DriverError, ExecError, HistoryEntry, HistoryRecord, Outcome, StateSql,
};
use migrate_core::render::{render_step, schema_at};
use migrate_core::{
    Direction, Heads, RenderError, ResolveError, RevisionGraph, Schema, Step, Withdrawal,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

mod lock_order;
mod phased;
mod retry;
mod script;

pub use phased::{HalfWay, PhaseUnit, BATCH_TARGET, BATCH_TIME_LIMIT};
pub use script::{heads_text, script, script_text, step_title, Framing, Range, Script};

/// Who runs the tool, as the history table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// The operating-system user.
    pub os_user: String,
    /// The host name.
    pub host: String,
    /// The tool's version.
    pub tool_version: String,
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for another migrator to finish before giving up.
    pub lock_wait: Duration,
    /// The lock budget: how long one unit of work (a revision's transaction, a phase, a batch)
    /// keeps retrying after its statement lost a race for a table lock (`lock_timeout`), with
    /// backoff and jitter, before the run stops and names the blocker.
    pub retry_budget: Duration,
    /// Run every step in one transaction instead of one transaction per revision.
    pub single_transaction: bool,
    /// Run a revision whose ops have phases (a validation, a backfill, a concurrent index
    /// build) phase by phase where the driver can (PostgreSQL); `false`: every revision as one
    /// transaction, as Alembic would (the naive side of the online benchmark).
    pub phased: bool,
    /// Go on even if applied revisions changed since they were applied.
    pub accept_changed: bool,
    /// Recorded in the history table.
    pub identity: RunIdentity,
}

impl Options {
    /// Defaults: wait 60 s for the lock, retry lock timeouts for 60 s, one transaction per revision.
    pub fn new(identity: RunIdentity) -> Self {
        Options {
            lock_wait: Duration::from_secs(60),
            retry_budget: Duration::from_secs(60),
            single_transaction: false,
            phased: true,
            accept_changed: false,
            identity,
        }
    }
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Apply revisions up to this target (`head`, an id, `+1`...).
    Upgrade(String),
    /// Undo revisions down to this target (`base`, an id, `-1`...).
    Downgrade(String),
}

/// The database's position in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The revisions in `alembic_version` (empty at base).
    pub current: Heads,
    /// The graph's heads.
    pub heads: Vec<String>,
    /// How many revisions are not applied yet.
    pub pending: usize,
    /// Whether every head is applied.
    pub at_head: bool,
}

/// How the live database compares with what its revisions say it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The revisions in `alembic_version`.
    pub current: Heads,
    /// Revisions not applied yet, oldest first.
    pub pending: Vec<String>,
    /// Applied revisions whose checksum changed since they were applied.
    pub changed: Vec<String>,
    /// Differences between `schema_at(current)` (expected) and the live schema (actual).
    pub differences: Vec<migrate_core::diff::Difference>,
}

impl CheckReport {
    /// No drift, nothing pending, nothing changed.
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && self.changed.is_empty() && self.differences.is_empty()
    }
}

/// One step, ready to run: the revision's statements, then its version and history rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedStep {
    /// The step.
    pub step: Step,
    /// The revision's message.
    pub message: String,
    /// Whether it runs in a transaction (false when it builds indexes concurrently).
    pub transactional: bool,
    /// The revision's own statements.
    pub statements: Vec<String>,
    /// The version-table and history statements, run in the same transaction as the above
    /// (after them, in their own transaction, when the revision is not transactional).
    pub bookkeeping: Vec<String>,
    /// Statements that remove what a failed non-transactional run leaves half-done (an
    /// INVALID index), so that nothing unusable stays in place.
    pub cleanup: Vec<String>,
    /// The step as phases, when some of them must commit on their own (a validation, a
    /// backfill, a concurrent index build): then it runs phase by phase and resumes after an
    /// interruption (see [`PhaseUnit`]). Empty: it runs as `statements` say.
    pub phases: Vec<PhaseUnit>,
}

/// A step that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// The revision's message.
    pub message: String,
    /// Wall time, retries included.
    pub elapsed: Duration,
    /// Every statement executed, in order, bookkeeping included.
    pub executed: Vec<String>,
}

/// What happened during a run, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The lock is held and the plan is known.
    Planned {
        /// The steps about to run.
        steps: Vec<Step>,
    },
    /// A step is about to run.
    StepStarted(Step),
    /// A step finished.
    StepFinished(StepReport),
    /// Applied revisions whose new checksum an operator accepted (`--accept-changed`); recorded.
    Accepted(Vec<String>),
    /// A batched update of a step committed more rows (reported every few seconds).
    BatchProgress {
        /// The step.
        step: Step,
        /// The table.
        table: String,
        /// Rows updated so far, earlier runs included.
        rows_done: i64,
        /// The planner's estimate of the table's rows, when known.
        estimate: Option<i64>,
    },
    /// A step lost a race for a table lock and will be tried again.
    Retrying {
        /// The step.
        step: Step,
        /// Attempt number, from 2.
        attempt: u32,
    },
}

/// Why a command could not do its work. Every message tells the operator what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The database could not be used.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A target or the database's recorded state could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A revision could not be rendered (the revision itself is wrong).
    #[error("revision cannot be rendered: {0}")]
    Render(#[from] RenderError),
    /// Applied revisions changed after they were applied.
    #[error(
        "applied revision(s) {} changed since they were applied (checksum differs): review the change, then rerun with --accept-changed",
        .0.join(", ")
    )]
    ChangedRevisions(Vec<String>),
    /// Single-transaction mode with a revision that cannot run in a transaction.
    #[error(
        "revision {0} cannot run inside a transaction, so --single-transaction cannot be used"
    )]
    NotTransactional(String),
    /// A step failed; everything before it stays applied, nothing of it does.
    #[error("{0}")]
    StepFailed(#[source] Box<StepFailure>),
}

/// A failed step, and what the run had completed before it.
#[derive(Debug)]
pub struct StepFailure {
    /// The failed step.
    pub step: Step,
    /// The failing statement's position in the step and its text, when known.
    pub statement: Option<(usize, String)>,
    /// Why.
    pub error: DriverError,
    /// The steps that completed before it (they stay applied).
    pub completed: Vec<StepReport>,
    /// Where the database stays: the failed step's start, or the run's start when the whole
    /// run was one transaction.
    pub stays_at: Heads,
    /// Phases of the failed step that are committed (a step run in phases): the next run
    /// resumes after them.
    pub committed_phases: usize,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let StepFailure {
            step,
            statement,
            error,
            completed,
            stays_at,
            committed_phases,
        } = self;
        let at = heads_text(stays_at);
        write!(
            f,
            "{} of revision {} failed",
            if step.direction == Direction::Up {
                "upgrade"
            } else {
                "downgrade"
            },
            step.revision
        )?;
        if let Some((i, sql)) = statement {
            write!(f, " at statement {} ({})", i + 1, first_line(sql))?;
        }
        write!(
            f,
            ": {error}; the database stays at {at}, with {} step(s) of this run completed before it",
            completed.len()
        )?;
        if *committed_phases > 0 {
            write!(
                f,
                " ({committed_phases} phase(s) of {} are committed: run migrate again to resume it)",
                step.revision
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs commands against one database.
pub struct Engine<'g> {
    driver: Box<dyn Driver + 'g>,
    graph: &'g RevisionGraph,
    withdrawal: Option<&'g Withdrawal>,
    options: Options,
}

impl<'g> Engine<'g> {
    /// An engine over a connected driver and a graph of revisions.
    pub fn new(driver: Box<dyn Driver + 'g>, graph: &'g RevisionGraph, options: Options) -> Self {
        Engine {
            driver,
            graph,
            withdrawal: None,
            options,
        }
    }

    /// The same engine, knowing revisions that were released and then withdrawn: a database
    /// at one of them is refused with the way forward, except by a downgrade, which runs down
    /// the released chain (see [`Withdrawal`]).
    pub fn with_withdrawal(mut self, withdrawal: &'g Withdrawal) -> Self {
        self.withdrawal = Some(withdrawal);
        self
    }

    /// The graph that serves a database at `current`: the released chain of a withdrawal for a
    /// downgrade from a withdrawn revision, the engine's own graph otherwise.
    fn graph_for(
        &self,
        current: &Heads,
        downgrade: bool,
    ) -> Result<&'g RevisionGraph, EngineError> {
        let Some(withdrawal) = self.withdrawal else {
            return Ok(self.graph);
        };
        match withdrawal.withdrawn_among(self.graph, current) {
            None => Ok(self.graph),
            Some(_) if downgrade => Ok(&withdrawal.released),
            Some(ids) => Err(withdrawal.error(ids).into()),
        }
    }

    /// The driver, for work around the engine.
    pub fn driver(&mut self) -> &mut dyn Driver {
        self.driver.as_mut()
    }

    /// Where the database stands. Reads only; takes no lock.
    pub fn status(&mut self) -> Result<Status, EngineError> {
        let current = self.driver.read_heads()?;
        let applied = self.graph_for(&current, false)?.applied(&current)?;
        let heads: Vec<String> = self.graph.heads().into_iter().map(str::to_owned).collect();
        Ok(Status {
            at_head: heads.iter().all(|h| applied.contains(h)),
            pending: self.graph.revisions().len() - applied.len(),
            current,
            heads,
        })
    }

    /// The history table, oldest first. Reads only.
    pub fn history(&mut self) -> Result<Vec<HistoryRecord>, EngineError> {
        Ok(self.driver.read_history()?)
    }

    /// Revisions whose checksum differs from the one recorded when they were last applied.
    pub fn changed_revisions(&mut self) -> Result<Vec<String>, EngineError> {
        let current = self.driver.read_heads()?;
        let graph = self.graph_for(&current, false)?;
        let applied = graph.applied(&current)?;
        let history = self.driver.read_history()?;
        self.changed_among(graph, &applied, &history)
    }

    /// Compares the live database with the schema its recorded revision implies, and reports
    /// pending and changed revisions. Reads only.
    pub fn check(&mut self) -> Result<CheckReport, EngineError> {
        let current = self.driver.read_heads()?;
        let applied = self.graph_for(&current, false)?.applied(&current)?;
        let history = self.driver.read_history()?;
        let changed = self.changed_among(self.graph, &applied, &history)?;
        // Both sides go through the database's own spelling, so that `status IN ('a')` and
        // `(status)::text = ANY (...)` are not reported as drift.
        let expected = self
            .driver
            .canonicalize(&schema_at(self.graph, &applied)?)?;
        let actual = self.driver.introspect()?;
        Ok(CheckReport {
            pending: self
                .graph
                .revisions()
                .iter()
                .filter(|r| !applied.contains(&r.id))
                .map(|r| r.id.clone())
                .collect(),
            changed,
            // Column order is not drift here: PostgreSQL cannot reorder columns, an online type
            // change and its rollback each move the column to the end of its table, and the
            // service names every column it reads or writes.
            differences: migrate_core::diff::differences(&expected, &actual)
                .into_iter()
                .filter(|d| {
                    !(d.object == migrate_core::diff::ObjectKind::Table
                        && d.change == migrate_core::diff::Change::Changed
                        && d.detail.starts_with("column order "))
                })
                .collect(),
            current,
        })
    }

    /// What `run` would execute, from the database's real current state. Changes nothing.
    pub fn script(&mut self, intent: &Intent) -> Result<Script, EngineError> {
        let current = self.driver.read_heads()?;
        let graph = self.graph_for(&current, matches!(intent, Intent::Downgrade(_)))?;
        let range = Range::of_intent(graph, intent, &current)?;
        // As `run`: the tool's tables are created only when there is something to run.
        let tables = self.driver.state_tables()?;
        script(
            graph,
            self.driver.state_sql(),
            &self.options,
            &range,
            !(tables.version && tables.history),
        )
    }

    /// Runs the intent under the migration lock, reporting each event as it happens.
    ///
    /// The lock is released on every path out, errors included.
    pub fn run(
        &mut self,
        intent: &Intent,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<StepReport>, EngineError> {
        migrate_core::wait::wait_for_lock(
            self.driver.as_mut(),
            self.options.lock_wait,
            &mut |pause| {
                log::debug!("migration lock busy; polling again in {pause:?}");
            },
        )?;
        let result = self.run_locked(intent, on_event);
        let unlocked = self.driver.unlock();
        let reports = result?;
        unlocked?;
        Ok(reports)
    }

    fn run_locked(
        &mut self,
        intent: &Intent,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<StepReport>, EngineError> {
        // Read only now, under the lock: another migrator may have moved the database meanwhile.
        let current = self.driver.read_heads()?;
        let graph = self.graph_for(&current, matches!(intent, Intent::Downgrade(_)))?;
        let applied = graph.applied(&current)?;
        let history = self.driver.read_history()?;
        let changed = self.changed_among(graph, &applied, &history)?;
        if !changed.is_empty() && !self.options.accept_changed {
            return Err(EngineError::ChangedRevisions(changed));
        }
        // Everything is validated before the first write: a refused run leaves no trace. The
        // plan is the dry run's: the same function, from the same state.
        let prepared = script(
            graph,
            self.driver.state_sql(),
            &self.options,
            &Range::of_intent(graph, intent, &current)?,
            false,
        )?
        .steps;
        on_event(&Event::Planned {
            steps: prepared.iter().map(|p| p.step.clone()).collect(),
        });
        if prepared.is_empty() && changed.is_empty() {
            return Ok(Vec::new());
        }
        let tables = self.driver.state_tables()?;
        if !(tables.version && tables.history) {
            let bootstrap = self.driver.state_sql().bootstrap_statements();
            self.driver
                .execute_in_transaction(&bootstrap)
                .map_err(|e| EngineError::Driver(e.error))?;
        }
        if !changed.is_empty() {
            self.accept(graph, &changed)?;
            on_event(&Event::Accepted(changed));
        }
        if self.options.single_transaction && !prepared.is_empty() {
            return self.run_as_one(graph, prepared, on_event);
        }
        let mut done: Vec<StepReport> = Vec::with_capacity(prepared.len());
        for p in prepared {
            on_event(&Event::StepStarted(p.step.clone()));
            let started = Instant::now();
            match self.execute_step(&p, on_event) {
                Ok(()) => {
                    let report = StepReport {
                        step: p.step.clone(),
                        message: p.message.clone(),
                        elapsed: started.elapsed(),
                        executed: p.statements.iter().chain(&p.bookkeeping).cloned().collect(),
                    };
                    on_event(&Event::StepFinished(report.clone()));
                    done.push(report);
                }
                Err(failed) => {
                    let stays_at = p.step.heads_before.clone();
                    return Err(self.fail(graph, &p, failed, started.elapsed(), done, stays_at));
                }
            }
        }
        Ok(done)
    }

    fn run_as_one(
        &mut self,
        graph: &RevisionGraph,
        prepared: Vec<PreparedStep>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<StepReport>, EngineError> {
        if let Some(p) = prepared.iter().find(|p| !p.transactional) {
            return Err(EngineError::NotTransactional(p.step.revision.clone()));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        let mut owner = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            for s in p.statements.iter().chain(&p.bookkeeping) {
                all.push(s.clone());
                owner.push(i);
            }
        }
        if let Err(e) = self.driver.execute_in_transaction(&all) {
            // Nothing of the run was kept: blame the step that failed, with its own statement index.
            let i = e.statement.map_or(0, |s| owner[s]);
            let first_of_step = owner.iter().position(|&o| o == i).unwrap_or(0);
            let local = Failed::of(
                &prepared[i],
                e.statement.map(|s| s - first_of_step),
                e.error,
            );
            let stays_at = prepared[0].step.heads_before.clone();
            return Err(self.fail(
                graph,
                &prepared[i],
                local,
                started.elapsed(),
                Vec::new(),
                stays_at,
            ));
        }
        let elapsed = started.elapsed();
        let reports: Vec<StepReport> = prepared
            .into_iter()
            .map(|p| StepReport {
                executed: p.statements.iter().chain(&p.bookkeeping).cloned().collect(),
                step: p.step,
                message: p.message,
                elapsed,
            })
            .collect();
        for r in &reports {
            on_event(&Event::StepFinished(r.clone()));
        }
        Ok(reports)
    }

    /// Records that an operator accepted the new checksums of changed revisions, so that the
    /// next run does not ask again.
    fn accept(&mut self, graph: &RevisionGraph, changed: &[String]) -> Result<(), EngineError> {
        let sums = checksums_for(graph, self.driver.state_sql().dialect())?;
        let rows: Vec<String> = changed
            .iter()
            .map(|id| {
                log::warn!("accepting the changed checksum of applied revision {id}");
                self.driver.state_sql().history_statement(&HistoryEntry {
                    revision: id.clone(),
                    direction: Direction::Up,
                    checksum: sums.get(id).cloned().unwrap_or_default(),
                    outcome: Outcome::Accepted,
                    os_user: self.options.identity.os_user.clone(),
                    host: self.options.identity.host.clone(),
                    tool_version: self.options.identity.tool_version.clone(),
                })
            })
            .collect();
        self.driver
            .execute_in_transaction(&rows)
            .map_err(|e| EngineError::Driver(e.error))
    }

    /// Runs one step; a step that lost a race for a table lock is tried again within the budget.
    /// Fails with the failing statement (its position and text, when known), the error, and
    /// the phases of the step that stay committed.
    fn execute_step(
        &mut self,
        p: &PreparedStep,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(), Failed> {
        if !p.phases.is_empty() && self.driver.phased().is_some() {
            return self.execute_phased(p, on_event).map_err(|e| {
                // Named by its place among the step's statements when it is one of them (a
                // batch is not: the fallback holds the whole UPDATE instead).
                let statement = e.statement.and_then(|sql| {
                    p.statements
                        .iter()
                        .position(|s| *s == sql)
                        .map(|i| (i, sql))
                });
                Failed {
                    statement,
                    error: e.error,
                    committed: e.committed,
                }
            });
        }
        let located = |e: ExecError| Failed::of(p, e.statement, e.error);
        if p.transactional {
            let all: Vec<String> = p.statements.iter().chain(&p.bookkeeping).cloned().collect();
            return self
                .with_retries(&p.step, on_event, |driver| {
                    driver.execute_in_transaction(&all)
                })
                .map_err(located);
        }
        // Statements that cannot run in a transaction go one by one; the version and history
        // rows follow only when all of them succeeded.
        let result = self.driver.execute_each(&p.statements).and_then(|()| {
            self.driver
                .execute_in_transaction(&p.bookkeeping)
                .map_err(|e| ExecError {
                    statement: e.statement.map(|s| s + p.statements.len()),
                    error: e.error,
                })
        });
        if let Err(e) = result {
            if let Err(cleanup) = self.driver.execute_each(&p.cleanup) {
                log::warn!(
                    "{}: could not remove what the failed step left: {}",
                    p.step.revision,
                    cleanup.error
                );
            }
            return Err(located(e));
        }
        Ok(())
    }

    /// Records the failure in the history table (best effort, in its own transaction) and builds
    /// the error that says what was kept.
    fn fail(
        &mut self,
        graph: &RevisionGraph,
        p: &PreparedStep,
        e: Failed,
        ran: Duration,
        completed: Vec<StepReport>,
        stays_at: Heads,
    ) -> EngineError {
        let statement = e.statement;
        let checksum = self.checksum_of(graph, &p.step.revision);
        let entry = HistoryEntry {
            revision: p.step.revision.clone(),
            direction: p.step.direction,
            checksum,
            outcome: Outcome::Failed {
                error: e.error.to_string(),
                after: ran,
            },
            os_user: self.options.identity.os_user.clone(),
            host: self.options.identity.host.clone(),
            tool_version: self.options.identity.tool_version.clone(),
        };
        let record = self.driver.state_sql().history_statement(&entry);
        if let Err(record_error) = self.driver.execute_in_transaction(&[record]) {
            log::warn!(
                "could not record the failure in the history table: {}",
                record_error.error
            );
        }
        EngineError::StepFailed(Box::new(StepFailure {
            step: p.step.clone(),
            statement,
            error: e.error,
            completed,
            stays_at,
            committed_phases: e.committed,
        }))
    }

    fn checksum_of(&self, graph: &RevisionGraph, revision: &str) -> String {
        checksums_for(graph, self.driver.state_sql().dialect())
            .ok()
            .and_then(|mut all| all.remove(revision))
            .unwrap_or_default()
    }

    fn changed_among(
        &self,
        graph: &RevisionGraph,
        applied: &std::collections::BTreeSet<String>,
        history: &[HistoryRecord],
    ) -> Result<Vec<String>, EngineError> {
        if history.is_empty() {
            return Ok(Vec::new());
        }
        // The last successful application of each revision, or the last change an operator
        // accepted, is what its checksum must match.
        let mut recorded: BTreeMap<&str, &str> = BTreeMap::new();
        for h in history.iter().filter(|h| {
            (h.outcome == "applied" && h.direction == Direction::Up) || h.outcome == "accepted"
        }) {
            recorded.insert(&h.revision, &h.checksum);
        }
        let sums: HashMap<String, String> =
            checksums_for(graph, self.driver.state_sql().dialect())?;
        Ok(applied
            .iter()
            .filter(|id| {
                recorded
                    .get(id.as_str())
                    .is_some_and(|old| sums.get(*id).is_some_and(|now| now != old))
            })
            .cloned()
            .collect())
    }
}

/// Resolves the intent against `current` and renders every step with its bookkeeping.
///
/// Needs no connection: `generate-sql` uses it for a database it cannot reach.
pub fn prepare(
    graph: &RevisionGraph,
    sql: &dyn StateSql,
    options: &Options,
    intent: &Intent,
    current: &Heads,
) -> Result<Vec<PreparedStep>, EngineError> {
    prepare_range(
        graph,
        sql,
        options,
        &Range::of_intent(graph, intent, current)?,
    )
}

/// Renders every step of `range` with its bookkeeping (see [`script`]).
fn prepare_range(
    graph: &RevisionGraph,
    sql: &dyn StateSql,
    options: &Options,
    range: &Range,
) -> Result<Vec<PreparedStep>, EngineError> {
    let current = &range.from;
    let applied = graph.applied(current)?;
    let steps = match range.direction {
        Direction::Up => graph.plan_upgrade(current, &range.to)?,
        Direction::Down => graph.plan_downgrade(current, &range.to)?,
    };
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = sql.dialect();
    let sums = checksums_for(graph, dialect)?;
    let mut schema: Schema = schema_at(graph, &applied)?;
    let mut prepared = Vec::with_capacity(steps.len());
    for step in steps {
        let revision = graph
            .get(&step.revision)
            .ok_or_else(|| RenderError::UnknownRevision(step.revision.clone()))?;
        let schema_before = schema.clone();
        let before = (options.phased && !options.single_transaction).then(|| schema.clone());
        let rendered = render_step(graph, &step, &mut schema, dialect)?;
        let phases = match before {
            Some(before) => phased::phase_units(
                &revision.id,
                step.direction,
                revision.ops(step.direction),
                &before,
                dialect,
                revision.table_by_table,
            )?,
            None => Vec::new(),
        };
        // Asked of the dialect's statements, not of the ops: a concurrent index build that
        // PostgreSQL must run outside a transaction is a plain one on SQLite, whose revision then
        // stays all or nothing.
        let transactional = rendered.iter().all(|s| s.transactional);
        let mut statements: Vec<String> = rendered.into_iter().map(|s| s.sql).collect();
        if transactional {
            statements = lock_order::with_lock_order(
                &revision.id,
                step.direction,
                revision.ops(step.direction),
                &schema_before,
                statements,
                dialect,
            )?;
        }
        let mut bookkeeping = sql.version_statements(&step.heads_before, &step.heads_after);
        bookkeeping.push(sql.history_statement(&HistoryEntry {
            revision: step.revision.clone(),
            direction: step.direction,
            checksum: sums.get(&step.revision).cloned().unwrap_or_default(),
            outcome: Outcome::Applied,
            os_user: options.identity.os_user.clone(),
            host: options.identity.host.clone(),
            tool_version: options.identity.tool_version.clone(),
        }));
        let cleanup = revision
            .ops(step.direction)
            .iter()
            .flat_map(|op| migrate_core::render::cleanup(op, dialect))
            .map(|s| s.sql)
            .collect();
        prepared.push(PreparedStep {
            cleanup,
            phases,
            transactional,
            message: revision.message.clone(),
            step,
            statements,
            bookkeeping,
        });
    }
    Ok(prepared)
}

/// A failed step's statement (position and text, when known), error, and committed phases.
struct Failed {
    statement: Option<(usize, String)>,
    error: DriverError,
    committed: usize,
}

impl Failed {
    /// A failure at the `statement`-th of the step's statements and bookkeeping.
    fn of(p: &PreparedStep, statement: Option<usize>, error: DriverError) -> Self {
        let statement = statement.map(|i| {
            let all: Vec<&String> = p.statements.iter().chain(&p.bookkeeping).collect();
            (i, all.get(i).map_or_else(String::new, |s| (*s).clone()))
        });
        Failed {
            statement,
            error,
            committed: 0,
        }
    }
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    if line.len() > 80 {
        format!(
            "{}...",
            &line[..line.char_indices().nth(77).map_or(line.len(), |(i, _)| i)]
        )
    } else {
        line.to_owned()
    }
}

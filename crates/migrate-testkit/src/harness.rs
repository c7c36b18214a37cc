//! The engine harness: engines on a [`Backend`], intents, synthetic revisions, the oracle that
//! compares a live schema with `schema_at`, and a driver that records what it executes. Shared
//! by the engine's and the drivers' integration tests.

use crate::Backend;
use migrate_core::driver::{Driver, DriverError, ExecError, HistoryRecord, StateSql, StateTables};
use migrate_core::{
    Column, ColumnType, Heads, Op, RawSql, Revision, RevisionGraph, Schema, Step, Table, TableName,
};
use migrate_engine::{Engine, EngineError, Event, Intent, Options, RunIdentity, StepReport};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The version table's name.
pub const VERSION_TABLE: &str = "alembic_version";
/// The history table's name.
pub const HISTORY_TABLE: &str = "identity_migrate_history";

/// The identity recorded in every history row these tests write (`test@test`, version `0`).
pub fn identity() -> RunIdentity {
    RunIdentity {
        os_user: "test".into(),
        host: "test".into(),
        tool_version: "0".into(),
    }
}

/// Default options with the test identity.
pub fn options() -> Options {
    Options::new(identity())
}

/// Default options with a short lock wait, so that a lock left behind fails a test quickly.
pub fn options_with_lock_wait(wait: Duration) -> Options {
    let mut o = options();
    o.lock_wait = wait;
    o
}

impl Backend {
    /// An engine with default options on a new driver.
    pub fn engine<'g>(&self, graph: &'g RevisionGraph) -> Engine<'g> {
        Engine::new(self.driver(), graph, options())
    }

    /// An engine with the given options on a new driver.
    pub fn engine_with<'g>(&self, graph: &'g RevisionGraph, options: Options) -> Engine<'g> {
        Engine::new(self.driver(), graph, options)
    }

    /// The revisions in `alembic_version`, sorted (empty at base).
    pub fn heads(&self) -> Vec<String> {
        self.driver()
            .read_heads()
            .expect("read alembic_version")
            .into_iter()
            .collect()
    }
}

/// Runs an intent, ignoring events.
pub fn run(engine: &mut Engine<'_>, intent: &Intent) -> Result<Vec<StepReport>, EngineError> {
    engine.run(intent, &mut |_| {})
}

/// Runs an intent and also returns every event reported.
pub fn run_collecting(
    engine: &mut Engine<'_>,
    intent: &Intent,
) -> (Result<Vec<StepReport>, EngineError>, Vec<Event>) {
    let mut events = Vec::new();
    let result = engine.run(intent, &mut |e| events.push(e.clone()));
    (result, events)
}

/// Upgrade to `target`.
pub fn up(target: &str) -> Intent {
    Intent::Upgrade(target.to_owned())
}

/// Downgrade to `target`.
pub fn down(target: &str) -> Intent {
    Intent::Downgrade(target.to_owned())
}

/// A set of heads.
pub fn heads(ids: &[&str]) -> Heads {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// The ids of `graph`'s revisions, oldest first.
pub fn revision_ids(graph: &RevisionGraph) -> Vec<String> {
    graph.revisions().iter().map(|r| r.id.clone()).collect()
}

/// The single head of `graph`.
pub fn head_of(graph: &RevisionGraph) -> String {
    let heads = graph.heads();
    assert_eq!(heads.len(), 1, "one head: {heads:?}");
    heads[0].to_owned()
}

/// The revisions of some steps.
pub fn step_ids(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.revision.clone()).collect()
}

/// The revisions of some reports.
pub fn report_ids(reports: &[StepReport]) -> Vec<String> {
    reports.iter().map(|r| r.step.revision.clone()).collect()
}

/// The schema `schema_at` gives for `heads`.
pub fn expected_at(graph: &RevisionGraph, heads: &Heads) -> Schema {
    let applied = graph.applied(heads).expect("known heads");
    migrate_core::render::schema_at(graph, &applied).expect("the revisions fold")
}

/// Asserts that the live schema, introspected by `driver`, is what the revisions say it is at
/// the database's heads, both spelled by the database as `check` compares them; `at` names the
/// point in the message. Column order is not compared, as `check` has it: undoing
/// fbcbc6afff27's online type change leaves `user_activity_logs.session_id` last.
pub fn assert_live_matches(driver: &mut dyn Driver, graph: &RevisionGraph, at: &str) {
    let heads = driver.read_heads().expect("read the heads");
    let canonical = driver
        .canonicalize(&expected_at(graph, &heads))
        .expect("canonicalize");
    let mut live = driver.introspect().expect("introspect");
    let differences: Vec<_> = migrate_core::diff::differences(&canonical, &live)
        .into_iter()
        .filter(|d| !d.detail.starts_with("column order "))
        .collect();
    assert!(
        differences.is_empty(),
        "at {at}: the live schema differs from schema_at: {}",
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    // And nothing the diff does not look at differs either.
    for (name, table) in &mut live.tables {
        if let Some(want) = canonical.table(name) {
            table.columns.sort_by_key(|c| {
                want.columns
                    .iter()
                    .position(|w| w.name == c.name)
                    .unwrap_or(usize::MAX)
            });
        }
    }
    assert_eq!(live, canonical, "at {at}");
}

/// Every statement of a script, in the order a run executes them.
pub fn script_statements(script: &migrate_engine::Script) -> Vec<String> {
    let mut all = script.bootstrap.clone();
    for step in &script.steps {
        all.extend(step.statements.iter().chain(&step.bookkeeping).cloned());
    }
    all
}

/// Runs `intent` on a [`Recording`] of `driver` and asserts that the run executed exactly
/// `script` (the dry run's plan), statement by statement, and reported it step by step.
pub fn assert_run_executes(
    driver: Box<dyn Driver>,
    graph: &RevisionGraph,
    intent: &Intent,
    script: &migrate_engine::Script,
) {
    let (recording, log) = Recording::new(driver);
    let mut real = Engine::new(Box::new(recording), graph, options());
    let reports = run(&mut real, intent).expect("the run succeeds");
    assert_eq!(
        *log.lock().expect("the log is not poisoned"),
        script_statements(script),
        "the run executed something other than the script"
    );
    assert_eq!(reports.len(), script.steps.len());
    for (report, step) in reports.iter().zip(&script.steps) {
        assert_eq!(report.step, step.step);
        let statements: Vec<String> = step
            .statements
            .iter()
            .chain(&step.bookkeeping)
            .cloned()
            .collect();
        assert_eq!(report.executed, statements);
    }
}

// ---- synthetic revisions ---------------------------------------------------------------

/// `CREATE TABLE <name> (id integer NOT NULL PRIMARY KEY)`.
pub fn table(name: &str) -> Table {
    Table::new(name)
        .column(Column::new("id", ColumnType::Integer).not_null())
        .primary_key(format!("{name}_pkey"), &["id"])
}

/// Creates [`table`] `name`.
pub fn create_table(name: &str) -> Op {
    Op::CreateTable(table(name))
}

/// Drops table `name`.
pub fn drop_table(name: &str) -> Op {
    Op::DropTable {
        table: TableName::new(name),
    }
}

/// Raw PostgreSQL (no SQLite body).
pub fn sql(body: &str) -> Op {
    Op::Sql(RawSql {
        description: body.to_owned(),
        postgres: Some(body.to_owned()),
        sqlite: None,
    })
}

/// Raw SQL that both dialects accept as written.
pub fn portable_sql(body: &str) -> Op {
    Op::Sql(RawSql {
        description: "test".to_owned(),
        postgres: Some(body.to_owned()),
        sqlite: Some(body.to_owned()),
    })
}

/// A revision that creates table `name` and whose downgrade drops it.
pub fn table_revision(id: &str, down: &[&str], name: &str) -> Revision {
    Revision::new(id, down, &format!("create {name}"))
        .upgrade(vec![create_table(name)])
        .downgrade(vec![drop_table(name)])
}

/// A revision whose upgrade and downgrade are SQL that both dialects accept.
pub fn sql_revision(id: &str, down: &[&str], up_sql: &str, down_sql: &str) -> Revision {
    Revision::new(id, down, "test revision")
        .upgrade(vec![portable_sql(up_sql)])
        .downgrade(vec![portable_sql(down_sql)])
}

/// Twelve hex digits for revision number `n`.
pub fn rev_id(n: usize) -> String {
    format!("{n:012x}")
}

/// Three revisions in both dialects: a table `items (id, name NOT NULL)`, a row, another row.
pub fn small_chain() -> Vec<Revision> {
    vec![
        sql_revision(
            &rev_id(1),
            &[],
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "DROP TABLE items",
        ),
        sql_revision(
            &rev_id(2),
            &[&rev_id(1)],
            "INSERT INTO items (id, name) VALUES (1, 'a')",
            "DELETE FROM items WHERE id = 1",
        ),
        sql_revision(
            &rev_id(3),
            &[&rev_id(2)],
            "INSERT INTO items (id, name) VALUES (2, 'b')",
            "DELETE FROM items WHERE id = 2",
        ),
    ]
}

/// `revisions` revisions in both dialects: the first creates a table `counter (revision)`,
/// every one (the first included) inserts its own row, so that applying any revision twice
/// shows as a duplicate.
pub fn counter_graph(revisions: usize) -> RevisionGraph {
    let revisions = (1..=revisions)
        .map(|n| {
            let id = rev_id(n);
            let parent = (n > 1).then(|| rev_id(n - 1));
            let down: Vec<&str> = parent.iter().map(String::as_str).collect();
            let insert = format!("INSERT INTO counter (revision) VALUES ('{id}')");
            let up = if n == 1 {
                format!("CREATE TABLE counter (revision VARCHAR(32) NOT NULL); {insert}")
            } else {
                insert
            };
            sql_revision(
                &id,
                &down,
                &up,
                &format!("DELETE FROM counter WHERE revision = '{id}'"),
            )
        })
        .collect();
    graph(revisions)
}

/// A graph of synthetic revisions.
pub fn graph(revisions: Vec<Revision>) -> RevisionGraph {
    RevisionGraph::new(revisions).expect("the synthetic revisions form a graph")
}

// ---- a driver that records what it is asked to execute ---------------------------------

/// A real driver, unchanged, that also records every statement it is given to execute, in
/// order: what a run really sends to the database.
pub struct Recording {
    inner: Box<dyn Driver>,
    /// The statements, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    /// Wraps `inner`; the log is returned too, to read after the driver moved into an engine.
    pub fn new(inner: Box<dyn Driver>) -> (Self, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            Recording {
                inner,
                log: Arc::clone(&log),
            },
            log,
        )
    }

    fn record(&self, statements: &[String]) {
        self.log
            .lock()
            .expect("the log is not poisoned")
            .extend(statements.iter().cloned());
    }
}

impl Driver for Recording {
    fn state_sql(&self) -> &dyn StateSql {
        self.inner.state_sql()
    }
    fn server_version(&mut self) -> Result<String, DriverError> {
        self.inner.server_version()
    }
    fn try_lock(&mut self) -> Result<bool, DriverError> {
        self.inner.try_lock()
    }
    fn unlock(&mut self) -> Result<(), DriverError> {
        self.inner.unlock()
    }
    fn state_tables(&mut self) -> Result<StateTables, DriverError> {
        self.inner.state_tables()
    }
    fn read_heads(&mut self) -> Result<Heads, DriverError> {
        self.inner.read_heads()
    }
    fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DriverError> {
        self.inner.read_history()
    }
    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.record(statements);
        self.inner.execute_in_transaction(statements)
    }
    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.record(statements);
        self.inner.execute_each(statements)
    }
    fn introspect(&mut self) -> Result<Schema, DriverError> {
        self.inner.introspect()
    }
    fn canonicalize(&mut self, expected: &Schema) -> Result<Schema, DriverError> {
        self.inner.canonicalize(expected)
    }
}

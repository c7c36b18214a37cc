//! Helpers shared by the engine's integration tests: connecting an engine to a [`TestDb`],
//! reading the database back with plain SQL, and building synthetic revisions.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use migrate_core::driver::{Driver, DriverError, ExecError, HistoryRecord, StateSql, StateTables};
use migrate_core::{
    Column, ColumnType, Heads, Op, RawSql, Revision, RevisionGraph, Step, Table, TableName,
};
use migrate_engine::{Engine, EngineError, Event, Intent, Options, RunIdentity, StepReport};
use migrate_postgres::{PostgresDriver, SessionSettings};
use migrate_testkit::{describe_schema, TestDb};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const VERSION_TABLE: &str = "alembic_version";
pub const HISTORY_TABLE: &str = "identity_migrate_history";

/// The identity recorded in every history row these tests write.
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

/// A new driver (its own sessions) on the test database.
pub fn driver(db: &TestDb) -> PostgresDriver {
    driver_with(db, SessionSettings::default())
}

/// A new driver with the given session settings.
pub fn driver_with(db: &TestDb, session: SessionSettings) -> PostgresDriver {
    let settings = migrate_postgres::url::parse_with_process_env(&db.url())
        .expect("the test database URL parses");
    PostgresDriver::connect(&settings, session).expect("connect to the test database")
}

/// An engine with default options on a new driver.
pub fn engine<'g>(db: &TestDb, graph: &'g RevisionGraph) -> Engine<'g> {
    Engine::new(Box::new(driver(db)), graph, options())
}

/// An engine with the given options on a new driver.
pub fn engine_with<'g>(db: &TestDb, graph: &'g RevisionGraph, options: Options) -> Engine<'g> {
    Engine::new(Box::new(driver(db)), graph, options)
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

pub fn up(target: &str) -> Intent {
    Intent::Upgrade(target.to_owned())
}

pub fn down(target: &str) -> Intent {
    Intent::Downgrade(target.to_owned())
}

/// A fixture of `tests/fixtures/spec`: the expected `describe_schema` output at a revision.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/spec/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The tables of `public` as the independent oracle prints them (the tool's tables left out).
pub fn describe(db: &TestDb) -> String {
    describe_schema(&mut db.client(), &["public"])
}

/// Asserts that the live schema, every namespace introspected, is what the revisions say it is
/// at `at` (`None` for base), both spelled by the database as `check` compares them: the oracle
/// for revisions that have no spec fixture (the hardening series, `legacy` schema included).
pub fn assert_schema_at(db: &TestDb, graph: &RevisionGraph, at: Option<&str>) {
    let heads: Heads = at
        .map(|a| [a.to_owned()].into_iter().collect())
        .unwrap_or_default();
    let applied = graph.applied(&heads).unwrap();
    let expected = migrate_core::render::schema_at(graph, &applied).unwrap();
    let mut driver = driver(db);
    let canonical = driver.canonicalize(&expected).unwrap();
    let live = driver.introspect().unwrap();
    // Column order is not drift, as `check` has it: undoing fbcbc6afff27's online type change
    // leaves user_activity_logs.session_id last.
    let differences: Vec<_> = migrate_core::diff::differences(&canonical, &live)
        .into_iter()
        .filter(|d| !d.detail.starts_with("column order "))
        .collect();
    assert!(
        differences.is_empty(),
        "at {}: the live schema differs from schema_at: {}",
        at.unwrap_or("base"),
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
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

/// Runs SQL on a plain connection of its own.
pub fn exec(db: &TestDb, sql: &str) {
    db.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column of every row, as text (`NULL` for null).
pub fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            r.get::<_, Option<String>>(0)
                .unwrap_or_else(|| "NULL".to_owned())
        })
        .collect()
}

/// One integer.
pub fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Whether a relation of that name exists in `public` (`to_regclass` is not null).
pub fn relation_exists(db: &TestDb, name: &str) -> bool {
    db.client()
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("public.{name}")],
        )
        .unwrap()
        .get(0)
}

/// The rows of `alembic_version`, sorted; empty when the table is missing.
pub fn versions(db: &TestDb) -> Vec<String> {
    if !relation_exists(db, VERSION_TABLE) {
        return Vec::new();
    }
    texts(
        db,
        "SELECT version_num::text FROM alembic_version ORDER BY version_num",
    )
}

/// One history row, read with plain SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub revision: String,
    pub direction: String,
    pub checksum: String,
    pub outcome: String,
    pub error: Option<String>,
    pub ran_by: String,
    pub tool_version: String,
}

/// The history table, oldest first; empty when it is missing.
pub fn history(db: &TestDb) -> Vec<Row> {
    if !relation_exists(db, HISTORY_TABLE) {
        return Vec::new();
    }
    db.client()
        .query(
            "SELECT revision::text, direction::text, checksum::text, outcome::text, error, \
             os_user || '@' || host, tool_version FROM identity_migrate_history ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| Row {
            revision: r.get(0),
            direction: r.get(1),
            checksum: r.get(2),
            outcome: r.get(3),
            error: r.get(4),
            ran_by: r.get(5),
            tool_version: r.get(6),
        })
        .collect()
}

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Everything a failed or refused command must leave as it found: the user's tables, the
/// version rows and the history.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub schema: String,
    pub versions: Vec<String>,
    pub history: Vec<Row>,
    pub version_table: bool,
    pub history_table: bool,
}

pub fn snapshot(db: &TestDb) -> Snapshot {
    Snapshot {
        schema: describe(db),
        versions: versions(db),
        history: history(db),
        version_table: relation_exists(db, VERSION_TABLE),
        history_table: relation_exists(db, HISTORY_TABLE),
    }
}

pub fn heads(ids: &[&str]) -> Heads {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

// ---- synthetic revisions ---------------------------------------------------------------

/// `CREATE TABLE <name> (id integer NOT NULL PRIMARY KEY)`.
pub fn table(name: &str) -> Table {
    Table::new(name)
        .column(Column::new("id", ColumnType::Integer).not_null())
        .primary_key(format!("{name}_pkey"), &["id"])
}

pub fn create_table(name: &str) -> Op {
    Op::CreateTable(table(name))
}

pub fn drop_table(name: &str) -> Op {
    Op::DropTable {
        table: TableName::new(name),
    }
}

/// Raw PostgreSQL.
pub fn sql(body: &str) -> Op {
    Op::Sql(RawSql {
        description: body.to_owned(),
        postgres: Some(body.to_owned()),
        sqlite: None,
    })
}

/// A revision that creates table `name` and whose downgrade drops it.
pub fn table_revision(id: &str, down: &[&str], name: &str) -> Revision {
    Revision::new(id, down, &format!("create {name}"))
        .upgrade(vec![create_table(name)])
        .downgrade(vec![drop_table(name)])
}

pub fn graph(revisions: Vec<Revision>) -> RevisionGraph {
    RevisionGraph::new(revisions).expect("the synthetic revisions form a graph")
}

pub fn step_ids(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.revision.clone()).collect()
}

pub fn report_ids(reports: &[StepReport]) -> Vec<String> {
    reports.iter().map(|r| r.step.revision.clone()).collect()
}

// ---- a driver that records what it is asked to execute ---------------------------------

/// The real PostgreSQL driver, unchanged, that also records every statement it is given to
/// execute, in order: what a run really sends to the server.
pub struct Recording {
    inner: PostgresDriver,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    pub fn new(inner: PostgresDriver) -> (Self, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            Recording {
                inner,
                log: Arc::clone(&log),
            },
            log,
        )
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
        self.log.lock().unwrap().extend(statements.iter().cloned());
        self.inner.execute_in_transaction(statements)
    }
    fn introspect(&mut self) -> Result<migrate_core::Schema, DriverError> {
        self.inner.introspect()
    }

    fn canonicalize(
        &mut self,
        expected: &migrate_core::Schema,
    ) -> Result<migrate_core::Schema, DriverError> {
        self.inner.canonicalize(expected)
    }

    fn execute_each(&mut self, statements: &[String]) -> Result<(), ExecError> {
        self.log.lock().unwrap().extend(statements.iter().cloned());
        self.inner.execute_each(statements)
    }
}

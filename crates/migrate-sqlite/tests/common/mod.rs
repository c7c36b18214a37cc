//! Helpers shared by the SQLite driver's integration tests: a database file in a temporary
//! directory, drivers and engines on it, and synthetic revisions.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use migrate_core::driver::Driver;
use migrate_core::{Heads, Op, RawSql, Revision, RevisionGraph, Schema};
use migrate_engine::{Engine, EngineError, Intent, Options, RunIdentity, StepReport};
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteTarget};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A database file in a temporary directory, removed with it.
pub struct TestFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestFile {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.db");
        TestFile { dir, path }
    }

    pub fn target(&self) -> SqliteTarget {
        SqliteTarget::File(self.path.clone())
    }

    /// A new driver (its own connection) on the file.
    pub fn driver(&self) -> SqliteDriver {
        SqliteDriver::connect(&self.target(), SqliteOptions::default()).unwrap()
    }

    /// A plain connection of its own, as the application would have.
    pub fn conn(&self) -> Connection {
        let conn = Connection::open(&self.path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }

    /// A path beside the database.
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The identity recorded in every history row these tests write.
pub fn identity() -> RunIdentity {
    RunIdentity {
        os_user: "test".into(),
        host: "test".into(),
        tool_version: "0".into(),
    }
}

pub fn options() -> Options {
    Options::new(identity())
}

pub fn engine<'g>(file: &TestFile, graph: &'g RevisionGraph) -> Engine<'g> {
    Engine::new(Box::new(file.driver()), graph, options())
}

pub fn run(engine: &mut Engine<'_>, intent: &Intent) -> Result<Vec<StepReport>, EngineError> {
    engine.run(intent, &mut |_| {})
}

pub fn up(target: &str) -> Intent {
    Intent::Upgrade(target.to_owned())
}

pub fn down(target: &str) -> Intent {
    Intent::Downgrade(target.to_owned())
}

/// One integer.
pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The first column of every row, as text.
pub fn texts(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .map(|v| v.unwrap().unwrap_or_else(|| "NULL".to_owned()))
        .collect()
}

/// A revision whose upgrade and downgrade are SQLite SQL.
pub fn sql_revision(id: &str, down: &[&str], up_sql: &str, down_sql: &str) -> Revision {
    let raw = |sql: &str| {
        Op::Sql(RawSql {
            description: "test".into(),
            postgres: Some(sql.to_owned()),
            sqlite: Some(sql.to_owned()),
        })
    };
    Revision::new(id, down, "test revision")
        .upgrade(vec![raw(up_sql)])
        .downgrade(vec![raw(down_sql)])
}

/// Twelve hex digits for revision number `n`.
pub fn rev_id(n: usize) -> String {
    format!("{n:012x}")
}

/// The schema `schema_at` gives for the database's heads.
pub fn expected_at(graph: &RevisionGraph, heads: &Heads) -> Schema {
    let applied = graph.applied(heads).unwrap();
    migrate_core::render::schema_at(graph, &applied).unwrap()
}

/// Asserts that the live schema equals the canonical form of what the revisions say.
pub fn assert_live_matches(file: &TestFile, graph: &RevisionGraph, at: &str) {
    let mut driver = file.driver();
    let heads = driver.read_heads().unwrap();
    let expected = expected_at(graph, &heads);
    let canonical = driver.canonicalize(&expected).unwrap();
    let live = driver.introspect().unwrap();
    // Undoing fbcbc6afff27 leaves user_activity_logs.session_id last: its online type change
    // adds the column back at the end, both ways (README, Changelog 0.2.0).
    let differences: Vec<_> = migrate_core::diff::differences(&canonical, &live)
        .into_iter()
        .filter(|d| !(d.name == "user_activity_logs" && d.detail.starts_with("column order")))
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
    let mut live = live;
    if let (Some(table), Some(want)) = (
        live.tables
            .get_mut(&migrate_core::TableName::new("user_activity_logs")),
        canonical.table(&migrate_core::TableName::new("user_activity_logs")),
    ) {
        // The same column order exemption as above.
        table.columns.sort_by_key(|c| {
            want.columns
                .iter()
                .position(|w| w.name == c.name)
                .unwrap_or(usize::MAX)
        });
    }
    assert_eq!(live, canonical, "at {at}");
}

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

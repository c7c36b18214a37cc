//! Helpers of the engine's PostgreSQL-only integration tests: an engine on a [`TestDb`] and the
//! database read back with plain SQL. The engine harness (intents, synthetic revisions, the
//! recording driver) is `migrate_testkit::harness`, shared with the drivers' tests.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub use migrate_testkit::harness::*;
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use migrate_testkit::{postgres_driver as driver, postgres_driver_with as driver_with};

use migrate_core::RevisionGraph;
use migrate_engine::{Engine, Options};
use migrate_testkit::{describe_schema, TestDb};

/// An engine with default options on a new driver.
pub fn engine<'g>(db: &TestDb, graph: &'g RevisionGraph) -> Engine<'g> {
    Engine::new(Box::new(driver(db)), graph, options())
}

/// An engine with the given options on a new driver.
pub fn engine_with<'g>(db: &TestDb, graph: &'g RevisionGraph, options: Options) -> Engine<'g> {
    Engine::new(Box::new(driver(db)), graph, options)
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

/// Asserts that the database is at `at` (`None` for base) and that its live schema, every
/// namespace introspected, is what the revisions say it is there: the oracle for revisions
/// that have no spec fixture (the hardening series, `legacy` schema included).
pub fn assert_schema_at(db: &TestDb, graph: &RevisionGraph, at: Option<&str>) {
    let mut driver = driver(db);
    let expected: Vec<String> = at.map(str::to_owned).into_iter().collect();
    let heads: Vec<String> = migrate_core::driver::Driver::read_heads(&mut driver)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(heads, expected);
    assert_live_matches(&mut driver, graph, at.unwrap_or("base"));
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

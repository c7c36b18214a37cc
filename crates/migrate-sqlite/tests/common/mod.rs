//! Helpers of the SQLite driver's integration tests: an engine on a [`TestFile`] and plain
//! connections to read it back. The engine harness (intents, synthetic revisions, the
//! `schema_at` oracle) is `migrate_testkit::harness`, shared with the engine's tests.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub use migrate_testkit::harness::*;
pub use migrate_testkit::TestFile;

use migrate_core::RevisionGraph;
use migrate_engine::Engine;
use rusqlite::Connection;
use std::path::Path;

/// An engine with default options on a new driver.
pub fn engine<'g>(file: &TestFile, graph: &'g RevisionGraph) -> Engine<'g> {
    Engine::new(Box::new(file.driver()), graph, options())
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

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

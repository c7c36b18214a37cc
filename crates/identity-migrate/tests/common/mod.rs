//! Shared helpers of the command-line tests: run the binary in a clean environment, look at a
//! test database, and read JSON (`serde_json`) with accessors that say what was expected.
//!
//! Every run removes `DATABASE_URL` and every `PG*` variable, points `HOME` at the test's own
//! directory (so no `~/.pgpass` answers for it) and runs in that directory, so that no stray
//! `.env` or `identity-migrate.toml` is picked up.

#![allow(dead_code)]

use migrate_testkit::TestDb;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The first revision.
pub const R1: &str = "974799e38366";
/// The second revision, the last one of the original Alembic tooling (no longer the head: the
/// hardening series follows it). Tests about the two legacy revisions target it explicitly.
pub const R2: &str = "68d314520251";

/// Every revision of the identity graph, oldest first, walked back from its only head.
///
/// Panics unless the graph is a straight line (one head, one root, no merge), which the tests
/// that count steps rely on.
pub fn chain() -> Vec<String> {
    let graph = identity_schema::graph();
    let heads = graph.heads();
    assert_eq!(heads.len(), 1, "one head: {heads:?}");
    let mut ids = vec![heads[0].to_owned()];
    loop {
        let last = ids.last().expect("at least the head");
        let down = &graph.get(last).expect("a revision of the graph").down;
        assert!(down.len() <= 1, "{last} is a merge: {down:?}");
        match down.first() {
            Some(parent) => ids.push(parent.clone()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(ids.len(), graph.revisions().len(), "one line: {ids:?}");
    assert_eq!(ids[..2], [R1, R2], "the legacy revisions come first");
    ids
}

/// The head of the identity graph.
pub fn head() -> String {
    identity_schema::graph().heads()[0].to_owned()
}

/// How many revisions the identity graph has (every one a step from base to head).
pub fn revision_count() -> usize {
    identity_schema::graph().revisions().len()
}

/// The revision just before the head.
pub fn before_head() -> String {
    let ids = chain();
    ids[ids.len() - 2].clone()
}

/// The history rows a migration from base to head leaves: every revision `up applied`.
pub fn history_to_head() -> Vec<String> {
    chain()
        .iter()
        .map(|id| format!("{id} up applied"))
        .collect()
}

/// What one run of the binary gave.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Panics unless the run exited 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }

    /// stdout and stderr together, for "appears nowhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A fresh temporary directory to run in.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// The binary, in `dir`, with a clean environment (see the module doc); `.env` is not read.
pub fn command(dir: &Path) -> Command {
    let mut c = command_with_dotenv(dir);
    c.arg("--no-dotenv");
    c
}

/// Like [`command`], but the binary may read `dir/.env`.
pub fn command_with_dotenv(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_identity-migrate"));
    c.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            c.env_remove(name);
        }
    }
    c
}

/// Runs a prepared command to completion.
pub fn output(c: &mut Command) -> Out {
    let o = c.output().expect("run identity-migrate");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs the binary with `args` in `dir` (no `.env`).
pub fn run(dir: &Path, args: &[&str]) -> Out {
    output(command(dir).args(args))
}

/// Runs the binary against `db` (`--database-url` first, then `args`).
pub fn run_db(dir: &Path, db: &TestDb, args: &[&str]) -> Out {
    let url = db.url();
    output(command(dir).args(["--database-url", &url]).args(args))
}

/// Asserts the shape of every bad-input answer: a non-zero exit (`code`), exactly one line on
/// stderr starting with `error: `, no panic, nothing on stdout. Returns the error line.
#[track_caller]
pub fn assert_one_error(out: &Out, code: i32) -> String {
    assert_eq!(out.code, code, "exit code:\n{out}");
    assert_eq!(out.stdout, "", "stdout must be empty:\n{out}");
    assert_one_error_line(out)
}

/// Like [`assert_one_error`] without the exit code and stdout checks (a failed step may have
/// said what it was about to do on stdout).
#[track_caller]
pub fn assert_one_error_line(out: &Out) -> String {
    assert_ne!(out.code, 0, "expected a failure:\n{out}");
    assert!(!out.all().contains("panicked"), "panic:\n{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be exactly one line:\n{out}");
    assert!(lines[0].starts_with("error: "), "error line:\n{out}");
    assert!(out.stderr.ends_with('\n'), "unterminated line:\n{out}");
    lines[0].to_owned()
}

/// The first column of every row of `sql`, as text (the query must return text).
pub fn strings(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// Runs SQL on the database.
pub fn execute(db: &TestDb, sql: &str) {
    db.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The tables of the `public` schema, sorted.
pub fn tables(db: &TestDb) -> Vec<String> {
    strings(
        db,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
}

/// Every relation of any kind (tables, sequences, indexes, views) outside the system schemas.
pub fn relations(db: &TestDb) -> Vec<String> {
    strings(
        db,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    )
}

/// `alembic_version`'s rows, sorted; `None` when the table does not exist.
pub fn version(db: &TestDb) -> Option<Vec<String>> {
    let exists = strings(
        db,
        "SELECT (to_regclass('public.alembic_version') IS NOT NULL)::text",
    );
    (exists == ["true"]).then(|| {
        strings(
            db,
            "SELECT version_num::text FROM alembic_version ORDER BY 1",
        )
    })
}

/// The history table as `revision direction outcome` lines, oldest first; empty if absent.
pub fn history(db: &TestDb) -> Vec<String> {
    let exists = strings(
        db,
        "SELECT (to_regclass('public.identity_migrate_history') IS NOT NULL)::text",
    );
    if exists != ["true"] {
        return Vec::new();
    }
    strings(
        db,
        "SELECT revision || ' ' || direction || ' ' || outcome FROM identity_migrate_history ORDER BY id",
    )
}

/// The schema as the test kit's oracle prints it (`public` and the `legacy` schema the head
/// moves the leftover tables to), plus the tool's tables' contents.
pub fn snapshot(db: &TestDb) -> String {
    let mut client = db.client();
    let schema = migrate_testkit::describe_schema(&mut client, &["public", "legacy"]);
    format!(
        "{schema}\nversion {:?}\nhistory {:?}\nrelations {:?}",
        version(db),
        history(db),
        relations(db)
    )
}

/// A migrated database at `target` (`head`, an id...).
pub fn db_at(dir: &Path, target: &str) -> TestDb {
    let db = TestDb::new();
    run_db(dir, &db, &["migrate-to", target]).ok();
    db
}

/// A JSON document as `serde_json` reads it.
pub use serde_json::Value as Json;

/// Parses one JSON document; panics, showing it, if it is not JSON.
#[track_caller]
pub fn parse_json(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Accessors that panic with the document when it does not have the expected shape, so that a
/// test reads as the path it checks.
pub trait JsonExt {
    /// The member `key` of an object; panics if absent.
    fn at(&self, key: &str) -> &Json;
    /// The elements of an array; panics otherwise.
    fn items(&self) -> &[Json];
    /// The keys of an object; panics otherwise.
    fn keys(&self) -> Vec<String>;
    /// The value of a number; panics otherwise.
    fn number(&self) -> f64;
    /// The text of a string; panics otherwise.
    fn str(&self) -> &str;
}

impl JsonExt for Json {
    #[track_caller]
    fn at(&self, key: &str) -> &Json {
        self.as_object()
            .unwrap_or_else(|| panic!("not an object: {self}"))
            .get(key)
            .unwrap_or_else(|| panic!("no member {key:?} in {self}"))
    }

    #[track_caller]
    fn items(&self) -> &[Json] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }

    #[track_caller]
    fn keys(&self) -> Vec<String> {
        self.as_object()
            .unwrap_or_else(|| panic!("not an object: {self}"))
            .keys()
            .cloned()
            .collect()
    }

    #[track_caller]
    fn number(&self) -> f64 {
        self.as_f64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }

    #[track_caller]
    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }
}

/// A database of either kind, for the scenarios that run on both: a SQLite file or a PostgreSQL
/// test database.
pub enum Db {
    Sqlite(PathBuf),
    Postgres(TestDb),
}

impl Db {
    /// The URL the binary is given.
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite:///{}", path.display()),
            Db::Postgres(db) => db.url(),
        }
    }

    /// Runs `sql` on the database, behind the tool's back.
    pub fn execute(&self, sql: &str) {
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .expect("open")
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Db::Postgres(db) => execute(db, sql),
        }
    }
}

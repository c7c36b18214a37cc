//! The exact text of the scripts `generate-sql` and `migrate --dry-run` print, byte for byte
//! (insta snapshots): a refactoring of how scripts are planned or framed must not change them
//! unless the snapshot is reviewed.

mod common;

use common::{chain, command, output, tempdir, R2};
use migrate_testkit::TestDb;
use std::path::Path;

/// Runs the binary as user `tester`, and hides what differs between machines and releases in
/// its output: the host name and the tool's version that history rows record.
fn stable_stdout(dir: &Path, args: &[&str]) -> String {
    let out = output(
        command(dir)
            .env("USER", "tester")
            .env_remove("LOGNAME")
            .args(args),
    )
    .ok();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    out.stdout
        .replace(&format!("'{host}'"), "'HOST'")
        .replace(&format!("'{}'", env!("CARGO_PKG_VERSION")), "'VERSION'")
}

fn generate(args: &[&str]) -> String {
    let dir = tempdir();
    let mut all = vec!["generate-sql"];
    all.extend_from_slice(args);
    stable_stdout(dir.path(), &all)
}

#[test]
fn generate_sql_postgres_base_to_head() {
    insta::assert_snapshot!(generate(&[
        "--dialect",
        "postgres",
        "--from",
        "base",
        "--to",
        "head"
    ]));
}

#[test]
fn generate_sql_sqlite_base_to_head() {
    insta::assert_snapshot!(generate(&[
        "--dialect",
        "sqlite",
        "--from",
        "base",
        "--to",
        "head"
    ]));
}

#[test]
fn generate_sql_postgres_from_a_revision() {
    insta::assert_snapshot!(generate(&[
        "--dialect",
        "postgres",
        "--from",
        R2,
        "--to",
        "head"
    ]));
}

#[test]
fn generate_sql_both_dialects_head_to_base() {
    let head = chain().last().expect("a head").clone();
    insta::assert_snapshot!(
        "generate_sql_postgres_head_to_base",
        generate(&["--dialect", "postgres", "--from", &head, "--to", "base"])
    );
    insta::assert_snapshot!(
        "generate_sql_sqlite_head_to_base",
        generate(&["--dialect", "sqlite", "--from", &head, "--to", "base"])
    );
}

/// The dry run names its database: the test database's name varies, so it is replaced.
fn dry_run_postgres(db: &TestDb, args: &[&str]) -> String {
    let dir = tempdir();
    let url = db.url();
    let mut all = vec!["--database-url", &url];
    all.extend_from_slice(args);
    stable_stdout(dir.path(), &all).replace(db.name(), "TEST_DB")
}

#[test]
fn dry_run_postgres_base_to_head() {
    let db = TestDb::new();
    insta::assert_snapshot!(dry_run_postgres(&db, &["migrate", "--dry-run"]));
}

#[test]
fn dry_run_postgres_single_transaction_to_r2() {
    let db = TestDb::new();
    insta::assert_snapshot!(dry_run_postgres(
        &db,
        &["migrate-to", R2, "--dry-run", "--single-transaction"]
    ));
}

#[test]
fn dry_run_postgres_rollback_from_head() {
    let db = TestDb::new();
    let dir = tempdir();
    common::run_db(dir.path(), &db, &["migrate"]).ok();
    insta::assert_snapshot!(dry_run_postgres(&db, &["rollback", "base", "--dry-run"]));
}

/// SQLite's dry run of a file not created yet.
#[test]
fn dry_run_sqlite_base_to_head() {
    let dir = tempdir();
    let text = stable_stdout(
        dir.path(),
        &[
            "--database-url",
            "sqlite:///./fresh.db",
            "migrate",
            "--dry-run",
        ],
    );
    insta::assert_snapshot!(text);
}

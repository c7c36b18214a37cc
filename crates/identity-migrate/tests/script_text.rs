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

/// The SQLite dry run frames each transaction as the driver runs it (foreign keys off,
/// `BEGIN IMMEDIATE`, the foreign-key guard before `COMMIT`: the same texts the driver
/// executes, from `migrate_core::render::transaction_framing`), and the printed script, run by
/// the `sqlite3` shell on one file, leaves what `migrate` leaves on another.
#[test]
fn sqlite_dry_run_prints_what_the_driver_runs() {
    use migrate_core::render::{transaction_framing, FOREIGN_KEY_GUARD};
    let framing = transaction_framing(migrate_core::Dialect::Sqlite);
    assert_eq!(framing.begin, "BEGIN IMMEDIATE");
    assert_eq!(framing.checks, FOREIGN_KEY_GUARD);
    let guard_end = format!("{};", FOREIGN_KEY_GUARD[2]);

    let dir = tempdir();
    let url = |file: &str| format!("sqlite:///{}", dir.path().join(file).display());
    // Run as printed: the history rows keep this machine's host and this version.
    let text = output(command(dir.path()).args([
        "--database-url",
        &url("by_hand.db"),
        "migrate",
        "--dry-run",
    ]))
    .ok()
    .stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"PRAGMA foreign_keys = OFF;"), "{text}");
    assert!(
        !lines.contains(&"BEGIN;"),
        "a plain BEGIN is not what runs:\n{text}"
    );
    let begins = lines.iter().filter(|l| **l == "BEGIN IMMEDIATE;").count();
    let checks = lines.iter().filter(|l| **l == guard_end).count();
    let commits = lines.iter().filter(|l| **l == "COMMIT;").count();
    // The tool's tables, then one transaction per revision.
    assert_eq!(begins, 1 + chain().len(), "{text}");
    assert_eq!((checks, commits), (begins, begins), "{text}");
    // Each check, whole, comes right before its COMMIT.
    for (i, line) in lines.iter().enumerate() {
        if *line == "COMMIT;" {
            let guard: Vec<String> = FOREIGN_KEY_GUARD.iter().map(|s| format!("{s};")).collect();
            assert_eq!(lines[i - 3..i], guard, "{text}");
        }
    }

    let script = dir.path().join("dry-run.sql");
    std::fs::write(&script, &text).expect("write the script");
    let shell = std::process::Command::new("sqlite3")
        .arg("-bail")
        .arg(dir.path().join("by_hand.db"))
        .stdin(std::fs::File::open(&script).expect("open the script"))
        .output()
        .expect("run sqlite3 (Debian: apt-get install sqlite3)");
    assert!(
        shell.status.success() && shell.stdout.is_empty(),
        "sqlite3: {}{}",
        String::from_utf8_lossy(&shell.stdout),
        String::from_utf8_lossy(&shell.stderr)
    );
    output(command(dir.path()).args(["--database-url", &url("migrated.db"), "migrate"])).ok();

    let dump = |file: &str| {
        let conn = rusqlite::Connection::open(dir.path().join(file)).expect("open");
        let mut rows: Vec<String> = Vec::new();
        for sql in [
            "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
            "SELECT version_num FROM alembic_version",
            "SELECT revision || ' ' || direction || ' ' || checksum || ' ' || outcome || ' ' || os_user || ' ' || host || ' ' || tool_version FROM identity_migrate_history ORDER BY id",
        ] {
            let mut stmt = conn.prepare(sql).expect(sql);
            let found = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .expect(sql)
                .collect::<Result<Vec<_>, _>>()
                .expect(sql);
            rows.extend(found);
        }
        rows
    };
    let by_hand = dump("by_hand.db");
    assert!(
        by_hand.iter().any(|r| r.starts_with("table users: ")),
        "{by_hand:?}"
    );
    assert_eq!(by_hand, dump("migrated.db"));
}

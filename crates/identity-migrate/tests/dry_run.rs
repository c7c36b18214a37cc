//! `--dry-run`: prints the statements of the real run, from the database's real revision, and
//! changes nothing at all, not even the creation of the tool's own tables.

mod common;

use common::{chain, db_at, head, relations, run_db, snapshot, tables, tempdir, version, R1, R2};
use migrate_testkit::TestDb;
use std::process::Command;

#[test]
fn migrate_dry_run_on_a_fresh_database_creates_nothing() {
    let dir = tempdir();
    let db = TestDb::new();
    let before = relations(&db);
    let out = run_db(dir.path(), &db, &["migrate", "--dry-run"]).ok();
    let sql = &out.stdout;
    assert!(
        sql.contains("CREATE TABLE IF NOT EXISTS alembic_version"),
        "{out}"
    );
    assert!(sql.contains("CREATE TABLE users_simple ("), "{out}");
    assert!(sql.contains("CREATE TABLE users ("), "{out}");
    assert!(sql.contains("CREATE TABLE organizations ("), "{out}");
    assert!(
        sql.contains(&format!(
            "INSERT INTO alembic_version (version_num) VALUES ('{R1}');"
        )),
        "{out}"
    );
    assert!(
        sql.contains(&format!(
            "UPDATE alembic_version SET version_num = '{R2}' WHERE version_num = '{R1}';"
        )),
        "{out}"
    );
    let ids = chain();
    assert!(
        sql.contains(&format!(
            "-- From base to {}: {} step(s)\n",
            head(),
            ids.len()
        )),
        "{out}"
    );
    // Every step, in order, each moving the version on by one.
    let mut at = 0;
    for (i, id) in ids.iter().enumerate() {
        let from = if i == 0 { "base" } else { ids[i - 1].as_str() };
        let header = format!("-- Upgrade {from} -> {id}: ");
        let found = sql[at..]
            .find(&header)
            .unwrap_or_else(|| panic!("{header} after byte {at}:\n{out}"));
        at += found + header.len();
        if i > 0 {
            assert!(
                sql.contains(&format!(
                    "UPDATE alembic_version SET version_num = '{id}' WHERE version_num = '{from}';"
                )),
                "{out}"
            );
        }
    }
    // Nothing at all: no table, no sequence, no version table.
    assert_eq!(
        tables(&db),
        Vec::<String>::new(),
        "pg_tables of public must be empty"
    );
    assert_eq!(version(&db), None, "alembic_version must not exist");
    assert_eq!(relations(&db), before);
}

#[test]
fn migrate_dry_run_output_is_the_real_run() {
    // What the dry run prints is runnable as is (it frames each revision in BEGIN/COMMIT, as
    // the run does) and leaves the same schema and version as `migrate` itself.
    let dir = tempdir();
    let planned = TestDb::new();
    let script = run_db(dir.path(), &planned, &["migrate", "--dry-run"])
        .ok()
        .stdout;
    let file = dir.path().join("dry-run.sql");
    std::fs::write(&file, &script).expect("write the script");
    let by_psql = TestDb::new();
    let psql = Command::new("/usr/bin/psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &by_psql.url(),
            "-f",
        ])
        .arg(&file)
        .env("HOME", dir.path())
        .output()
        .expect("run psql");
    assert!(
        psql.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&psql.stderr)
    );
    let migrated = db_at(dir.path(), "head");
    let strip_history = |s: String| -> String {
        s.lines()
            .filter(|l| !l.starts_with("history "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_history(snapshot(&by_psql)),
        strip_history(snapshot(&migrated))
    );
    assert_eq!(
        common::history(&by_psql),
        common::history(&migrated),
        "same history rows"
    );
    // And the tool finds exactly its head schema there.
    run_db(dir.path(), &by_psql, &["check"]).ok();
}

#[test]
fn rollback_to_base_dry_run_at_head_changes_nothing() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let before = snapshot(&db);
    let out = run_db(dir.path(), &db, &["rollback", "base", "--dry-run"]).ok();
    let ids = chain();
    assert!(
        out.stdout.contains(&format!(
            "-- From {} to base: {} step(s)\n",
            head(),
            ids.len()
        )),
        "{out}"
    );
    // Every step, newest first, down to base.
    let mut at = 0;
    for (i, id) in ids.iter().enumerate().rev() {
        let to = if i == 0 { "base" } else { ids[i - 1].as_str() };
        let header = format!("-- Downgrade {id} -> {to}: ");
        let found = out.stdout[at..]
            .find(&header)
            .unwrap_or_else(|| panic!("{header} after byte {at}:\n{out}"));
        at += found + header.len();
    }
    assert!(
        out.stdout.contains(&format!("Downgrade {R2} -> {R1}")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("Downgrade {R1} -> base")),
        "{out}"
    );
    assert!(out.stdout.contains("DROP TABLE users;"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "DELETE FROM alembic_version WHERE version_num = '{R1}';"
        )),
        "{out}"
    );
    assert!(
        !out.stdout
            .contains("CREATE TABLE IF NOT EXISTS alembic_version"),
        "the tool's tables exist already:\n{out}"
    );
    assert_eq!(snapshot(&db), before);
    assert_eq!(version(&db), Some(vec![head()]));
}

#[test]
fn dry_run_starts_at_the_databases_revision() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let before = snapshot(&db);
    let out = run_db(dir.path(), &db, &["migrate", "--dry-run"]).ok();
    assert!(
        out.stdout.contains(&format!(
            "-- From {R1} to {}: {} step(s)\n",
            head(),
            chain().len() - 1
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("-- Upgrade {R1} -> {R2}: ")),
        "{out}"
    );
    assert!(
        !out.stdout.contains(&format!("-- Upgrade base -> {R1}")),
        "{out}"
    );
    assert!(!out.stdout.contains("CREATE TABLE users_simple"), "{out}");
    assert!(!out.stdout.contains("CREATE TABLE IF NOT EXISTS"), "{out}");
    assert!(out.stdout.contains("CREATE TABLE users ("), "{out}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn dry_run_at_head_has_no_steps() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let before = snapshot(&db);
    let out = run_db(dir.path(), &db, &["migrate", "--dry-run"]).ok();
    assert!(out.stdout.contains(": 0 step(s)"), "{out}");
    assert!(!out.stdout.contains("CREATE"), "{out}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn dry_run_with_create_database_creates_nothing() {
    // `--dry-run --create-database` on a missing database: it says the database is missing
    // and creates neither it nor anything in it.
    let dir = tempdir();
    let db = TestDb::new();
    let missing = format!("{}_missing", db.name());
    let url = db.url().replace(db.name(), &missing);
    let out = common::run(
        dir.path(),
        &[
            "--database-url",
            &url,
            "migrate",
            "--dry-run",
            "--create-database",
        ],
    );
    let line = common::assert_one_error(&out, 1);
    assert!(line.contains(&missing), "{out}");
    let exists = common::strings(
        &db,
        &format!("SELECT datname::text FROM pg_database WHERE datname = '{missing}'"),
    );
    assert!(exists.is_empty(), "the dry run created {missing}");
}

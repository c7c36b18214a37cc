//! `generate-sql`: a script for review that, applied with `psql -v ON_ERROR_STOP=1` as its
//! header says (`-1` when the range can be one transaction), gives the same schema as `migrate`
//! (compared with `pg_dump --schema-only`).

mod common;

use common::{chain, db_at, head, run, run_db, tempdir, version, R1};
use migrate_testkit::TestDb;
use std::path::Path;
use std::process::Command;

/// Runs a PostgreSQL client program against `db` (its URL as the connection string), with no
/// PG* variable and no ~/.pgpass of the machine; panics unless it succeeds.
fn pg_tool(program: &str, db: &TestDb, home: &Path, args: &[&str]) -> String {
    let mut c = Command::new(program);
    c.args(args).arg("-d").arg(db.url()).env("HOME", home);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            c.env_remove(name);
        }
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The schema as pg_dump prints it, without what differs between two identical databases:
/// the database's name, the `\restrict` keys of newer pg_dump releases, and version comments.
fn schema_dump(db: &TestDb, home: &Path) -> String {
    pg_tool(
        "/usr/bin/pg_dump",
        db,
        home,
        &["--schema-only", "--no-owner", "--no-privileges"],
    )
    .lines()
    .filter(|l| {
        !l.contains(db.name())
            && !l.starts_with("\\restrict")
            && !l.starts_with("\\unrestrict")
            && !l.starts_with("-- Dumped ")
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// Applies a generated script with psql, in one transaction (`-1`) or as it frames itself.
fn psql_file(db: &TestDb, home: &Path, file: &Path, one_transaction: bool) {
    let file = file.to_str().expect("utf-8");
    let mut args = vec!["-X", "-q", "-v", "ON_ERROR_STOP=1"];
    if one_transaction {
        args.push("-1");
    }
    args.extend(["-f", file]);
    pg_tool("/usr/bin/psql", db, home, &args);
}

#[test]
fn generated_sql_applied_by_psql_equals_migrate() {
    let dir = tempdir();
    let file = dir.path().join("identity.sql");
    // No database configured at all: the script goes from base (the embedded SQLite file does
    // not exist), in the dialect asked for.
    let out = run(
        dir.path(),
        &[
            "generate-sql",
            "--dialect",
            "postgres",
            "--output",
            file.to_str().expect("utf-8 path"),
        ],
    )
    .ok();
    assert_eq!(out.stdout, "", "the script goes to the file:\n{out}");
    let script = std::fs::read_to_string(&file).expect("read the script");
    let (head, n) = (head(), chain().len());
    assert!(
        script.contains(&format!(
            "-- Range: base -> {head} ({n} step(s)), PostgreSQL"
        )),
        "{script}"
    );
    // The last revision builds indexes concurrently: the script says so, and frames each
    // revision in its own transaction, as `migrate` runs them, for psql without -1.
    assert!(
        script.contains("-- Apply with: psql -v ON_ERROR_STOP=1 -f FILE (each revision")
            && script.contains("WARNING: some statements cannot run in a transaction"),
        "{script}"
    );
    // One transaction for the tool's tables, one per revision (the last one's bookkeeping).
    assert_eq!(script.matches("\nBEGIN;\n").count(), n + 1, "{script}");
    assert!(script.contains("CREATE UNIQUE INDEX CONCURRENTLY uq_users_lower_email_live"));

    let by_psql = TestDb::new();
    psql_file(&by_psql, dir.path(), &file, false);
    let migrated = db_at(dir.path(), "head");

    let a = schema_dump(&by_psql, dir.path());
    let b = schema_dump(&migrated, dir.path());
    // The whole chain is there: the tables, the trigger and its function, the leftover tables
    // under their legacy_ names, the CHECKs, the concurrent indexes.
    for part in [
        "CREATE TABLE public.users (",
        "CREATE TABLE public.legacy_user_sessions_simple (",
        "CREATE FUNCTION public.",
        "CREATE TRIGGER ",
        "CONSTRAINT users_status_check CHECK",
        "CREATE UNIQUE INDEX uq_users_lower_email_live",
    ] {
        assert!(a.contains(part), "{part} in:\n{a}");
    }
    assert_eq!(a, b, "pg_dump --schema-only differs");
    assert_eq!(version(&by_psql), Some(vec![head]));
    assert_eq!(common::history(&by_psql), common::history(&migrated));
    assert_eq!(common::history(&by_psql), common::history_to_head());

    // And the tool accepts the database psql built as its own, with exactly the head's schema.
    let status = run_db(dir.path(), &by_psql, &["status"]).ok();
    assert!(status.stdout.contains("up to date"), "{status}");
    run_db(dir.path(), &by_psql, &["check"]).ok();
}

#[test]
fn generated_sql_of_a_transactional_range_is_one_transaction_for_psql_1() {
    let dir = tempdir();
    let file = dir.path().join("identity.sql");
    let to = common::before_head();
    run(
        dir.path(),
        &[
            "generate-sql",
            "--dialect",
            "postgres",
            "--to",
            &to,
            "--output",
            file.to_str().expect("utf-8 path"),
        ],
    )
    .ok();
    let script = std::fs::read_to_string(&file).expect("read the script");
    assert!(
        script.contains("-- Apply with: psql -v ON_ERROR_STOP=1 -1 -f FILE (one transaction"),
        "{script}"
    );
    assert!(
        !script.contains("BEGIN;") && !script.contains("COMMIT;") && !script.contains("WARNING"),
        "psql -1 frames it"
    );
    let by_psql = TestDb::new();
    psql_file(&by_psql, dir.path(), &file, true);
    let migrated = db_at(dir.path(), &to);
    assert_eq!(
        schema_dump(&by_psql, dir.path()),
        schema_dump(&migrated, dir.path())
    );
    assert_eq!(version(&by_psql), Some(vec![to]));
    assert_eq!(common::history(&by_psql), common::history(&migrated));
}

#[test]
fn generate_sql_from_the_first_revision() {
    let dir = tempdir();
    let out = run(
        dir.path(),
        &[
            "generate-sql",
            "--dialect",
            "postgres",
            "--from",
            R1,
            "--to",
            "head",
        ],
    )
    .ok();
    assert!(
        out.stdout.contains(&format!(
            "-- Range: {R1} -> {} ({} step(s))",
            head(),
            chain().len() - 1
        )),
        "{out}"
    );
    assert!(!out.stdout.contains("CREATE TABLE users_simple"), "{out}");
    assert!(!out.stdout.contains("CREATE TABLE IF NOT EXISTS"), "{out}");
    assert!(out.stdout.contains("CREATE TABLE users ("), "{out}");

    // Applied with psql to a database at R1, it reaches head like migrate does.
    let file = dir.path().join("step.sql");
    std::fs::write(&file, &out.stdout).expect("write");
    let by_psql = db_at(dir.path(), R1);
    psql_file(&by_psql, dir.path(), &file, false);
    let migrated = db_at(dir.path(), "head");
    assert_eq!(
        schema_dump(&by_psql, dir.path()),
        schema_dump(&migrated, dir.path())
    );
    assert_eq!(version(&by_psql), Some(vec![head()]));
    run_db(dir.path(), &by_psql, &["check"]).ok();
}

#[test]
fn generate_sql_from_a_database_at_head_has_no_steps() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let out = run_db(dir.path(), &db, &["generate-sql"]).ok();
    let head = head();
    assert!(
        out.stdout
            .contains(&format!("-- Range: {head} -> {head} (0 step(s))")),
        "{out}"
    );
    assert!(!out.stdout.contains("CREATE"), "{out}");
    assert!(!out.stdout.contains("INSERT"), "{out}");
}

#[test]
fn generate_sql_from_a_database_starts_at_its_revision() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let out = run_db(dir.path(), &db, &["generate-sql"]).ok();
    assert!(
        out.stdout.contains(&format!(
            "-- Range: {R1} -> {} ({} step(s))",
            head(),
            chain().len() - 1
        )),
        "{out}"
    );
    assert!(!out.stdout.contains("CREATE TABLE users_simple"), "{out}");
    // Logs say where it started, on stderr only.
    assert!(out.stderr.contains(R1), "{out}");
    assert_eq!(
        version(&db),
        Some(vec![R1.to_owned()]),
        "generate-sql changes nothing"
    );
}

#[test]
fn generate_sql_downward() {
    let dir = tempdir();
    let head = head();
    let out = run(
        dir.path(),
        &[
            "generate-sql",
            "--dialect",
            "postgres",
            "--from",
            &head,
            "--to",
            "base",
        ],
    )
    .ok();
    assert!(
        out.stdout.contains(&format!(
            "-- Range: {head} -> base ({} step(s))",
            chain().len()
        )),
        "{out}"
    );
    assert!(out.stdout.contains("DROP TABLE users;"), "{out}");

    // Applied with psql to a database at head, it gives what `rollback base` gives.
    let file = dir.path().join("down.sql");
    std::fs::write(&file, &out.stdout).expect("write");
    let by_psql = db_at(dir.path(), "head");
    psql_file(&by_psql, dir.path(), &file, false);
    let rolled_back = db_at(dir.path(), "head");
    run_db(dir.path(), &rolled_back, &["rollback", "base"]).ok();
    assert_eq!(
        schema_dump(&by_psql, dir.path()),
        schema_dump(&rolled_back, dir.path())
    );
    assert_eq!(version(&by_psql), Some(Vec::new()));
}

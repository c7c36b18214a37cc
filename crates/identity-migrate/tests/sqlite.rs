//! What only SQLite has: its URL forms, its integrity check in `verify`, and backups that cannot
//! cross from one database kind to the other. The scenarios both databases share are in
//! `both_databases.rs`.

mod common;

use common::{assert_one_error, head, run, run_db, tempdir};
use migrate_testkit::TestDb;

#[test]
fn url_forms_name_the_file_the_service_opens() {
    let dir = tempdir();
    // SQLAlchemy's three slashes are relative to the working directory.
    run(
        dir.path(),
        &[
            "--database-url",
            "sqlite+aiosqlite:///service.db",
            "migrate",
        ],
    )
    .ok();
    assert!(dir.path().join("service.db").exists());
    let absolute = format!("sqlite://{}", dir.path().join("service.db").display());
    let out = run(dir.path(), &["--database-url", &absolute, "status"]).ok();
    assert!(out.stdout.contains("up to date"), "{out}");

    // In memory: migrated and gone with the command.
    let out = run(
        dir.path(),
        &["--database-url", "sqlite::memory:", "migrate"],
    )
    .ok();
    assert!(
        out.stdout
            .contains(&format!("the database is at {}", head())),
        "{out}"
    );
    let out = run(dir.path(), &["--database-url", "sqlite::memory:", "status"]).ok();
    assert!(out.stdout.contains("base (no revision applied)"), "{out}");

    // A query string is refused rather than ignored.
    let out = run(
        dir.path(),
        &["--database-url", "sqlite:service.db?mode=ro", "status"],
    );
    assert_one_error(&out, 2);
}

#[test]
fn verify_fails_on_a_broken_foreign_key() {
    let dir = tempdir();
    run(dir.path(), &["migrate"]).ok();
    let out = run(dir.path(), &["verify"]).ok();
    assert!(out.stdout.contains("ok    integrity"), "{out}");

    // A row written with foreign keys off, as a careless script might.
    let conn = rusqlite::Connection::open(dir.path().join("identity_service.db")).expect("open");
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO users (id, organization_id, email, username, password_hash)
         VALUES ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-00000000dead',
                 'ada@example.com', 'ada', 'h');",
    )
    .expect("insert");
    drop(conn);
    let out = run(dir.path(), &["verify"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stdout.contains("FAIL  integrity"), "{out}");
    assert!(out.stdout.contains("foreign keys broken"), "{out}");
}

#[test]
fn backups_do_not_cross_database_kinds() {
    let dir = tempdir();
    run(dir.path(), &["migrate"]).ok();
    let lite = dir.path().join("lite.db");
    run(dir.path(), &["backup", "-o", lite.to_str().expect("utf-8")]).ok();
    // PostgreSQL's formats do not apply to a SQLite backup.
    let out = run(dir.path(), &["backup", "--format", "plain"]);
    assert_one_error(&out, 2);

    let db = TestDb::new();
    let out = run_db(
        dir.path(),
        &db,
        &["restore", "--yes", lite.to_str().expect("utf-8")],
    );
    let line = assert_one_error(&out, 2);
    assert!(line.contains("SQLite backup"), "{out}");

    run_db(dir.path(), &db, &["migrate"]).ok();
    let dump = dir.path().join("pg.dump");
    run_db(
        dir.path(),
        &db,
        &["backup", "-o", dump.to_str().expect("utf-8")],
    )
    .ok();
    let out = run(
        dir.path(),
        &["restore", "--yes", dump.to_str().expect("utf-8")],
    );
    let line = assert_one_error(&out, 2);
    assert!(line.contains("PostgreSQL backup"), "{out}");
    // The SQLite database is still at head.
    let out = run(dir.path(), &["status"]).ok();
    assert!(out.stdout.contains("up to date"), "{out}");
}

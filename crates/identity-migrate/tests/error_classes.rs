//! The exit code of a failure says what kind it is (README: exit codes), and a failure to reach
//! the database is never taken for a database with no revision yet.

mod common;

use common::{assert_one_error, head, run, run_db, tempdir, R2};
use migrate_testkit::TestDb;

const FAILURE: i32 = 1;
const REFUSED: i32 = 3;

/// Seeding a database that is not at head is refused (3), not bad input (2): the command line
/// was right, the database is not in a state to seed. Its message is unchanged.
#[test]
fn seed_of_a_database_not_at_head_is_refused() {
    let dir = tempdir();
    let db = TestDb::new();
    let out = run_db(dir.path(), &db, &["seed", "--users", "10"]);
    let line = assert_one_error(&out, REFUSED);
    assert!(
        line.starts_with(&format!(
            "error: cannot seed {}: cannot seed: missing tables",
            db.url()
        )),
        "{out}"
    );
    assert!(
        line.contains("(upgrade the database to head first)"),
        "{out}"
    );
}

/// Seeding tables that already hold rows is refused (3) as well, and loads nothing.
#[test]
fn seed_of_a_database_with_rows_is_refused() {
    let dir = tempdir();
    let db = TestDb::new();
    run_db(dir.path(), &db, &["migrate"]).ok();
    run_db(dir.path(), &db, &["seed", "--users", "10"]).ok();
    let users = common::strings(&db, "SELECT count(*)::text FROM users");
    let out = run_db(dir.path(), &db, &["seed", "--users", "10"]);
    let line = assert_one_error(&out, REFUSED);
    assert!(line.contains("cannot seed"), "{out}");
    assert_eq!(
        common::strings(&db, "SELECT count(*)::text FROM users"),
        users
    );
}

/// A login the server refuses makes `generate-sql` fail (1) with the server's reason and the way
/// to go without a connection: no script "from base" on stdout.
#[test]
fn generate_sql_fails_when_the_login_is_refused() {
    let dir = tempdir();
    let server = migrate_testkit::ensure_server();
    let url = server
        .url("postgres")
        .replacen("postgres@", "no_such_role_for_generate_sql@", 1);
    let out = run(dir.path(), &["--database-url", &url, "generate-sql"]);
    let line = assert_one_error(&out, FAILURE);
    assert!(line.contains("refused the login"), "{out}");
    assert!(line.contains("pass --from REV, or --from base"), "{out}");
}

/// An unreachable server makes `generate-sql` fail (1) too.
#[test]
fn generate_sql_fails_when_the_server_is_unreachable() {
    let dir = tempdir();
    let port = migrate_testkit::private_cluster::free_port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=2");
    let out = run(dir.path(), &["--database-url", &url, "generate-sql"]);
    let line = assert_one_error(&out, FAILURE);
    assert!(line.contains("cannot reach the database server"), "{out}");
}

/// The same failures are failures (1) for every command that reads the database: none reports
/// "base" for a server it could not ask.
#[test]
fn reading_commands_fail_on_a_refused_login() {
    let dir = tempdir();
    let server = migrate_testkit::ensure_server();
    let url = server
        .url("postgres")
        .replacen("postgres@", "no_such_role_for_status@", 1);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["list"],
        &["check"],
        &["verify"],
        &["migrate", "--dry-run"],
        &["rollback", R2, "--dry-run"],
        &["migrate-to", &head(), "--dry-run", "--json"],
    ] {
        let out = run(
            dir.path(),
            &[&["--database-url", url.as_str()], args].concat(),
        );
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains("refused the login"), "{args:?}: {out}");
    }
}

/// `lint --pending` on a database that does not exist fails (1) naming it: it does not lint the
/// whole chain as if the database were empty.
#[test]
fn lint_pending_fails_on_a_missing_database() {
    let dir = tempdir();
    let db = TestDb::new();
    let missing = format!("{}_missing", db.name());
    let url = db.url().replace(db.name(), &missing);
    let out = run(dir.path(), &["--database-url", &url, "lint", "--pending"]);
    let line = assert_one_error(&out, FAILURE);
    assert!(line.contains(&missing), "{out}");
}

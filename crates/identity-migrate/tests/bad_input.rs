//! Bad input, each with a test: one line on stderr starting with `error: `, a non-zero exit
//! (2 for bad input, 1 for a failure while doing the work: see src/error.rs), no panic, no
//! password anywhere, and nothing changed.
//!
//! Two cases of the issue cannot be produced with the identity revisions, a straight line whose
//! ids share no prefix long enough to be accepted: an ambiguous prefix (the message lists the
//! candidates) and several heads without an explicit target. The engine's and the graph's tests cover them with graphs built for that.

mod common;

use common::{
    assert_one_error, assert_one_error_line, command, db_at, execute, history, output,
    revision_count, run, run_db, snapshot, strings, tables, tempdir, version, Out, R1, R2,
};
use migrate_testkit::{auth_server, TestDb};

const BAD_INPUT: i32 = 2;
const FAILURE: i32 = 1;
const WRONG_PASSWORD: &str = "Wr0ng-Secret-Zz";

#[test]
fn unreachable_server() {
    let dir = tempdir();
    let url = "postgresql://postgres@127.0.0.1:1/x";
    for args in [
        &["status"][..],
        &["list"],
        &["migrate"],
        &["migrate", "--dry-run"],
        &["rollback", "base"],
    ] {
        let out = run(dir.path(), &[&["--database-url", url][..], args].concat());
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains("cannot reach"), "{args:?}: {out}");
        assert!(line.contains("127.0.0.1:1"), "says which server: {out}");
    }
}

#[test]
fn unreachable_server_with_a_password_in_the_url() {
    let dir = tempdir();
    for url in [
        format!("postgresql://u:{WRONG_PASSWORD}@127.0.0.1:1/db"),
        format!("postgresql+asyncpg://u:{WRONG_PASSWORD}@127.0.0.1:1/db"),
    ] {
        let out = run(dir.path(), &["--database-url", &url, "-vv", "migrate"]);
        assert_no_secret(&out, WRONG_PASSWORD);
        assert_eq!(out.code, FAILURE, "{out}");
        assert!(
            out.stderr
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("error: ")),
            "{out}"
        );
        let out = run(dir.path(), &["--database-url", &url, "status"]);
        assert_one_error(&out, FAILURE);
        assert_no_secret(&out, WRONG_PASSWORD);
    }
}

#[test]
fn wrong_password() {
    let dir = tempdir();
    let server = auth_server();
    let url = server.url_with_password(WRONG_PASSWORD);
    for args in [&["status"][..], &["migrate"], &["list", "--json"]] {
        let out = run(dir.path(), &[&["--database-url", &url][..], args].concat());
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains("password authentication failed"), "{out}");
        assert_no_secret(&out, WRONG_PASSWORD);
    }
    // With every log level on: the password is still nowhere, and the last line is the error.
    let out = run(dir.path(), &["--database-url", &url, "-vv", "migrate"]);
    assert_eq!(out.code, FAILURE, "{out}");
    assert_no_secret(&out, WRONG_PASSWORD);
    assert!(!out.all().contains("panicked"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let last = out.stderr.lines().last().expect("an error line");
    assert!(last.starts_with("error: "), "{out}");
    // From DATABASE_URL and from PGPASSWORD too.
    let out = output(command(dir.path()).env("DATABASE_URL", &url).arg("status"));
    assert_one_error(&out, FAILURE);
    assert_no_secret(&out, WRONG_PASSWORD);
    let bare = url.replace(&format!(":{WRONG_PASSWORD}@"), "@");
    let out = output(command(dir.path()).env("PGPASSWORD", WRONG_PASSWORD).args([
        "--database-url",
        &bare,
        "-vv",
        "status",
    ]));
    assert_eq!(out.code, FAILURE, "{out}");
    assert_no_secret(&out, WRONG_PASSWORD);
}

#[test]
fn right_password_works_and_is_never_printed() {
    let dir = tempdir();
    let server = auth_server();
    let url = server.url();
    for args in [
        &["status"][..],
        &["-vv", "status"],
        &["-vv", "status", "--json"],
        &["-vv", "list"],
        &["-vv", "migrate", "--dry-run"],
    ] {
        let out = run(dir.path(), &[&["--database-url", &url][..], args].concat()).ok();
        assert_no_secret(&out, &server.password);
        assert!(out.all().contains(":***@"), "redacted URL shown: {out}");
    }
    let sqlalchemy = url.replacen("postgresql://", "postgresql+asyncpg://", 1);
    let out = run(
        dir.path(),
        &["--database-url", &sqlalchemy, "-vv", "status"],
    )
    .ok();
    assert_no_secret(&out, &server.password);
}

#[test]
fn missing_database() {
    let dir = tempdir();
    let db = TestDb::new();
    let missing = format!("{}_nosuch", db.name());
    let url = db.url().replace(db.name(), &missing);
    for args in [&["status"][..], &["migrate"], &["migrate", "--dry-run"]] {
        let out = run(dir.path(), &[&["--database-url", &url][..], args].concat());
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains(&format!("\"{missing}\"")), "names it: {out}");
        assert!(
            line.contains(&format!("createdb {missing}")),
            "suggests createdb: {out}"
        );
    }
    assert!(database_exists(&db, &missing).is_empty(), "nothing created");
}

/// Drops the database it names when dropped, from the admin connection of a test database.
struct DropDatabase<'a> {
    admin: &'a TestDb,
    name: String,
}

impl Drop for DropDatabase<'_> {
    fn drop(&mut self) {
        let _ = self.admin.client().batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

fn database_exists(admin: &TestDb, name: &str) -> Vec<String> {
    strings(
        admin,
        &format!("SELECT datname::text FROM pg_database WHERE datname = '{name}'"),
    )
}

#[test]
fn migrate_create_database_creates_it() {
    let dir = tempdir();
    let admin = TestDb::new();
    let guard = DropDatabase {
        admin: &admin,
        name: format!("{}_created", admin.name()),
    };
    let url = admin.url().replace(admin.name(), &guard.name);
    let out = run(
        dir.path(),
        &["--database-url", &url, "migrate", "--create-database"],
    )
    .ok();
    assert!(
        out.stdout
            .contains(&format!("Applied {} revision(s)", revision_count())),
        "{out}"
    );
    assert!(out.stderr.contains(&guard.name), "logs the creation: {out}");
    assert_eq!(
        database_exists(&admin, &guard.name),
        vec![guard.name.clone()]
    );
    // Already there: --create-database is harmless.
    let out = run(
        dir.path(),
        &["--database-url", &url, "migrate", "--create-database"],
    )
    .ok();
    assert!(out.stdout.starts_with("Nothing to do"), "{out}");
    drop(guard);
    assert!(database_exists(&admin, &format!("{}_created", admin.name())).is_empty());
}

#[test]
fn unknown_revision() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let before = snapshot(&db);
    for args in [
        &["migrate-to", "zzzzzz"][..],
        &["migrate-to", "abcdef012345"],
        &["rollback", "zzzzzz"],
        &["migrate-to", "zzzzzz", "--dry-run"],
    ] {
        let out = run_db(dir.path(), &db, args);
        let line = assert_one_error(&out, BAD_INPUT);
        assert!(line.contains("unknown revision"), "{out}");
        assert!(
            line.contains("identity-migrate list"),
            "says what to do: {out}"
        );
    }
    assert_eq!(snapshot(&db), before);
}

#[test]
fn too_short_prefix() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let before = snapshot(&db);
    for args in [
        &["migrate-to", "97"][..],
        &["migrate-to", "97", "--dry-run"],
    ] {
        let out = run_db(dir.path(), &db, args);
        let line = assert_one_error(&out, BAD_INPUT);
        assert!(
            line.contains("\"97\"") && line.contains("too short"),
            "{out}"
        );
    }
    assert_eq!(snapshot(&db), before);
}

#[test]
fn refused_target_on_a_fresh_database_creates_nothing() {
    let dir = tempdir();
    let db = TestDb::new();
    for args in [
        &["migrate-to", "zzzzzz"][..],
        &["migrate-to", "97"],
        &["rollback", R2],
    ] {
        let out = run_db(dir.path(), &db, args);
        assert_one_error(&out, BAD_INPUT);
        assert_eq!(tables(&db), Vec::<String>::new(), "{args:?} created tables");
    }
}

#[test]
fn rollback_to_a_revision_that_is_not_an_ancestor() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let before = snapshot(&db);
    for args in [
        &["rollback", R2][..],
        &["rollback", "68d3"],
        &["rollback", R2, "--dry-run"],
    ] {
        let out = run_db(dir.path(), &db, args);
        let line = assert_one_error(&out, BAD_INPUT);
        assert!(
            line.contains("not an ancestor") && line.contains(R2),
            "{out}"
        );
    }
    assert_eq!(snapshot(&db), before);
}

#[test]
fn database_at_a_revision_this_binary_does_not_know() {
    let dir = tempdir();
    for replace in [false, true] {
        let db = db_at(dir.path(), "head");
        if replace {
            execute(
                &db,
                "UPDATE alembic_version SET version_num = 'ffffffffffff'",
            );
        } else {
            execute(&db, "INSERT INTO alembic_version VALUES ('ffffffffffff')");
        }
        let before = snapshot(&db);
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["list"],
            &["migrate"],
            &["migrate", "--dry-run"],
            &["migrate-to", R2],
            &["rollback", "base"],
            &["rollback", R1, "--dry-run"],
            // generate-sql logs where it starts (info) before it checks: -q keeps the error only.
            &["-q", "generate-sql"],
        ] {
            let out = run_db(dir.path(), &db, args);
            let line = assert_one_error_line(&out);
            assert_ne!(out.code, 0, "{out}");
            assert_eq!(out.stdout, "", "{args:?}: {out}");
            assert!(line.contains("ffffffffffff"), "{args:?}: {out}");
            assert!(line.contains("newer version"), "says why: {out}");
            assert!(line.contains("refusing"), "{out}");
        }
        assert_eq!(snapshot(&db), before, "nothing changed");
    }
}

#[test]
fn unknown_revision_in_an_alembic_only_database_is_not_touched() {
    let dir = tempdir();
    let db = TestDb::new();
    execute(
        &db,
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); \
         INSERT INTO alembic_version VALUES ('ffffffffffff')",
    );
    let before = snapshot(&db);
    let out = run_db(dir.path(), &db, &["migrate"]);
    let line = assert_one_error_line(&out);
    assert!(line.contains("newer version"), "{out}");
    assert_eq!(snapshot(&db), before, "nothing changed");
}

#[test]
fn a_revision_that_fails_halfway() {
    // 68d314520251 creates `organizations`: one already there makes it fail partway through.
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    execute(&db, "CREATE TABLE organizations (x integer)");
    let out = run_db(dir.path(), &db, &["migrate-to", R2]);
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains(R2) && line.contains("organizations"), "{out}");
    assert!(line.contains(&format!("stays at {R1}")), "{out}");
    assert!(!out.stdout.contains("Applied"), "{out}");
    assert_eq!(version(&db), Some(vec![R1.to_owned()]));
    assert_eq!(
        history(&db),
        [format!("{R1} up applied"), format!("{R2} up failed")]
    );
    let error = strings(
        &db,
        &format!(
            "SELECT error FROM identity_migrate_history WHERE revision = '{R2}' AND outcome = 'failed'"
        ),
    );
    assert_eq!(error.len(), 1);
    assert!(
        error[0].contains("organizations") && error[0].contains("already exists"),
        "{error:?}"
    );
    let t = tables(&db);
    assert!(
        !t.contains(&"users".to_owned()),
        "nothing of {R2} kept: {t:?}"
    );
    assert!(t.contains(&"users_simple".to_owned()), "{R1} intact: {t:?}");
    // status says where it stands, and the next run fails the same way (no dirty dead end).
    let status = run_db(dir.path(), &db, &["status"]).ok();
    assert!(
        status.stdout.contains(&format!("current   {R1}")),
        "{status}"
    );
    let again = run_db(dir.path(), &db, &["migrate-to", R2]);
    assert_eq!(again.code, FAILURE, "{again}");
    // Once the obstacle is gone, it goes through.
    execute(&db, "DROP TABLE organizations");
    run_db(dir.path(), &db, &["migrate-to", R2]).ok();
    assert_eq!(version(&db), Some(vec![R2.to_owned()]));
}

#[test]
fn a_failure_keeps_the_revisions_completed_before_it() {
    let dir = tempdir();
    let db = TestDb::new();
    execute(&db, "CREATE TABLE organizations (x integer)");
    let out = run_db(dir.path(), &db, &["migrate"]);
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("1 step(s) of this run completed"), "{out}");
    assert!(out.stdout.contains(&format!("applied  {R1}")), "{out}");
    assert_eq!(version(&db), Some(vec![R1.to_owned()]));
    assert!(tables(&db).contains(&"users_simple".to_owned()));
}

#[test]
fn a_failure_in_a_single_transaction_keeps_nothing() {
    let dir = tempdir();
    let db = TestDb::new();
    execute(&db, "CREATE TABLE organizations (x integer)");
    // Up to the revision before the last, which builds indexes concurrently: no transaction
    // can hold that one.
    let out = run_db(
        dir.path(),
        &db,
        // Quiet: lint warns that fbcbc6afff27's batches become one UPDATE in one transaction.
        &["--quiet", "migrate-to", "head-1", "--single-transaction"],
    );
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains(R2) && line.contains("stays at"), "{out}");
    assert_eq!(version(&db).unwrap_or_default(), Vec::<String>::new());
    assert!(
        !tables(&db).contains(&"users_simple".to_owned()),
        "{:?}",
        tables(&db)
    );
    assert_eq!(history(&db), [format!("{R2} up failed")]);
}

#[test]
fn unsupported_scheme() {
    let dir = tempdir();
    let out = run(
        dir.path(),
        &["--database-url", "mysql://root:Pw123456@x/y", "status"],
    );
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(
        line.contains("\"mysql\"") && line.contains("postgresql://"),
        "{out}"
    );
    assert_no_secret(&out, "Pw123456");
}

#[test]
fn malformed_urls_never_print_the_password() {
    let dir = tempdir();
    for url in [
        "postgresql://u:Secr3tZz@h:notaport/db",
        "postgresql://u:Se/cr3tZz@h/db",
        "postgresql://u:Pw%zzSecr3tZz@h/db",
        "postgresql://u:Secr3tZz@h1,h2/db?port=1,2,3",
        "postgresql://u:Secr3tZz@h/db?sslmode=bogus",
        "postgresql://u:Secr3tZz@h/db?sslmode=verify-full",
        "Secr3tZz",
        "postgres://u:Secr3tZz@[::1/db",
    ] {
        let out = run(dir.path(), &["--database-url", url, "-vv", "migrate"]);
        assert_one_error(&out, BAD_INPUT);
        for part in ["Secr3tZz", "cr3tZz"] {
            assert_no_secret(&out, part);
        }
    }
}

#[test]
fn malformed_config_file() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "default_environment = \"dev\"\n[environments.dev\ndatabase_url = 3\n",
    )
    .expect("write config");
    let out = run(dir.path(), &["status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(
        line.contains("identity-migrate.toml"),
        "names the file: {out}"
    );
    // A typo in a key is refused too, naming the key.
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "[environments.dev]\ndatabse_url = \"postgresql:///x\"\n",
    )
    .expect("write config");
    let out = run(dir.path(), &["status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("databse_url"), "{out}");
    // --config naming a file that does not exist.
    let out = run(dir.path(), &["--config", "nowhere.toml", "status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("nowhere.toml"), "{out}");
}

#[test]
fn no_such_environment() {
    let dir = tempdir();
    let out = run(dir.path(), &["--env", "staging", "status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("staging"), "{out}");
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "[environments.dev]\ndatabase_url = \"postgresql://u@127.0.0.1:1/dev\"\n\
         [environments.prod]\ndatabase_url_env = \"PROD_URL\"\n",
    )
    .expect("write config");
    let out = run(dir.path(), &["--env", "staging", "status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(
        line.contains("\"staging\"") && line.contains("dev, prod"),
        "lists them: {out}"
    );
    let out = run(dir.path(), &["--env", "prod", "status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("$PROD_URL"), "{out}");
}

#[test]
fn no_database_configured_means_the_embedded_sqlite_file_created_only_by_a_migration() {
    let dir = tempdir();
    let file = dir.path().join("identity_service.db");
    // Reading commands show the file that is not there yet as empty, and create nothing.
    let out = run(dir.path(), &["status"]).ok();
    assert!(out.stdout.contains("sqlite:identity_service.db"), "{out}");
    assert!(out.stdout.contains("base (no revision applied)"), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    // A refused target creates nothing either.
    let out = run(dir.path(), &["migrate-to", "nope"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("unknown revision"), "{out}");
    let out = run(dir.path(), &["migrate", "--dry-run"]).ok();
    assert!(
        out.stdout.contains("planned from an empty database"),
        "{out}"
    );
    assert!(!file.exists(), "nothing created yet");

    // The migration creates it, and says so once.
    let out = run(dir.path(), &["migrate"]).ok();
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(out.stderr.contains("no database configured"), "{out}");
    assert!(
        out.stderr.contains("DATABASE_URL"),
        "says how to choose PostgreSQL: {out}"
    );
    assert!(file.exists());
    let out = run(dir.path(), &["status"]).ok();
    assert!(out.stdout.contains("up to date"), "{out}");
    assert_eq!(out.stderr, "", "said once only: {out}");

    // PostgreSQL's own options are refused on SQLite rather than ignored.
    let out = run(dir.path(), &["--schema", "identity", "status"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("PostgreSQL only"), "{out}");
    let out = run(dir.path(), &["seed", "--users", "10"]);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("SQLite"), "{out}");
}

#[track_caller]
fn assert_no_secret(out: &Out, secret: &str) {
    assert!(!out.all().contains(secret), "the password leaked:\n{out}");
}

#[test]
fn usage_errors_exit_2_without_panic() {
    let dir = tempdir();
    for args in [
        &["migrate-to"][..],
        &["frobnicate"],
        &["--lock-wait", "abc", "status"],
        &["status", "--bogus"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.code, BAD_INPUT, "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{out}");
        assert!(out.stderr.starts_with("error: "), "{out}");
        assert!(!out.all().contains("panicked"), "{out}");
    }
}

#[test]
fn usage_errors_are_one_line() {
    let dir = tempdir();
    for args in [
        &["migrate-to"][..],
        &["frobnicate"],
        &["--lock-wait", "abc", "status"],
    ] {
        let out = run(dir.path(), args);
        assert_one_error(&out, BAD_INPUT);
    }
}

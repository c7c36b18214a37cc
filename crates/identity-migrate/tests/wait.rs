//! `wait [--for REV|head] [--timeout SECS] [--json]`: ready now, ready once another process
//! migrates while it waits (which it never blocks: it holds no migration lock), ahead of the
//! revision, at a revision from a newer release, timed out (exit 5), a server that never
//! comes up (exit 1), a database created while it waits. On PostgreSQL and on SQLite files.

mod common;

use common::{
    assert_one_error, command, head, output, parse_json, run, tempdir, Db, Json, JsonExt, Out, R1,
    R2,
};
use migrate_testkit::TestDb;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Runs the body on a fresh SQLite file and on a fresh PostgreSQL database.
fn both(body: impl Fn(&Path, &Db)) {
    let dir = tempdir();
    body(dir.path(), &Db::Sqlite(dir.path().join("service.db")));
    let dir = tempdir();
    body(dir.path(), &Db::Postgres(TestDb::new()));
}

fn im(dir: &Path, db: &Db, args: &[&str]) -> Out {
    let url = db.url();
    output(command(dir).args(["--database-url", &url]).args(args))
}

fn json_of(out: &Out) -> Json {
    parse_json(out.stdout.trim())
}

/// `wait` started in the background (stdout piped, so it draws no progress).
fn spawn_wait(dir: &Path, db: &Db, args: &[&str]) -> Child {
    let url = db.url();
    command(dir)
        .args(["--database-url", &url, "wait", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wait")
}

/// The result of a background `wait`, failing the test if it runs past `limit`.
fn finish(mut child: Child, limit: Duration) -> Out {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("wait still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn ready_now_at_the_revision_and_ahead_of_it() {
    both(|dir, db| {
        im(dir, db, &["migrate"]).ok();
        let out = im(dir, db, &["wait", "--timeout", "5", "--json"]).ok();
        let v = json_of(&out);
        assert_eq!(v.at("ready"), &Json::Bool(true), "{out}");
        assert_eq!(v.at("state").str(), "at", "{out}");
        assert_eq!(v.at("for").items(), &[Json::String(head())]);
        assert_eq!(v.at("current").items(), &[Json::String(head())]);

        // Ahead: a rolling deploy's older pods (waiting for R1 or R2) start at once.
        for rev in [R1, &R2[..6]] {
            let out = im(dir, db, &["wait", "--for", rev, "--timeout", "5", "--json"]).ok();
            let v = json_of(&out);
            assert_eq!(v.at("state").str(), "ahead", "{out}");
            assert_eq!(v.at("ready"), &Json::Bool(true), "{out}");
        }

        // Text output: one line on stdout.
        let out = im(dir, db, &["wait", "--for", R2, "--timeout", "5"]).ok();
        assert!(out.stdout.starts_with("ready: "), "{out}");
        assert_eq!(out.stdout.lines().count(), 1, "{out}");
    });
}

#[test]
fn timeout_is_exit_5_with_one_error_line() {
    both(|dir, db| {
        im(dir, db, &["migrate-to", R1]).ok();
        let started = Instant::now();
        let out = im(dir, db, &["--quiet", "wait", "--timeout", "1"]);
        let line = assert_one_error(&out, 5);
        assert!(line.contains("still at 974799e38366"), "{line}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stopped at its timeout"
        );

        let out = im(dir, db, &["--quiet", "wait", "--timeout", "1", "--json"]);
        assert_eq!(out.code, 5, "{out}");
        let v = json_of(&out);
        assert_eq!(v.at("ready"), &Json::Bool(false), "{out}");
        assert_eq!(v.at("state").str(), "behind", "{out}");
        assert_eq!(v.at("current").items(), &[Json::String(R1.to_owned())]);
    });
}

#[test]
fn ready_after_another_process_migrates_while_it_waits_without_holding_the_lock() {
    // The SQLite file does not exist when the wait starts: it is created by the migration.
    both(|dir, db| {
        let waiting = spawn_wait(dir, db, &["--timeout", "120"]);
        // Let it connect and poll at least once.
        std::thread::sleep(Duration::from_millis(1500));
        if let Db::Postgres(pg) = db {
            // No advisory lock (the migration lock) held in this database by anyone.
            let held = common::strings(
                pg,
                "SELECT count(*)::text FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND d.datname = current_database()",
            );
            assert_eq!(held, ["0"]);
            // The waiter is connected while it waits (so the check above means something).
            let sessions = common::strings(
                pg,
                "SELECT count(*)::text FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'identity-migrate'",
            );
            assert_eq!(sessions, ["1"]);
        }
        // A migrator that gives up after one second if the lock is held: it is not.
        im(dir, db, &["--lock-wait", "1", "migrate"]).ok();
        let out = finish(waiting, Duration::from_secs(30));
        assert_eq!(out.code, 0, "{out}");
        let v = json_of(&out);
        assert_eq!(v.at("state").str(), "at", "{out}");
        assert_eq!(v.at("current").items(), &[Json::String(head())]);
    });
}

#[test]
fn a_revision_from_a_newer_release_is_ready() {
    both(|dir, db| {
        im(dir, db, &["migrate"]).ok();
        db.execute("UPDATE alembic_version SET version_num = 'fedcba987654'");
        let out = im(dir, db, &["wait", "--timeout", "5", "--json"]).ok();
        let v = json_of(&out);
        assert_eq!(v.at("state").str(), "unknown", "{out}");
        assert_eq!(v.at("ready"), &Json::Bool(true), "{out}");
        assert!(out.stderr.contains("newer release"), "{out}");
    });
}

#[test]
fn a_server_that_never_comes_up_is_exit_1_after_the_timeout() {
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let url = format!("postgresql://postgres:secret-pw-91@127.0.0.1:{port}/identity");
    let started = Instant::now();
    let out = run(
        dir.path(),
        &["--quiet", "--database-url", &url, "wait", "--timeout", "2"],
    );
    let line = assert_one_error(&out, 1);
    assert!(
        line.contains("did not accept a connection within 2 s"),
        "{line}"
    );
    assert!(!out.all().contains("secret-pw-91"), "{out}");
    // It retried for the whole timeout, not once.
    assert!(started.elapsed() >= Duration::from_secs(2), "{out}");

    let out = run(
        dir.path(),
        &[
            "--quiet",
            "--database-url",
            &url,
            "wait",
            "--timeout",
            "1",
            "--json",
        ],
    );
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(json_of(&out).at("state").str(), "unreachable", "{out}");
}

#[test]
fn a_database_created_while_it_waits_is_waited_for() {
    let dir = tempdir();
    let db = TestDb::new();
    // Gone before the wait starts; the migration Job creates it.
    let other = TestDb::new();
    common::execute(
        &other,
        &format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name()),
    );
    let db = Db::Postgres(db);
    let waiting = spawn_wait(dir.path(), &db, &["--timeout", "120"]);
    std::thread::sleep(Duration::from_millis(1500));
    im(dir.path(), &db, &["migrate", "--create-database"]).ok();
    let out = finish(waiting, Duration::from_secs(30));
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(json_of(&out).at("state").str(), "at", "{out}");
}

#[test]
fn an_unknown_revision_to_wait_for_is_bad_input() {
    let dir = tempdir();
    let db = Db::Sqlite(dir.path().join("service.db"));
    let out = im(dir.path(), &db, &["wait", "--for", "abcdef999999"]);
    assert_one_error(&out, 2);
    assert!(!dir.path().join("service.db").exists());
}

#[test]
fn a_server_that_accepts_and_never_answers_is_exit_1_at_the_timeout() {
    let dir = tempdir();
    // Connections are accepted (by the kernel's backlog) and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/identity");
    let started = Instant::now();
    let out = run(
        dir.path(),
        &["--quiet", "--database-url", &url, "wait", "--timeout", "2"],
    );
    let line = assert_one_error(&out, 1);
    assert!(
        line.contains("did not accept a connection within 2 s"),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "held past its timeout: {:?}",
        started.elapsed()
    );
    drop(silent);
}

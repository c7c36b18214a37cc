//! Lock-safe execution as an operator meets it: `migrate` on a seeded database at
//! `68d314520251` while a long transaction holds a lock on `users`. The tool retries under its
//! short `lock_timeout`, logs the blocker's pid, and either finishes after the blocker ends or
//! exits 1 within its lock budget with one line naming it, nothing of the blocked step kept.
//! Meanwhile a reader of `users` is never blocked longer than the lock timeout plus 100 ms.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_testkit::TestDb;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LOCK_TIMEOUT_MS: u64 = 200;

/// A database at `68d314520251` with 200 seeded users.
fn seeded(dir: &std::path::Path) -> TestDb {
    let db = db_at(dir, "68d314520251");
    run_db(dir, &db, &["seed", "--users", "200"]).ok();
    db
}

/// A session that opened a transaction and read `users`: its ACCESS SHARE lock stays until it
/// ends, and any ALTER TABLE of `users` waits for it.
fn blocker(db: &TestDb) -> (postgres::Client, i32) {
    let mut client = db.client();
    client
        .batch_execute("SET application_name = 'long-report'; BEGIN; SELECT count(*) FROM users")
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    (client, pid)
}

/// Looks a user up by email, over and over, each in its own transaction (as the login path
/// does), until stopped; returns the longest wait.
fn reader(db: &TestDb, stop: Arc<AtomicBool>) -> JoinHandle<(Duration, usize)> {
    let mut client = db.client();
    let email: String = client
        .query_one("SELECT email::text FROM users ORDER BY email LIMIT 1", &[])
        .unwrap()
        .get(0);
    std::thread::spawn(move || {
        let mut longest = Duration::ZERO;
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let rows = client
                .query("SELECT id FROM users WHERE email = $1", &[&email])
                .unwrap();
            assert_eq!(rows.len(), 1);
            longest = longest.max(started.elapsed());
            reads += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (longest, reads)
    })
}

#[test]
fn migrate_waits_out_a_long_transaction_on_users_naming_it_and_readers_wait_at_most_the_lock_timeout(
) {
    let dir = tempdir();
    let db = seeded(dir.path());
    let (mut blocking, pid) = blocker(&db);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = reader(&db, stop.clone());
    let child = command(dir.path())
        .args(["--database-url", &db.url()])
        .args([
            "--lock-timeout",
            &LOCK_TIMEOUT_MS.to_string(),
            "--lock-budget",
            "60",
        ])
        .arg("migrate")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    blocking.batch_execute("COMMIT").unwrap();
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (longest, count) = reads.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "blocked by pid {pid} (application \"long-report\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("retrying"), "{stderr}");
    assert_eq!(version(&db), Some(vec![head()]));
    assert!(count > 10, "{count} reads");
    assert!(
        longest <= Duration::from_millis(LOCK_TIMEOUT_MS + 100),
        "a reader of users waited {longest:?} (lock timeout {LOCK_TIMEOUT_MS} ms)"
    );
    eprintln!("{count} reads of users, the longest {longest:?}");
}

/// `3ffba08b0d3f` commits table by table (its organizations part goes before `users`): what
/// the budget stops is the blocked table's part, of which nothing is kept; the parts before it
/// stay committed and the error says that `migrate` resumes after them.
#[test]
fn migrate_gives_up_at_the_lock_budget_with_one_line_naming_the_blocker_and_keeps_nothing_of_the_blocked_table(
) {
    let dir = tempdir();
    let db = seeded(dir.path());
    let users = |db: &TestDb| {
        strings(
            db,
            "SELECT column_name::text || ' ' || data_type || ' ' || coalesce(column_default, '-') \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users' \
             ORDER BY ordinal_position",
        )
    };
    let before = users(&db);
    let (mut blocking, pid) = blocker(&db);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = reader(&db, stop.clone());
    let started = Instant::now();
    let out = output(
        command(dir.path())
            .args(["--database-url", &db.url(), "--quiet"])
            .args(["--lock-timeout", &LOCK_TIMEOUT_MS.to_string()])
            .env("IDENTITY_MIGRATE_LOCK_BUDGET", "3")
            .arg("migrate"),
    );
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (longest, _) = reads.join().unwrap();
    blocking.batch_execute("ROLLBACK").unwrap();
    assert_eq!(out.code, 1, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains(&format!("blocked by pid {pid}")), "{line}");
    assert!(line.contains("lock budget"), "{line}");
    assert!(line.contains("stays at 68d314520251"), "{line}");
    assert!(
        line.contains("1 phase(s) of 3ffba08b0d3f are committed: run migrate again to resume it"),
        "{line}"
    );
    // The budget (3 s) plus one lock timeout and the time to start and plan.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(users(&db), before);
    assert!(
        history(&db).last().unwrap().ends_with("failed"),
        "{:?}",
        history(&db)
    );
    assert_eq!(version(&db), Some(vec!["68d314520251".to_owned()]));
    assert!(
        longest <= Duration::from_millis(LOCK_TIMEOUT_MS + 100),
        "a reader of users waited {longest:?} (lock timeout {LOCK_TIMEOUT_MS} ms)"
    );
}

/// `3ffba08b0d3f` commits table by table: with the last of its tables held past the lock
/// budget, `migrate` exits 1 with the earlier tables' parts committed. `status` shows the
/// revision half-way (not plain pending) and says that `migrate` resumes it; `rollback`
/// refuses with one line until it has; then `migrate` finishes it and `check` is clean.
#[test]
fn a_revision_stopped_half_way_shows_as_half_way_refuses_rollback_and_migrate_finishes_it() {
    let dir = tempdir();
    let db = seeded(dir.path());
    let mut holding = db.client();
    holding
        .batch_execute("BEGIN; SELECT count(*) FROM user_preferences")
        .unwrap();
    let out = output(
        command(dir.path())
            .args(["--database-url", &db.url(), "--quiet"])
            .args(["--lock-timeout", &LOCK_TIMEOUT_MS.to_string()])
            .env("IDENTITY_MIGRATE_LOCK_BUDGET", "1")
            .arg("migrate"),
    );
    assert_eq!(out.code, 1, "{out}");
    assert_one_error_line(&out);
    assert_eq!(version(&db), Some(vec!["68d314520251".to_owned()]));

    let status = run_db(dir.path(), &db, &["status"]);
    assert!(
        status.stdout.contains(
            "3ffba08b0d3f stopped half-way through its upgrade (9 phase(s) committed): run `identity-migrate migrate` to resume it"
        ),
        "{status}"
    );
    let json = parse_json(&run_db(dir.path(), &db, &["status", "--json"]).ok().stdout);
    let half_way = json.at("half_way").items();
    assert_eq!(half_way.len(), 1, "{json:?}");
    assert_eq!(half_way[0].at("revision").str(), "3ffba08b0d3f");
    assert_eq!(half_way[0].at("direction").str(), "up");
    assert_eq!(half_way[0].at("phases_done").number(), 9.0);

    let before = relations(&db);
    let rollback = run_db(dir.path(), &db, &["rollback", "974799e38366"]);
    assert_eq!(rollback.code, 3, "{rollback}");
    let line = assert_one_error_line(&rollback);
    assert!(
        line.contains("3ffba08b0d3f stopped half-way through its upgrade")
            && line.contains("run `identity-migrate migrate` first"),
        "{line}"
    );
    assert_eq!(
        relations(&db),
        before,
        "the refused rollback touched nothing"
    );
    assert_eq!(version(&db), Some(vec!["68d314520251".to_owned()]));

    holding.batch_execute("COMMIT").unwrap();
    run_db(dir.path(), &db, &["migrate"]).ok();
    assert_eq!(version(&db), Some(vec![head()]));
    let status = run_db(dir.path(), &db, &["status"]).ok();
    assert!(status.stdout.contains("up to date"), "{status}");
    run_db(dir.path(), &db, &["check"]).ok();
}

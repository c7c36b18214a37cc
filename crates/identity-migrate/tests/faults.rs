//! The fault suite of issue 14: the tool is interrupted (SIGTERM, SIGINT, `kill -9`) or its
//! server crashes, and what it leaves is checked: no process, no staging directory or scratch
//! database after the next run of the same command, a history row and a free lock after a
//! signal, a rerun that converges after a crash, and one connection per migrator.
//!
//! Bounded on purpose: one trial per fault and signal (the constants below), every wait with a
//! deadline. Each fault is made deterministic by a blocker, a session of the test holding a
//! table lock, so that the tool is caught in the middle of its work rather than by timing.
//! Larger trial counts belong in a benchmark run, not in the suite.

mod common;

use common::{chain, command, db_at, head, output, run_db, tempdir, Out, R1};
use migrate_testkit::{FaultCluster, TestDb};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Migrators started at once against a server with [`MAX_CONNECTIONS`] (issue 14: 50 of them
/// needed 98 connections).
const MIGRATORS: usize = 50;
const MAX_CONNECTIONS: usize = 60;
/// Trials of each signal and kill scenario: one in the suite, to bound its wall time. Larger
/// runs set `IDENTITY_MIGRATE_FAULT_TRIALS` (their results are in BENCHMARKS.md).
fn trials() -> usize {
    std::env::var("IDENTITY_MIGRATE_FAULT_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// How long anything the test waits for may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// How soon a child tool must be gone after the tool was killed (it would otherwise run on for
/// as long as its blocker or its slow ballast keeps it busy).
const KILLED_WITHIN: Duration = Duration::from_secs(3);
/// Rows of the ballast table, and the pause each costs while a restore loads it slowly.
const BALLAST_ROWS: u32 = 1000;
const BALLAST_PAUSE_S: f64 = 0.05;

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start identity-migrate")
}

fn finish(child: Child) -> Out {
    let o = child.wait_with_output().expect("wait for identity-migrate");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name}");
}

/// Live processes whose command line holds `text` (zombies have none).
fn processes_with(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(text) {
            found.push(format!("{}: {line}", name.to_string_lossy()));
        }
    }
    found
}

fn query(client: &mut postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

/// A session holding a lock of `mode` on every identity table of `client`'s database until it
/// is dropped. ACCESS SHARE stops every `ALTER TABLE` of a migration but no read (the lint
/// guard's size queries run before it, as they must); ACCESS EXCLUSIVE stops `pg_dump` too.
struct Blocker {
    client: postgres::Client,
}

const STOPS_DDL: &str = "ACCESS SHARE";
const STOPS_READS: &str = "ACCESS EXCLUSIVE";

impl Blocker {
    fn new(mut client: postgres::Client, mode: &str) -> Blocker {
        let tables = query(
            &mut client,
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' \
             AND tablename NOT IN ('alembic_version', 'identity_migrate_history')",
        );
        assert!(!tables.is_empty(), "tables to lock");
        client
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {} IN {mode} MODE",
                tables.join(", ")
            ))
            .expect("lock the tables");
        Blocker { client }
    }

    fn release(mut self) {
        self.client.batch_execute("ROLLBACK").expect("release");
    }
}

/// Waits until a session of `db` named `application` waits for a lock.
fn wait_for_lock_wait(admin: &mut postgres::Client, db: &str, application: &str) {
    let sql = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = '{application}' AND wait_event_type = 'Lock'"
    );
    wait_until("the tool to wait for a table lock", DEADLINE, || {
        query(admin, &sql) != ["0"]
    });
}

fn sessions_of(admin: &mut postgres::Client, db: &str, application: &str) -> usize {
    query(
        admin,
        &format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{db}' \
             AND application_name = '{application}'"
        ),
    )[0]
    .parse()
    .expect("a count")
}

fn error_lines(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[test]
fn a_signal_during_migrate_rolls_back_records_unlocks_and_exits_128_plus_its_number() {
    let scenarios = [("TERM", 143), ("INT", 130)];
    for (name, code) in (0..trials()).flat_map(|_| scenarios) {
        let dir = tempdir();
        let db = db_at(dir.path(), R1);
        let blocker = Blocker::new(db.client(), STOPS_DDL);
        let url = db.url();
        let child = spawn(command(dir.path()).args([
            "--database-url",
            &url,
            "--lock-timeout",
            "600000",
            "migrate",
        ]));
        let mut admin = db.client();
        wait_for_lock_wait(&mut admin, db.name(), "identity-migrate");
        signal(&child, name);
        let out = finish(child);
        assert_eq!(out.code, code, "SIG{name}:\n{out}");
        assert_eq!(out.stderr.lines().count(), 1, "one line:\n{out}");
        assert!(
            out.stderr
                .starts_with(&format!("error: interrupted by SIG{name}")),
            "{out}"
        );
        // The step rolled back and said so in the history; the lock is free.
        let last = query(
            &mut admin,
            "SELECT outcome || ': ' || coalesce(error, '') FROM identity_migrate_history ORDER BY id DESC LIMIT 1",
        );
        assert!(
            last[0].starts_with("failed: interrupted by SIG"),
            "history: {last:?}"
        );
        assert_eq!(
            query(
                &mut admin,
                "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory'              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            ["0"],
            "the migration lock is free"
        );
        assert_eq!(
            query(&mut admin, "SELECT version_num FROM alembic_version"),
            [R1],
            "nothing of the interrupted step stayed"
        );
        blocker.release();
        let out = run_db(dir.path(), &db, &["migrate"]).ok();
        assert!(out.stdout.contains("(head)"), "{out}");
    }
}

#[test]
fn a_killed_migrator_leaves_no_statement_running_on_the_server() {
    // client_connection_check_interval: the server notices the dead client and abandons its
    // statement although the blocker still holds the lock it waits for.
    for _ in 0..trials() {
        let dir = tempdir();
        let db = db_at(dir.path(), R1);
        let blocker = Blocker::new(db.client(), STOPS_DDL);
        let url = db.url();
        let child = spawn(command(dir.path()).args([
            "--database-url",
            &url,
            "--lock-timeout",
            "600000",
            "migrate",
        ]));
        let mut admin = db.client();
        wait_for_lock_wait(&mut admin, db.name(), "identity-migrate");
        signal(&child, "KILL");
        let _ = finish(child);
        wait_until(
            "the server to abandon the dead client's statement",
            Duration::from_secs(15),
            || sessions_of(&mut admin, db.name(), "identity-migrate") == 0,
        );
        blocker.release();
        run_db(dir.path(), &db, &["migrate"]).ok();
    }
}

#[test]
fn an_interrupted_backup_leaves_no_process_and_no_staging_after_the_next_backup() {
    for name in (0..trials()).flat_map(|_| ["KILL", "TERM"]) {
        let dir = tempdir();
        let db = db_at(dir.path(), &head());
        let backups = dir.path().join("backups");
        std::fs::create_dir(&backups).expect("mkdir");
        let blocker = Blocker::new(db.client(), STOPS_READS);
        let url = db.url();
        let backups_arg = backups.to_str().expect("utf-8");
        let child = spawn(command(dir.path()).args([
            "--database-url",
            &url,
            "--backup-dir",
            backups_arg,
            "backup",
        ]));
        // pg_dump has imported the tool's snapshot and waits for the blocker: from here on it
        // needs nothing of the tool, and would go on once unblocked if it outlived it.
        let watch = TestDb::new();
        let mut admin = watch.client();
        let waiting = format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{}' \
             AND query LIKE 'LOCK TABLE%' AND wait_event_type = 'Lock'",
            db.name()
        );
        wait_until("pg_dump to wait for the blocker", DEADLINE, || {
            query(&mut admin, &waiting) != ["0"]
        });
        signal(&child, name);
        let out = finish(child);
        wait_until("no process of the backup", KILLED_WITHIN, || {
            processes_with(backups_arg).is_empty()
        });
        let partials = || -> Vec<String> {
            std::fs::read_dir(&backups)
                .expect("list")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        if name == "TERM" {
            assert_eq!(out.code, 143, "{out}");
            assert_eq!(error_lines(&out).len(), 1, "{out}");
            assert!(out.stderr.contains("interrupted by SIGTERM"), "{out}");
            assert_eq!(partials(), Vec::<String>::new(), "removed at once");
        } else {
            assert_eq!(
                partials().len(),
                1,
                "kill -9 leaves the staging: {:?}",
                partials()
            );
        }
        blocker.release();
        let again = output(command(dir.path()).args([
            "--database-url",
            &url,
            "--backup-dir",
            backups_arg,
            "backup",
        ]))
        .ok();
        let left: Vec<String> = partials()
            .into_iter()
            .filter(|n| n.contains(".partial-"))
            .collect();
        assert!(left.is_empty(), "SIG{name}: {left:?}\n{again}");
        if name == "KILL" {
            assert!(
                again.stderr.contains("left by an interrupted backup"),
                "says so:\n{again}"
            );
        }
    }
}

/// A backup of a database at head with a ballast table whose CHECK constraint pauses on every
/// row while the database `marker` exists: with the marker, `pg_restore` loads it for
/// `BALLAST_ROWS * BALLAST_PAUSE_S` seconds (caught mid-load, deterministically); without it,
/// at full speed.
fn backup_with_ballast(dir: &Path, marker: &str) -> (TestDb, String) {
    let source = db_at(dir, &head());
    source
        .client()
        .batch_execute(&format!(
            "CREATE FUNCTION fault_pause(integer) RETURNS boolean LANGUAGE sql AS $$ \
             SELECT true FROM pg_catalog.pg_sleep(CASE WHEN EXISTS \
             (SELECT 1 FROM pg_catalog.pg_database WHERE datname = '{marker}') \
             THEN {BALLAST_PAUSE_S} ELSE 0 END) $$; \
             CREATE TABLE fault_ballast (id integer PRIMARY KEY CHECK (fault_pause(id))); \
             INSERT INTO fault_ballast SELECT generate_series(1, {BALLAST_ROWS})"
        ))
        .expect("ballast");
    let path = dir.join("ballast.dump");
    let path = path.to_str().expect("utf-8").to_owned();
    run_db(dir, &source, &["backup", "--output", &path]).ok();
    (source, path)
}

fn databases_like(admin: &mut postgres::Client, prefix: &str) -> Vec<String> {
    query(
        admin,
        &format!(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"
        ),
    )
}

#[test]
fn an_interrupted_restore_leaves_no_process_and_no_scratch_database_after_the_next_restore() {
    let dir = tempdir();
    let marker = format!("im_fault_slow_{}", std::process::id());
    let (source, archive) = backup_with_ballast(dir.path(), &marker);
    // Watched from another database: a session on the target would stop the restore.
    let mut admin = source.client();
    for name in (0..trials()).flat_map(|_| ["KILL", "TERM"]) {
        let target = TestDb::new();
        let scratch_prefix = format!("{}__", target.name());
        let url = target.url();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{marker}\""))
            .expect("slow restores from now");
        let child = spawn(command(dir.path()).args(["--database-url", &url, "restore", &archive]));
        let loading = format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE starts_with(datname, '{}__restore_') \
             AND query LIKE 'COPY%fault_ballast%'",
            target.name()
        );
        wait_until("pg_restore to load the ballast", DEADLINE, || {
            query(&mut admin, &loading) != ["0"]
        });
        let restoring = format!("--dbname={}__restore_", target.name());
        assert!(!processes_with(&restoring).is_empty(), "pg_restore runs");
        signal(&child, name);
        let out = finish(child);
        wait_until("no pg_restore left", KILLED_WITHIN, || {
            processes_with(&restoring).is_empty()
        });
        admin
            .batch_execute(&format!("DROP DATABASE \"{marker}\" WITH (FORCE)"))
            .expect("fast restores again");
        if name == "TERM" {
            assert_eq!(out.code, 143, "{out}");
            assert_eq!(error_lines(&out).len(), 1, "{out}");
            assert_eq!(
                databases_like(&mut admin, &scratch_prefix),
                Vec::<String>::new(),
                "the scratch database went at once"
            );
        } else {
            assert_eq!(
                databases_like(&mut admin, &scratch_prefix).len(),
                1,
                "kill -9 leaves the scratch database"
            );
        }
        let again = output(command(dir.path()).args(["--database-url", &url, "restore", &archive]));
        assert_eq!(again.code, 0, "SIG{name}:\n{again}");
        if name == "KILL" {
            assert!(
                again.stderr.contains("left by an interrupted restore"),
                "names what it dropped:\n{again}"
            );
        }
        assert_eq!(
            databases_like(&mut admin, &scratch_prefix),
            Vec::<String>::new(),
            "SIG{name}: nothing left beside {}",
            target.name()
        );
    }
}

#[test]
fn a_server_crash_mid_migration_converges_on_the_first_rerun() {
    let cluster = FaultCluster::start("faults-crash", 54349, &[]);
    let url = cluster.url("crash");
    for _ in 0..trials() {
        cluster.create_database("crash");
        let dir = tempdir();
        output(command(dir.path()).args(["--database-url", &url, "migrate-to", R1])).ok();
        let blocker = Blocker::new(cluster.client("crash"), STOPS_DDL);
        let child = spawn(command(dir.path()).args([
            "--database-url",
            &url,
            "--lock-timeout",
            "600000",
            "migrate",
        ]));
        let mut admin = cluster.client("postgres");
        wait_for_lock_wait(&mut admin, "crash", "identity-migrate");
        drop(admin);
        cluster.stop_immediate();
        let crashed = finish(child);
        assert_eq!(crashed.code, 1, "{crashed}");
        drop(blocker);
        cluster.start_again();
        let out = output(command(dir.path()).args(["--database-url", &url, "migrate"]));
        assert_eq!(out.code, 0, "the first rerun converges:\n{out}");
        let mut client = cluster.client("crash");
        assert_eq!(
            query(&mut client, "SELECT version_num FROM alembic_version"),
            [head()]
        );
        let applied = query(
            &mut client,
            "SELECT revision FROM identity_migrate_history WHERE outcome = 'applied' ORDER BY id",
        );
        assert_eq!(applied, chain(), "every revision recorded once");
    }
}

#[test]
fn a_history_sequence_behind_its_rows_does_not_fail_the_run() {
    // What crash recovery did to the sequence in issue 14, done by hand.
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    db.client()
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('identity_migrate_history', 'id'), 1, false)",
        )
        .expect("set the sequence back");
    let out = run_db(dir.path(), &db, &["migrate"]).ok();
    assert!(out.stdout.contains("(head)"), "{out}");
    assert!(out.stderr.contains("sequence was behind"), "{out}");
}

#[test]
fn fifty_migrators_at_once_need_no_more_connections_than_migrators() {
    let max = format!("max_connections={MAX_CONNECTIONS}");
    let cluster = FaultCluster::start("faults-crowd", 54359, &[&max]);
    cluster.create_database("crowd");
    let url = cluster.url("crowd");
    let dir = tempdir();
    let children: Vec<Child> = (0..MIGRATORS)
        .map(|_| {
            spawn(command(dir.path()).args([
                "--database-url",
                &url,
                "--lock-wait",
                "600",
                "-q",
                "migrate",
            ]))
        })
        .collect();
    let outs: Vec<Out> = children.into_iter().map(finish).collect();
    let failed: Vec<&Out> = outs.iter().filter(|o| o.code != 0).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first:\n{}",
        failed.len(),
        failed[0]
    );
    let mut client = cluster.client("crowd");
    let applied = query(
        &mut client,
        "SELECT revision FROM identity_migrate_history WHERE outcome = 'applied' ORDER BY id",
    );
    assert_eq!(applied, chain(), "each revision applied once");
}

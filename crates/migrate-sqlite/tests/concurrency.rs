//! Migrators racing on one database file apply each revision exactly once: separate processes
//! (this test binary run again as a child). Threads with their own connections race on both
//! databases in `crates/migrate-engine/tests/scenarios.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::Driver;
use migrate_core::RevisionGraph;
use migrate_engine::Engine;
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteTarget};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REVISIONS: usize = 30;

fn migrate_to_head(path: &Path, graph: &RevisionGraph) -> usize {
    let driver = SqliteDriver::connect(
        &SqliteTarget::File(path.to_owned()),
        SqliteOptions::default(),
    )
    .unwrap();
    let mut engine = Engine::new(Box::new(driver), graph, options());
    run(&mut engine, &up("head")).unwrap().len()
}

fn assert_each_revision_once(file: &TestFile, applied_by_runs: usize) {
    let conn = file.conn();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM counter"),
        i64::try_from(REVISIONS).expect("a small count")
    );
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT revision) FROM counter"),
        i64::try_from(REVISIONS).expect("a small count")
    );
    assert_eq!(applied_by_runs, REVISIONS, "steps reported across all runs");
    let mut driver = file.driver();
    let history = driver.read_history().unwrap();
    assert_eq!(history.len(), REVISIONS);
    assert!(history.iter().all(|h| h.outcome == "applied"));
    assert_eq!(
        driver.read_heads().unwrap().into_iter().collect::<Vec<_>>(),
        [rev_id(REVISIONS)]
    );
}

/// Set in a child process: the database it migrates.
const CHILD_ENV: &str = "MIGRATE_SQLITE_CHILD_DB";

/// In a child process, migrates the database of `CHILD_ENV` and prints how many steps it ran;
/// in the parent test run, does nothing.
#[test]
fn child_process_migrator() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let graph = counter_graph(REVISIONS);
    let applied = migrate_to_head(Path::new(&path), &graph);
    // On a line of its own: the test harness has already written part of its own line.
    println!("\napplied={applied}");
}

#[test]
fn four_processes_migrating_one_file_apply_each_revision_once() {
    let file = TestFile::new();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_process_migrator",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &file.path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let n: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("applied="))
            .unwrap_or_else(|| panic!("no count in child output: {stdout}"))
            .trim()
            .parse()
            .unwrap();
        applied += n;
    }
    assert_each_revision_once(&file, applied);
}

#[test]
fn the_application_writing_meanwhile_waits_for_a_revision_instead_of_interleaving() {
    // A revision holds SQLite's write lock from BEGIN IMMEDIATE to COMMIT; an application
    // writer waits (its busy timeout) and then succeeds.
    let file = TestFile::new();
    let graph = counter_graph(REVISIONS);
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up(&rev_id(1))).unwrap();
    let path = file.path.clone();
    let writer = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        for i in 0..200 {
            conn.execute(
                "INSERT INTO counter (revision) VALUES (?1)",
                [format!("app{i}")],
            )
            .unwrap();
        }
    });
    run(&mut engine, &up("head")).unwrap();
    writer.join().unwrap();
    let conn = file.conn();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM counter WHERE revision LIKE 'app%'"
        ),
        200
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM counter WHERE revision NOT LIKE 'app%'"
        ),
        i64::try_from(REVISIONS).expect("a small count")
    );
}

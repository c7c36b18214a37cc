//! The engine running revisions in phases on PostgreSQL: a batched backfill that survives
//! `kill -9` and lost connections (every row updated exactly once, `check` clean after the
//! next run), an online type change under concurrent writes, and the lock budget.
//!
//! The `kill -9` trials run the engine in a child process: this test binary itself, started
//! again with [`CHILD_URL`] set, runs only [`child_migrates_to_head`].

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::{Backfill, Batching, Column, ColumnType, DefaultExpr, Op, Revision, Table};
use migrate_engine::{EngineError, Intent};
use migrate_postgres::{PostgresDriver, SessionSettings};
use migrate_testkit::TestDb;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a child process: the database it migrates.
const CHILD_URL: &str = "IDENTITY_MIGRATE_ONLINE_CHILD_URL";
/// Rows of the backfilled table.
const ROWS: i64 = 5_000;

/// `items (id bigint primary key, n integer not null default 0, label text)`, then a backfill
/// adding one to `n` of every row in batches of 100, at most 10,000 rows a second (so that a
/// run lasts about half a second: long enough to be killed in the middle).
fn backfill_graph() -> migrate_core::RevisionGraph {
    let items = Table::new("items")
        .column(Column::new("id", ColumnType::BigInt).not_null())
        .column(
            Column::new("n", ColumnType::Integer)
                .not_null()
                .default(DefaultExpr::Int(0)),
        )
        .column(Column::new("label", ColumnType::Text))
        .primary_key("items_pkey", &["id"]);
    graph(vec![
        Revision::new("aaaaaaaaaaaa", &[], "create items")
            .upgrade(vec![Op::CreateTable(items)])
            .downgrade(vec![drop_table("items")]),
        Revision::new("bbbbbbbbbbbb", &["aaaaaaaaaaaa"], "count every item once")
            .upgrade(vec![Op::Backfill(
                Backfill::new("items", "n", "n + 1").batching(Batching {
                    rows: 100,
                    rows_per_second: Some(10_000),
                }),
            )])
            .downgrade(vec![]),
    ])
}

fn driver_for(url: &str) -> PostgresDriver {
    let settings = migrate_postgres::url::parse_with_process_env(url).expect("URL parses");
    PostgresDriver::connect(&settings, SessionSettings::default()).expect("connect")
}

/// Not a test of its own: the child process of the `kill -9` trials.
#[test]
fn child_migrates_to_head() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let graph = backfill_graph();
    let mut engine = migrate_engine::Engine::new(Box::new(driver_for(&url)), &graph, options());
    let _ = engine.run(&up("head"), &mut |_| {});
}

/// A small deterministic generator, so a failing trial can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn a_backfill_killed_at_random_points_finishes_every_row_exactly_once() {
    let db = TestDb::new();
    let graph = backfill_graph();
    run(&mut engine(&db, &graph), &up("aaaaaaaaaaaa")).unwrap();
    exec(
        &db,
        &format!("INSERT INTO items (id, label) SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g"),
    );
    let exe = std::env::current_exe().unwrap();
    let mut rng = Lcg(0x5eed);
    let mut interrupted_midway = 0;
    for trial in 0..20 {
        exec(&db, "UPDATE items SET n = 0");
        let delay = Duration::from_millis(30 + rng.below(600));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_migrates_to_head",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, db.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // Every fifth trial loses its connections instead of its process.
        if trial % 5 == 4 {
            exec(
                &db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
        } else {
            child.kill().unwrap(); // SIGKILL
        }
        child.wait().unwrap();
        // The killed process's sessions end on the server a moment later (a batch it sent may
        // still commit): what it left is read once they are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(
            &db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ) > 0
        {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the child's sessions linger"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // What the killed run left is consistent: exactly the rows its progress row counts
        // were updated, each once.
        let recorded: i64 = texts(
            &db,
            "SELECT coalesce(sum(rows_done), 0)::text FROM identity_migrate_progress \
             WHERE revision = 'bbbbbbbbbbbb'",
        )
        .first()
        .map_or(0, |t| t.parse().unwrap());
        let versions_now = versions(&db);
        if versions_now == ["aaaaaaaaaaaa"] {
            assert_eq!(
                count(&db, "SELECT count(*) FROM items WHERE n = 1"),
                recorded,
                "trial {trial}"
            );
            assert_eq!(
                count(&db, "SELECT count(*) FROM items WHERE n > 1"),
                0,
                "trial {trial}"
            );
            if recorded > 0 && recorded < ROWS {
                interrupted_midway += 1;
            }
        }
        // Running migrate again finishes it.
        run(&mut engine(&db, &graph), &up("head")).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        assert_eq!(versions(&db), ["bbbbbbbbbbbb"], "trial {trial}");
        assert_eq!(
            count(&db, "SELECT count(*) FROM items WHERE n = 1"),
            ROWS,
            "trial {trial}"
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM items WHERE n <> 1"),
            0,
            "trial {trial}"
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM identity_migrate_progress"),
            0,
            "trial {trial}"
        );
        let report = engine(&db, &graph).check().unwrap();
        assert!(report.is_clean(), "trial {trial}: {report:?}");
        // Back to the start for the next trial (the backfill's downgrade changes nothing).
        run(&mut engine(&db, &graph), &down("aaaaaaaaaaaa")).unwrap();
    }
    assert!(
        interrupted_midway >= 10,
        "only {interrupted_midway} of 20 trials stopped a backfill midway: the trials test little"
    );
}

#[test]
fn a_backfill_skips_nothing_after_an_interruption_and_reports_progress() {
    let db = TestDb::new();
    let graph = backfill_graph();
    run(&mut engine(&db, &graph), &up("aaaaaaaaaaaa")).unwrap();
    exec(
        &db,
        "INSERT INTO items (id) SELECT g FROM generate_series(1, 1000) g",
    );
    // As if an earlier run committed the batches up to key 400 and died.
    exec(&db, "UPDATE items SET n = 1 WHERE id <= 400");
    let mut d = driver(&db);
    use migrate_core::driver::{Driver, PhaseProgress};
    let sql = d.phased().unwrap().progress_sql();
    d.execute_in_transaction(&[
        sql.progress_bootstrap(),
        sql.progress_statement(
            "bbbbbbbbbbbb",
            migrate_core::Direction::Up,
            &PhaseProgress {
                op: 0,
                phase: 0,
                done: false,
                last_key: Some("400".into()),
                rows_done: 400,
            },
        ),
    ])
    .unwrap();
    drop(d);
    let (result, events) = run_collecting(&mut engine(&db, &graph), &up("head"));
    result.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM items WHERE n = 1"), 1000);
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            migrate_engine::Event::BatchProgress { rows_done, .. } => Some(*rows_done),
            _ => None,
        })
        .expect("the backfill reported its progress");
    assert_eq!(last, 1000);
}

#[test]
fn an_online_type_change_keeps_concurrent_writes_and_leaves_the_model_schema() {
    let db = TestDb::new();
    let accounts = Table::new("accounts")
        .column(Column::new("id", ColumnType::BigInt).not_null())
        .column(Column::new("session_id", ColumnType::varchar(64)).not_null())
        .primary_key("accounts_pkey", &["id"]);
    let graph = graph(vec![
        Revision::new("aaaaaaaaaaaa", &[], "create accounts")
            .upgrade(vec![
                Op::CreateTable(accounts),
                Op::CreateIndex {
                    table: "accounts".into(),
                    index: migrate_core::Index::new("ix_accounts_session_id", &["session_id"]),
                    concurrently: false,
                },
            ])
            .downgrade(vec![drop_table("accounts")]),
        Revision::new("bbbbbbbbbbbb", &["aaaaaaaaaaaa"], "session_id becomes uuid")
            .upgrade(vec![Op::AlterColumnTypeOnline {
                table: "accounts".into(),
                column: "session_id".into(),
                ty: ColumnType::Uuid,
                using: Some("session_id::uuid".into()),
                batching: Batching {
                    rows: 200,
                    rows_per_second: None,
                },
            }])
            .downgrade(vec![Op::AlterColumnTypeOnline {
                table: "accounts".into(),
                column: "session_id".into(),
                ty: ColumnType::varchar(64),
                using: Some("session_id::text".into()),
                batching: Batching::default(),
            }]),
    ]);
    run(&mut engine(&db, &graph), &up("aaaaaaaaaaaa")).unwrap();
    exec(
        &db,
        "INSERT INTO accounts SELECT g, gen_random_uuid()::text FROM generate_series(1, 3000) g",
    );
    // A writer inserting and updating rows while the column changes type: it never names the
    // new column, as the running release of a service would not.
    let mut client = db.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut next = 100_000_i64;
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                next += 1;
                // Untyped literals, as a driver binding the model's type would send them.
                if let Err(e) = client.batch_execute(&format!(
                    "INSERT INTO accounts (id, session_id) VALUES ({next}, '00000000-0000-4000-8000-{next:012}'); \
                     UPDATE accounts SET session_id = '00000000-0000-4000-9000-{next:012}' \
                     WHERE id = {}",
                    next % 3000 + 1
                )) {
                    failures.push(
                        e.as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
                    );
                }
            }
            (next - 100_000, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    run(&mut engine(&db, &graph), &up("head")).unwrap();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (writes, failures) = writer.join().unwrap();
    assert!(writes > 0);
    // The cached plans of the writer's session see a changed column type once; nothing else.
    assert!(
        failures
            .iter()
            .all(|f| f.contains("cached plan must not change result type")),
        "{failures:?} (after {took:?})"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM accounts WHERE session_id IS NULL"
        ),
        0
    );
    assert_eq!(
        texts(
            &db,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'accounts'::regclass AND attname = 'session_id'"
        ),
        ["uuid"]
    );
    let report = engine(&db, &graph).check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    // And back, the same way.
    run(&mut engine(&db, &graph), &down("aaaaaaaaaaaa")).unwrap();
    let report = engine(&db, &graph).check().unwrap();
    assert!(report.differences.is_empty(), "{report:?}");
}

#[test]
fn a_step_blocked_past_the_lock_budget_stops_naming_the_blocker_and_keeps_nothing_of_it() {
    let db = TestDb::new();
    let graph = graph(vec![
        table_revision("aaaaaaaaaaaa", &[], "t"),
        Revision::new("bbbbbbbbbbbb", &["aaaaaaaaaaaa"], "add a column")
            .upgrade(vec![
                sql("CREATE TABLE side (id integer)"),
                sql("ALTER TABLE t ADD COLUMN note text"),
            ])
            .downgrade(vec![
                sql("ALTER TABLE t DROP COLUMN note"),
                drop_table("side"),
            ]),
    ]);
    run(&mut engine(&db, &graph), &up("aaaaaaaaaaaa")).unwrap();
    let mut blocker = db.client();
    blocker
        .batch_execute("SET application_name = 'the-blocker'; BEGIN; SELECT * FROM t")
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut options = options();
    options.retry_budget = Duration::from_secs(2);
    let session = SessionSettings {
        lock_timeout: Duration::from_millis(200),
        ..SessionSettings::default()
    };
    let mut engine =
        migrate_engine::Engine::new(Box::new(driver_with(&db, session)), &graph, options);
    let started = Instant::now();
    let (result, events) = run_collecting(&mut engine, &Intent::Upgrade("head".into()));
    let took = started.elapsed();
    let Err(EngineError::StepFailed(failure)) = result else {
        panic!("expected the step to fail, got {result:?}")
    };
    let message = EngineError::StepFailed(failure).to_string();
    assert!(
        message.contains(&format!("blocked by pid {blocker_pid}")),
        "{message}"
    );
    assert!(message.contains("the-blocker"), "{message}");
    assert!(message.contains("idle in transaction"), "{message}");
    assert!(message.contains("lock budget"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let retries = events
        .iter()
        .filter(|e| matches!(e, migrate_engine::Event::Retrying { .. }))
        .count();
    assert!(retries >= 2, "{retries} retries");
    // Nothing of the step stays: not even the table its first statement created.
    assert_eq!(versions(&db), ["aaaaaaaaaaaa"]);
    assert!(!relation_exists(&db, "side"));
    blocker.batch_execute("ROLLBACK").unwrap();
}

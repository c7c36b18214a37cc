//! How long the service waits behind a revision that changes several tables: the write-blocking
//! locks a transaction takes up front are acquired within one lock timeout in all, and a
//! revision marked `table_by_table` commits each table's part on its own, so that no
//! transaction holds two of them. Synthetic revisions, real PostgreSQL, a reader timed as the
//! issue's aim says (lock timeout plus 100 ms).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::DriverError;
use migrate_core::{Column, ColumnType, Op, Revision, TableName};
use migrate_engine::{Engine, EngineError};
use migrate_postgres::SessionSettings;
use migrate_testkit::TestDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const R1: &str = "b1000000000a";
const R2: &str = "b2000000000b";
const LOCK_TIMEOUT: Duration = Duration::from_millis(300);

/// r1 creates `a` and `b`; r2 adds a column to each, in one transaction unless `table_by_table`.
fn chain(table_by_table: bool) -> Vec<Revision> {
    let add = |t: &str| Op::AddColumn {
        table: TableName::new(t),
        column: Column::new("note", ColumnType::Text),
    };
    let drop = |t: &str| Op::DropColumn {
        table: TableName::new(t),
        column: "note".to_owned(),
    };
    let mut r2 = Revision::new(R2, &[R1], "a note on a and b")
        .upgrade(vec![add("a"), add("b")])
        .downgrade(vec![drop("b"), drop("a")]);
    if table_by_table {
        r2 = r2.table_by_table();
    }
    vec![
        Revision::new(R1, &[], "a and b")
            .upgrade(vec![create_table("a"), create_table("b")])
            .downgrade(vec![drop_table("b"), drop_table("a")]),
        r2,
    ]
}

fn engine_at_r1<'g>(db: &TestDb, graph: &'g migrate_core::RevisionGraph) -> Engine<'g> {
    let mut options = options();
    options.retry_budget = Duration::from_secs(2);
    let driver = driver_with(
        db,
        SessionSettings {
            lock_timeout: LOCK_TIMEOUT,
            ..SessionSettings::default()
        },
    );
    let mut engine = Engine::new(Box::new(driver), graph, options);
    run(&mut engine, &up(R1)).unwrap();
    exec(db, "INSERT INTO a VALUES (1)");
    engine
}

/// A new session in a transaction that read `$table`: every `ALTER TABLE` of it waits
/// until that transaction ends.
macro_rules! reading {
    ($db:expr, $table:literal) => {{
        let mut client = $db.client();
        client
            .batch_execute(concat!("BEGIN; SELECT count(*) FROM ", $table))
            .unwrap();
        client
    }};
}

/// Reads `a` over and over, each read its own statement, until stopped; returns the longest
/// read and how many there were.
fn reader_of_a(db: &TestDb, stop: Arc<AtomicBool>) -> JoinHandle<(Duration, usize)> {
    let mut client = db.client();
    std::thread::spawn(move || {
        let mut longest = Duration::ZERO;
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            client.query("SELECT id FROM a WHERE id = 1", &[]).unwrap();
            longest = longest.max(started.elapsed());
            reads += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (longest, reads)
    })
}

fn columns_named_note(db: &TestDb) -> Vec<String> {
    texts(
        db,
        "SELECT table_name::text FROM information_schema.columns WHERE column_name = 'note' \
         AND table_schema = current_schema() ORDER BY 1",
    )
}

/// `a` is free after a while, `b` never: one `LOCK TABLE` per table under its own timeout
/// would hold `a` for a whole second timeout while it waits for `b` (a reader of `a` waiting
/// about 250 + 300 ms); taken together, the locks are given up one timeout after the first
/// wait began.
#[test]
fn the_locks_a_transaction_takes_up_front_are_acquired_within_one_lock_timeout_in_all() {
    let db = TestDb::new();
    let graph = graph(chain(false));
    let mut engine = engine_at_r1(&db, &graph);
    let mut holds_a = reading!(db, "a");
    let mut holds_b = reading!(db, "b");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = reader_of_a(&db, stop.clone());
    let release_a = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        holds_a.batch_execute("COMMIT").unwrap();
    });
    let result = run(&mut engine, &up("head"));
    release_a.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (longest, count) = reads.join().unwrap();
    holds_b.batch_execute("COMMIT").unwrap();
    match &result {
        Err(EngineError::StepFailed(f)) => assert!(
            matches!(f.error, DriverError::LockTimeout(_)),
            "{:?}",
            f.error
        ),
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    assert_eq!(versions(&db), [R1]);
    assert_eq!(columns_named_note(&db), Vec::<String>::new());
    assert!(count > 10, "{count} reads");
    assert!(
        longest <= LOCK_TIMEOUT + Duration::from_millis(100),
        "a reader of a waited {longest:?} (lock timeout {LOCK_TIMEOUT:?})"
    );
}

/// Table by table, `a`'s part commits while `b` is held, and readers of `a` never wait for
/// `b`; when the budget runs out the revision stays half-way, and the next run finishes it.
#[test]
fn a_table_by_table_revision_commits_each_table_on_its_own_and_the_next_run_finishes_it() {
    let db = TestDb::new();
    let graph = graph(chain(true));
    let mut engine = engine_at_r1(&db, &graph);
    let mut holds_b = reading!(db, "b");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = reader_of_a(&db, stop.clone());
    let result = run(&mut engine, &up("head"));
    stop.store(true, Ordering::Relaxed);
    let (longest, _) = reads.join().unwrap();
    match &result {
        Err(EngineError::StepFailed(f)) => {
            assert!(
                matches!(f.error, DriverError::LockTimeout(_)),
                "{:?}",
                f.error
            );
            assert_eq!(f.committed_phases, 1, "a's part stays committed: {f:?}");
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    assert_eq!(versions(&db), [R1]);
    assert_eq!(columns_named_note(&db), ["a"]);
    assert!(
        longest <= LOCK_TIMEOUT + Duration::from_millis(100),
        "a reader of a waited {longest:?} while b was held"
    );

    holds_b.batch_execute("COMMIT").unwrap();
    run(&mut engine, &up("head")).unwrap();
    assert_eq!(versions(&db), [R2]);
    assert_eq!(columns_named_note(&db), ["a", "b"]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM identity_migrate_progress"),
        0
    );
    assert_schema_at(&db, &graph, Some(R2));
}

/// Without the mark, the same revision stays all or nothing.
#[test]
fn a_revision_not_marked_table_by_table_keeps_nothing_when_a_table_is_held() {
    let db = TestDb::new();
    let graph = graph(chain(false));
    let mut engine = engine_at_r1(&db, &graph);
    let mut holds_b = reading!(db, "b");
    let result = run(&mut engine, &up("head"));
    holds_b.batch_execute("COMMIT").unwrap();
    assert!(result.is_err(), "{result:?}");
    assert_eq!(columns_named_note(&db), Vec::<String>::new());
    run(&mut engine, &up("head")).unwrap();
    assert_eq!(columns_named_note(&db), ["a", "b"]);
}

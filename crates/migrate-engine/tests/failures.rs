//! What the engine does when a revision fails, when the database's state or the target is wrong,
//! when revisions changed, and when another migrator holds the lock. Synthetic revisions, real
//! PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::{Driver, DriverError};
use migrate_core::{Column, ColumnType, Direction, Index, Op, ResolveError, Revision, TableName};
use migrate_engine::{EngineError, Event, Options};
use migrate_postgres::SessionSettings;
use migrate_testkit::TestDb;
use std::time::{Duration, Instant};

const R1: &str = "a1000000000a";
const R2: &str = "a2000000000b";
const R3: &str = "a3000000000c";

/// r1 creates `a`; r2 creates `b`, then divides by zero; r3 creates `c`.
fn failing_chain() -> Vec<Revision> {
    vec![
        table_revision(R1, &[], "a"),
        Revision::new(R2, &[R1], "create b, then fail")
            .upgrade(vec![create_table("b"), sql("SELECT 1/0")])
            .downgrade(vec![drop_table("b")]),
        table_revision(R3, &[R2], "c"),
    ]
}

fn fixed_chain() -> Vec<Revision> {
    let mut revisions = failing_chain();
    revisions[1].upgrade.pop();
    revisions
}

/// A second engine, started after `what`, gets the lock at once.
fn assert_lock_free(db: &TestDb, graph: &migrate_core::RevisionGraph, what: &str) {
    let mut other = engine_with(db, graph, options_with_lock_wait(Duration::from_secs(2)));
    let started = Instant::now();
    let before = snapshot(db);
    let result = run(&mut other, &up("+0"));
    assert!(
        result.is_ok() || matches!(result, Err(EngineError::Resolve(_))),
        "the lock is still held after {what}: {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a second engine waited {:?} for the lock after {what}",
        started.elapsed()
    );
    assert_eq!(snapshot(db), before);
}

#[test]
fn a_revision_failing_halfway_leaves_the_last_completed_revision_and_none_of_its_statements() {
    let db = TestDb::new();
    let graph = graph(failing_chain());
    let mut engine = engine_with(&db, &graph, options_with_lock_wait(Duration::from_secs(2)));
    let (result, events) = run_collecting(&mut engine, &up("head"));
    let Err(EngineError::StepFailed(failure)) = result else {
        panic!("expected StepFailed, got {result:?}");
    };
    assert_eq!(failure.step.revision, R2);
    assert_eq!(failure.step.direction, Direction::Up);
    assert_eq!(failure.statement, Some((1, "SELECT 1/0".to_owned())));
    assert!(
        matches!(&failure.error, DriverError::Statement { code: Some(c), message } if c == "22012" && message.contains("division by zero")),
        "{:?}",
        failure.error
    );
    assert_eq!(report_ids(&failure.completed), [R1]);
    let message = EngineError::StepFailed(failure).to_string();
    assert!(
        message.contains(&format!(
            "upgrade of revision {R2} failed at statement 2 (SELECT 1/0)"
        )) && message.contains(&format!("stays at {R1}")),
        "{message}"
    );
    // r1's step finished and was reported; r3 never started.
    let finished: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished(r) => Some(r.step.revision.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [R1]);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::StepStarted(s) if s.revision == R3)));

    assert_eq!(versions(&db), [R1]);
    assert!(relation_exists(&db, "a"));
    assert!(
        !relation_exists(&db, "b"),
        "the failed revision's table was kept"
    );
    assert!(!relation_exists(&db, "c"));
    let history = history(&db);
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].revision.as_str(), history[0].outcome.as_str()),
        (R1, "applied")
    );
    assert_eq!(
        (
            history[1].revision.as_str(),
            history[1].direction.as_str(),
            history[1].outcome.as_str()
        ),
        (R2, "up", "failed")
    );
    assert!(is_sha256_hex(&history[1].checksum));
    assert!(
        history[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("division by zero")),
        "{:?}",
        history[1].error
    );

    assert_lock_free(&db, &graph, "a failed step");
    // The same engine can run again too: its own lock was released.
    assert!(matches!(
        run(&mut engine, &up("head")),
        Err(EngineError::StepFailed(_))
    ));
    assert_eq!(versions(&db), [R1]);
    assert_eq!(common::history(&db).len(), 3);

    // Once the revision is fixed, the run goes on from where the database stands.
    let fixed = common::graph(fixed_chain());
    let mut engine = common::engine(&db, &fixed);
    let reports = run(&mut engine, &up("head")).unwrap();
    assert_eq!(report_ids(&reports), [R2, R3]);
    assert_eq!(versions(&db), [R3]);
    assert!(relation_exists(&db, "b") && relation_exists(&db, "c"));
}

#[test]
fn a_failing_downgrade_keeps_the_revision_applied() {
    let db = TestDb::new();
    let revisions = vec![
        table_revision(R1, &[], "a"),
        Revision::new(R2, &[R1], "b; its downgrade fails")
            .upgrade(vec![create_table("b")])
            .downgrade(vec![drop_table("b"), sql("SELECT 1/0")]),
    ];
    let graph = graph(revisions);
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up("head")).unwrap();
    let Err(EngineError::StepFailed(failure)) = run(&mut engine, &down("base")) else {
        panic!("the downgrade should fail");
    };
    assert_eq!(
        (failure.step.revision.as_str(), failure.step.direction),
        (R2, Direction::Down)
    );
    assert!(failure.completed.is_empty());
    assert_eq!(versions(&db), [R2]);
    assert!(
        relation_exists(&db, "b"),
        "the failed downgrade's DROP was kept"
    );
    let last = history(&db).pop().unwrap();
    assert_eq!(
        (
            last.revision.as_str(),
            last.direction.as_str(),
            last.outcome.as_str()
        ),
        (R2, "down", "failed")
    );
    assert_lock_free(&db, &graph, "a failed downgrade");
}

#[test]
fn an_unknown_current_revision_is_refused_and_nothing_changes() {
    let db = TestDb::new();
    let graph = graph(fixed_chain());
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up(R1)).unwrap();
    exec(
        &db,
        "UPDATE alembic_version SET version_num = 'ffffffffffff'",
    );
    let before = snapshot(&db);
    for intent in [up("head"), up("+1"), down("base"), down(R1)] {
        let result = run(&mut engine, &intent);
        assert!(
            matches!(&result, Err(EngineError::Resolve(ResolveError::UnknownCurrent(ids))) if ids == &["ffffffffffff"]),
            "{intent:?}: {result:?}"
        );
        assert_eq!(snapshot(&db), before, "{intent:?} changed the database");
    }
    assert!(matches!(
        engine.status(),
        Err(EngineError::Resolve(ResolveError::UnknownCurrent(_)))
    ));
    assert!(matches!(
        engine.script(&up("head")),
        Err(EngineError::Resolve(ResolveError::UnknownCurrent(_)))
    ));
    let message = run(&mut engine, &up("head")).unwrap_err().to_string();
    assert!(
        message.contains("ffffffffffff") && message.contains("refusing"),
        "{message}"
    );
    assert_lock_free(&db, &graph, "a refused run");
}

/// root; two branches from it.
fn branched() -> Vec<Revision> {
    vec![
        table_revision("b0000000000a", &[], "root"),
        table_revision("b1000000000b", &["b0000000000a"], "left"),
        table_revision("b2000000000c", &["b0000000000a"], "right"),
    ]
}

#[test]
fn rolling_back_to_a_revision_that_is_not_applied_is_refused_and_nothing_changes() {
    let db = TestDb::new();
    let graph = graph(branched());
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up("b1000000000b")).unwrap();
    let before = snapshot(&db);
    for target in ["b2000000000c", "b200"] {
        let result = run(&mut engine, &down(target));
        match &result {
            Err(EngineError::Resolve(ResolveError::NotAnAncestor { target, current })) => {
                assert_eq!(target, "b2000000000c");
                assert_eq!(current, &["b1000000000b"]);
            }
            other => panic!("expected NotAnAncestor, got {other:?}"),
        }
        assert_eq!(snapshot(&db), before);
    }
    assert!(matches!(
        engine.script(&down("b2000000000c")),
        Err(EngineError::Resolve(ResolveError::NotAnAncestor { .. }))
    ));
    // Rolling back to the root undoes only what is applied.
    let reports = run(&mut engine, &down("b0000000000a")).unwrap();
    assert_eq!(report_ids(&reports), ["b1000000000b"]);
    assert_eq!(versions(&db), ["b0000000000a"]);
}

#[test]
fn head_with_several_heads_is_refused_naming_every_head() {
    let db = TestDb::new();
    let graph = graph(branched());
    let mut engine = engine(&db, &graph);
    let result = run(&mut engine, &up("head"));
    match &result {
        Err(EngineError::Resolve(ResolveError::MultipleHeads(heads))) => {
            let mut heads = heads.clone();
            heads.sort();
            assert_eq!(heads, ["b1000000000b", "b2000000000c"]);
        }
        other => panic!("expected MultipleHeads, got {other:?}"),
    }
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("b1000000000b") && message.contains("b2000000000c"),
        "{message}"
    );
    assert_eq!(describe(&db), "");
    assert!(versions(&db).is_empty());
    assert!(history(&db).is_empty());
    // `heads` takes both branches.
    let reports = run(&mut engine, &up("heads")).unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(versions(&db), ["b1000000000b", "b2000000000c"]);
}

#[test]
fn a_run_refused_for_its_target_creates_nothing_on_a_fresh_database() {
    let db = TestDb::new();
    let graph = graph(branched());
    let mut engine = engine(&db, &graph);
    let before = snapshot(&db);
    assert!(run(&mut engine, &up("head")).is_err());
    assert!(run(&mut engine, &up("nope")).is_err());
    assert_eq!(snapshot(&db), before);
}

#[test]
fn an_ambiguous_prefix_is_refused_listing_every_candidate() {
    let db = TestDb::new();
    let graph = graph(vec![
        table_revision("abcde1000000", &[], "a"),
        table_revision("abcde2000000", &["abcde1000000"], "b"),
    ]);
    let mut engine = engine(&db, &graph);
    let result = run(&mut engine, &up("abcde"));
    match &result {
        Err(EngineError::Resolve(ResolveError::Ambiguous { prefix, candidates })) => {
            assert_eq!(prefix, "abcde");
            let mut candidates = candidates.clone();
            candidates.sort();
            assert_eq!(candidates, ["abcde1000000", "abcde2000000"]);
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let message = result.unwrap_err().to_string();
    assert!(message.contains("abcde1000000") && message.contains("abcde2000000"));
    assert_eq!(describe(&db), "");
    assert!(versions(&db).is_empty());
    // One more character is enough.
    let reports = run(&mut engine, &up("abcde1")).unwrap();
    assert_eq!(report_ids(&reports), ["abcde1000000"]);
}

/// G: r1 creates `a`. G': r1 creates `a` with one more column, and r2 follows.
fn changed_graph() -> Vec<Revision> {
    let mut r1 = table_revision(R1, &[], "a");
    r1.upgrade = vec![Op::CreateTable(
        table("a").column(Column::new("note", ColumnType::Text)),
    )];
    vec![r1, table_revision(R2, &[R1], "b")]
}

#[test]
fn a_revision_changed_after_it_was_applied_stops_migrate_until_accepted() {
    let db = TestDb::new();
    let original = graph(vec![table_revision(R1, &[], "a")]);
    run(&mut engine(&db, &original), &up("head")).unwrap();

    let changed = graph(changed_graph());
    let mut strict = engine(&db, &changed);
    assert_eq!(strict.changed_revisions().unwrap(), [R1]);
    let before = snapshot(&db);
    let result = run(&mut strict, &up("head"));
    assert!(
        matches!(&result, Err(EngineError::ChangedRevisions(ids)) if ids == &[R1]),
        "{result:?}"
    );
    assert!(result.unwrap_err().to_string().contains(R1));
    assert_eq!(snapshot(&db), before);
    assert_lock_free(&db, &original, "a refused changed revision");

    let mut accepting = Options::new(identity());
    accepting.accept_changed = true;
    let mut accepting = engine_with(&db, &changed, accepting);
    let reports = run(&mut accepting, &up("head")).unwrap();
    assert_eq!(report_ids(&reports), [R2]);
    assert_eq!(versions(&db), [R2]);
    assert!(relation_exists(&db, "b"));
}

#[test]
fn an_accepted_change_is_not_reported_again() {
    let db = TestDb::new();
    let original = graph(vec![table_revision(R1, &[], "a")]);
    run(&mut engine(&db, &original), &up("head")).unwrap();
    let changed = graph(changed_graph());
    let mut accepting = Options::new(identity());
    accepting.accept_changed = true;
    run(&mut engine_with(&db, &changed, accepting), &up("head")).unwrap();
    let mut strict = engine(&db, &changed);
    assert_eq!(strict.changed_revisions().unwrap(), Vec::<String>::new());
    run(&mut strict, &down(R1)).unwrap();
}

/// r2 adds a column to `a`, which another session keeps locked for a while.
fn alter_chain() -> Vec<Revision> {
    vec![
        table_revision(R1, &[], "a"),
        Revision::new(R2, &[R1], "add a.note")
            .upgrade(vec![Op::AddColumn {
                table: TableName::new("a"),
                column: Column::new("note", ColumnType::Text),
            }])
            .downgrade(vec![Op::DropColumn {
                table: TableName::new("a"),
                column: "note".to_owned(),
            }]),
    ]
}

fn short_lock_timeout(db: &TestDb) -> Box<dyn Driver> {
    Box::new(driver_with(
        db,
        SessionSettings {
            lock_timeout: Duration::from_millis(100),
            ..SessionSettings::default()
        },
    ))
}

#[test]
fn a_step_that_loses_a_table_lock_race_is_retried_until_it_succeeds() {
    let db = TestDb::new();
    let graph = graph(alter_chain());
    let mut options = options();
    options.retry_budget = Duration::from_secs(10);
    let mut engine = migrate_engine::Engine::new(short_lock_timeout(&db), &graph, options);
    run(&mut engine, &up(R1)).unwrap();

    let mut blocker = db.client();
    blocker
        .batch_execute("BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        blocker.batch_execute("COMMIT").unwrap();
    });
    let (result, events) = run_collecting(&mut engine, &up("head"));
    release.join().unwrap();
    assert_eq!(report_ids(&result.unwrap()), [R2]);
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { step, attempt } if step.revision == R2 => Some(*attempt),
            _ => None,
        })
        .collect();
    assert!(!attempts.is_empty(), "no retry reported: {events:?}");
    assert_eq!(attempts[0], 2);
    assert_eq!(versions(&db), [R2]);
    // Lost races are not failures: one applied row per revision.
    let history = history(&db);
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|h| h.outcome == "applied"));
}

#[test]
fn a_step_still_locked_out_when_the_retry_budget_is_spent_fails_and_keeps_nothing() {
    let db = TestDb::new();
    let graph = graph(alter_chain());
    let mut options = options();
    options.retry_budget = Duration::from_millis(300);
    let mut engine = migrate_engine::Engine::new(short_lock_timeout(&db), &graph, options);
    run(&mut engine, &up(R1)).unwrap();

    let mut blocker = db.client();
    blocker
        .batch_execute("BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let result = run(&mut engine, &up("head"));
    blocker.batch_execute("COMMIT").unwrap();
    match &result {
        Err(EngineError::StepFailed(f)) => {
            assert_eq!(f.step.revision, R2);
            assert!(
                matches!(f.error, DriverError::LockTimeout(_)),
                "{:?}",
                f.error
            );
        }
        other => panic!("expected StepFailed, got {other:?}"),
    }
    assert_eq!(versions(&db), [R1]);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'note'"
        ),
        0
    );
    assert_eq!(history(&db).last().unwrap().outcome, "failed");
    assert_lock_free(&db, &graph, "a lock timeout");
}

/// r1 creates `t(id, email)`; r2 builds a unique index on `email` concurrently.
fn concurrent_index_chain() -> Vec<Revision> {
    let t = Op::CreateTable(table("t").column(Column::new("email", ColumnType::varchar(100))));
    vec![
        Revision::new(R1, &[], "t")
            .upgrade(vec![t])
            .downgrade(vec![drop_table("t")]),
        Revision::new(R2, &[R1], "unique email, built concurrently")
            .upgrade(vec![Op::CreateIndex {
                table: TableName::new("t"),
                index: Index::new("ix_t_email", &["email"]).unique(),
                concurrently: true,
            }])
            .downgrade(vec![Op::DropIndex {
                table: TableName::new("t"),
                name: "ix_t_email".to_owned(),
                concurrently: true,
            }]),
    ]
}

#[test]
fn a_failed_non_transactional_revision_is_not_recorded_as_applied() {
    let db = TestDb::new();
    let graph = graph(concurrent_index_chain());
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up(R1)).unwrap();
    exec(
        &db,
        "INSERT INTO t VALUES (1, 'a@x.io'), (2, 'a@x.io'), (3, 'b@x.io')",
    );
    let result = run(&mut engine, &up("head"));
    match &result {
        Err(EngineError::StepFailed(f)) => {
            assert_eq!(f.step.revision, R2);
            // Statement 0 drops any INVALID index a previous attempt left; 1 builds it.
            assert_eq!(f.statement.as_ref().map(|s| s.0), Some(1));
            assert!(
                matches!(&f.error, DriverError::Statement { code: Some(c), .. } if c == "23505"),
                "{:?}",
                f.error
            );
        }
        other => panic!("expected StepFailed, got {other:?}"),
    }
    assert_eq!(versions(&db), [R1]);
    assert_eq!(history(&db).last().unwrap().outcome, "failed");
    assert_lock_free(&db, &graph, "a failed concurrent index build");
}

#[test]
fn a_failed_concurrent_index_build_leaves_no_invalid_index_and_the_rerun_finishes_it() {
    let db = TestDb::new();
    let graph = graph(concurrent_index_chain());
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up(R1)).unwrap();
    exec(
        &db,
        "INSERT INTO t VALUES (1, 'a@x.io'), (2, 'a@x.io'), (3, 'b@x.io')",
    );
    assert!(run(&mut engine, &up("head")).is_err());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 'ix_t_email'"
        ),
        0,
        "an invalid index was left in place"
    );
    // The operator fixes the data; the next run finishes the revision.
    exec(&db, "DELETE FROM t WHERE id = 2");
    let reports = run(&mut engine, &up("head")).unwrap();
    assert_eq!(report_ids(&reports), [R2]);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 'ix_t_email' AND i.indisvalid"
        ),
        1
    );
}

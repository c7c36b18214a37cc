//! The engine's scenarios on both databases, each written once over a [`Backend`] and run on
//! PostgreSQL and on SQLite by [`both!`]: the dry run is what runs, the identity chain step by
//! step, a failure halfway, the migration lock, concurrent migrators, drift.
//!
//! What only one database has (PostgreSQL's phases and fixtures, SQLite's file lock and
//! foreign-key pragma) stays in the tests of that database.
#![allow(clippy::unwrap_used, missing_docs)]

use migrate_core::driver::DriverError;
use migrate_core::{Direction, RevisionGraph};
use migrate_engine::{EngineError, StepReport};
use migrate_testkit::harness::*;
use migrate_testkit::{both, Backend, Kind};
use std::sync::Barrier;
use std::time::Duration;

both!(the_dry_run_is_what_the_run_executes);
both!(the_identity_chain_steps_up_and_down_matching_schema_at);
both!(a_failing_revision_keeps_the_last_good_one_and_nothing_of_itself);
both!(a_second_migrator_gives_up_with_lock_busy_and_runs_once_the_lock_is_released);
both!(a_dropped_holder_releases_the_lock);
both!(concurrent_migrators_apply_each_revision_once);
both!(sixteen_concurrent_migrators_apply_the_identity_revisions_exactly_once);
both!(check_reports_drift_made_behind_the_tools_back);

fn the_dry_run_is_what_the_run_executes(kind: Kind) {
    let db = Backend::new(kind);
    let graph = identity_schema::graph();
    for (intent, fresh) in [(up("head"), true), (down("base"), false)] {
        let script = db.engine(&graph).script(&intent).unwrap();
        if fresh {
            // The dry run created nothing, not even the tool's tables it plans first.
            assert_eq!(
                script.bootstrap,
                db.driver().state_sql().bootstrap_statements()
            );
            assert!(!db.table_exists(VERSION_TABLE) && !db.table_exists(HISTORY_TABLE));
        } else {
            assert!(script.bootstrap.is_empty());
        }
        assert_eq!(script.steps.len(), graph.revisions().len());
        assert_run_executes(db.driver(), &graph, &intent, &script);
        assert_live_matches(db.driver().as_mut(), &graph, &format!("{intent:?}"));
    }
}

fn the_identity_chain_steps_up_and_down_matching_schema_at(kind: Kind) {
    let db = Backend::new(kind);
    let graph = identity_schema::graph();
    let ids = revision_ids(&graph);
    let mut engine = db.engine(&graph);
    let mut history = 0;
    let mut assert_step = |revision: &str, direction: Direction, at: Option<&str>| {
        let mut driver = db.driver();
        assert_live_matches(driver.as_mut(), &graph, at.unwrap_or("base"));
        assert_eq!(
            db.heads(),
            at.map(str::to_owned).into_iter().collect::<Vec<_>>()
        );
        history += 1;
        let rows = driver.read_history().unwrap();
        assert_eq!(rows.len(), history, "one history row per step");
        let last = rows.last().unwrap();
        assert_eq!(
            (
                last.revision.as_str(),
                last.direction,
                last.outcome.as_str()
            ),
            (revision, direction, "applied")
        );
        assert_eq!(last.ran_by, "test@test");
        assert_eq!(last.checksum.len(), 64);
        assert!(last.duration_ms >= 0.0, "{}", last.duration_ms);
        assert!(
            last.finished_at.ends_with('Z') && last.finished_at.contains('T'),
            "{}",
            last.finished_at
        );
    };
    for id in &ids {
        let reports = run(&mut engine, &up("+1")).unwrap();
        assert_eq!(report_ids(&reports), std::slice::from_ref(id));
        assert_step(id, Direction::Up, Some(id));
    }
    for (i, id) in ids.iter().enumerate().rev() {
        let reports = run(&mut engine, &down("-1")).unwrap();
        assert_eq!(report_ids(&reports), std::slice::from_ref(id));
        assert_step(
            id,
            Direction::Down,
            i.checked_sub(1).map(|p| ids[p].as_str()),
        );
    }
    assert!(engine.status().unwrap().current.is_empty());
    // Base again: the tool's own tables stay, holding the whole story.
    assert!(db.table_exists(VERSION_TABLE) && db.table_exists(HISTORY_TABLE));
}

fn a_failing_revision_keeps_the_last_good_one_and_nothing_of_itself(kind: Kind) {
    let db = Backend::new(kind);
    let mut revisions = small_chain();
    // Its first statement would succeed, its second fails: neither stays.
    revisions.push(sql_revision(
        &rev_id(4),
        &[&rev_id(3)],
        "CREATE TABLE half (id INTEGER); INSERT INTO items (id, name) VALUES (3, NULL)",
        "DROP TABLE half",
    ));
    revisions.push(sql_revision(
        &rev_id(5),
        &[&rev_id(4)],
        "INSERT INTO items (id, name) VALUES (4, 'never')",
        "SELECT 1",
    ));
    let graph = graph(revisions);
    let error = run(&mut db.engine(&graph), &up("head")).unwrap_err();
    let EngineError::StepFailed(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.step.revision, rev_id(4));
    assert_eq!(
        report_ids(&failure.completed),
        [rev_id(1), rev_id(2), rev_id(3)]
    );
    assert_eq!(failure.statement.as_ref().map(|s| s.0), Some(0));
    assert!(
        matches!(&failure.error, DriverError::Statement { message, .. } if message.contains("name")),
        "{:?}",
        failure.error
    );
    assert_eq!(failure.stays_at, heads(&[&rev_id(3)]));
    assert_eq!(db.heads(), [rev_id(3)]);
    assert_eq!(db.count("SELECT count(*) FROM items"), 2);
    assert!(!db.table_exists("half"));
    // Every step is recorded, the failure too, with its error.
    let history = db.driver().read_history().unwrap();
    let outcomes: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.revision.as_str(), h.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (rev_id(1).as_str(), "applied"),
            (rev_id(2).as_str(), "applied"),
            (rev_id(3).as_str(), "applied"),
            (rev_id(4).as_str(), "failed"),
        ]
    );
    let failed = history.last().unwrap();
    assert_eq!(
        failed.error.as_deref(),
        Some(failure.error.to_string().as_str())
    );
    assert!(failed.duration_ms >= 0.0);
}

fn a_second_migrator_gives_up_with_lock_busy_and_runs_once_the_lock_is_released(kind: Kind) {
    let db = Backend::new(kind);
    let graph = graph(small_chain());
    let mut holder = db.driver();
    assert!(holder.try_lock().unwrap());
    let mut waiting = db.engine_with(&graph, options_with_lock_wait(Duration::from_millis(300)));
    let error = run(&mut waiting, &up("head")).unwrap_err();
    assert!(
        matches!(error, EngineError::Driver(DriverError::LockBusy(_))),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("another migration holds the lock"),
        "{error}"
    );
    // It gave up before touching anything, not even its own tables.
    assert!(!db.table_exists(VERSION_TABLE) && !db.table_exists("items"));

    holder.unlock().unwrap();
    let reports = run(&mut waiting, &up("head")).unwrap();
    assert_eq!(report_ids(&reports), [rev_id(1), rev_id(2), rev_id(3)]);
    // And it released the lock in turn.
    assert!(holder.try_lock().unwrap());
    holder.unlock().unwrap();
}

fn a_dropped_holder_releases_the_lock(kind: Kind) {
    let db = Backend::new(kind);
    let graph = graph(small_chain());
    let mut holder = db.driver();
    assert!(holder.try_lock().unwrap());
    drop(holder);
    let mut engine = db.engine_with(&graph, options_with_lock_wait(Duration::from_secs(5)));
    assert_eq!(run(&mut engine, &up("head")).unwrap().len(), 3);
}

/// Runs `Upgrade("head")` from `threads` threads at once, each with its own driver and engine,
/// and asserts that every run succeeded and that together they applied each revision once, in
/// graph order.
fn race_to_head(db: &Backend, graph: &RevisionGraph, threads: usize) {
    let barrier = Barrier::new(threads);
    let results: Vec<Result<Vec<StepReport>, EngineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    // Every thread reaches the barrier, even one whose connection failed: a
                    // panic before it would leave the others waiting there forever (a hang seen
                    // once under the full suite's load), where the test must fail and say why.
                    let engine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        db.engine_with(graph, options_with_lock_wait(Duration::from_secs(60)))
                    }));
                    barrier.wait();
                    let mut engine = engine
                        .unwrap_or_else(|_| panic!("a migrator could not connect (see above)"));
                    run(&mut engine, &up("head"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids = revision_ids(graph);
    let runs: Vec<Vec<String>> = results
        .into_iter()
        .map(|r| report_ids(&r.unwrap_or_else(|e| panic!("a concurrent run failed: {e}"))))
        .collect();
    // The first to take the lock applies everything; the others, re-reading the state under
    // the lock, find nothing left to do.
    let workers: Vec<&Vec<String>> = runs.iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(workers, [&ids], "exactly one run applied every revision");
    let history = db.driver().read_history().unwrap();
    assert!(history
        .iter()
        .all(|h| h.outcome == "applied" && h.direction == Direction::Up));
    let recorded: Vec<String> = history.into_iter().map(|h| h.revision).collect();
    assert_eq!(
        recorded, ids,
        "one applied history row per revision, in order"
    );
    assert_eq!(db.heads(), [head_of(graph)]);
}

fn concurrent_migrators_apply_each_revision_once(kind: Kind) {
    let db = Backend::new(kind);
    let graph = counter_graph(30);
    race_to_head(&db, &graph, 8);
    assert_eq!(db.count("SELECT count(*) FROM counter"), 30);
    assert_eq!(db.count("SELECT count(DISTINCT revision) FROM counter"), 30);
}

fn sixteen_concurrent_migrators_apply_the_identity_revisions_exactly_once(kind: Kind) {
    let db = Backend::new(kind);
    let graph = identity_schema::graph();
    race_to_head(&db, &graph, 16);
    assert_live_matches(db.driver().as_mut(), &graph, "head");
}

fn check_reports_drift_made_behind_the_tools_back(kind: Kind) {
    let db = Backend::new(kind);
    let graph = identity_schema::graph();
    let mut engine = db.engine(&graph);
    run(&mut engine, &up("094916cde150")).unwrap();
    let report = engine.check().unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_eq!(report.pending.len(), graph.revisions().len() - 5);
    db.execute("CREATE INDEX ix_manual ON users (last_name); DROP INDEX ix_users_status");
    let report = engine.check().unwrap();
    let text: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text.iter().any(|d| d.contains("ix_manual")), "{text:?}");
    assert!(
        text.iter().any(|d| d.contains("ix_users_status")),
        "{text:?}"
    );
}

//! Many migrators started at once on one database: the lock lets one work at a time, each
//! re-reads the state under the lock, and every revision is applied exactly once.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::RevisionGraph;
use migrate_engine::{EngineError, StepReport};
use migrate_testkit::TestDb;
use std::sync::Barrier;
use std::time::Duration;

/// Runs `Upgrade("head")` from `threads` threads at once, each with its own driver and engine.
fn race(
    db: &TestDb,
    graph: &RevisionGraph,
    threads: usize,
) -> Vec<Result<Vec<StepReport>, EngineError>> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut engine =
                        engine_with(db, graph, options_with_lock_wait(Duration::from_secs(30)));
                    barrier.wait();
                    run(&mut engine, &up("head"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every run succeeded, and together they applied each revision once, in graph order.
fn assert_each_applied_once(
    db: &TestDb,
    graph: &RevisionGraph,
    results: Vec<Result<Vec<StepReport>, EngineError>>,
) {
    let ids: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
    let runs: Vec<Vec<String>> = results
        .into_iter()
        .map(|r| report_ids(&r.unwrap_or_else(|e| panic!("a concurrent run failed: {e}"))))
        .collect();
    // The first to take the lock applies everything; the others, re-reading the state under
    // the lock, find nothing left to do.
    let workers: Vec<&Vec<String>> = runs.iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(workers, [&ids], "exactly one run applied every revision");

    let history = history(db);
    assert!(history
        .iter()
        .all(|h| h.outcome == "applied" && h.direction == "up"));
    let recorded: Vec<String> = history.into_iter().map(|h| h.revision).collect();
    assert_eq!(
        recorded, ids,
        "one applied history row per revision, in order"
    );
    assert_eq!(versions(db), [graph.heads()[0].to_owned()]);
}

#[test]
fn sixteen_concurrent_migrators_apply_the_identity_revisions_exactly_once() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    let results = race(&db, &graph, 16);
    assert_each_applied_once(&db, &graph, results);
    assert_schema_at(&db, &graph, Some(&head_of(&graph)));
}

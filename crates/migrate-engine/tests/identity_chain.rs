//! The identity revisions on a real database, one step at a time: up from base, down to base,
//! and up again. After every step the live schema, introspected, must equal `schema_at` of the
//! revision the database is at (both spelled by the database), and where the spec has a
//! fixture (base and the two legacy revisions) the independent oracle must print it exactly.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::Direction;
use migrate_engine::Event;
use migrate_testkit::TestDb;

/// Asserts the state after one more step: schema, version rows, and one new `applied` history
/// row for that step.
fn assert_step(
    db: &TestDb,
    graph: &migrate_core::RevisionGraph,
    reports: &[migrate_engine::StepReport],
    revision: &str,
    direction: Direction,
    at: Option<&str>,
    history_len: usize,
) {
    let at_name = at.unwrap_or("base");
    assert_eq!(
        report_ids(reports),
        vec![revision.to_owned()],
        "one step, of {revision}"
    );
    assert_eq!(reports[0].step.direction, direction);
    if let Some(expected) = spec_fixture(at_name) {
        // Both sides with user_activity_logs.session_id last: where fbcbc6afff27's online type
        // change leaves it, up and down; no other line may move.
        assert_eq!(
            session_id_last(&describe(db)),
            session_id_last(&expected),
            "schema after {} {revision} differs from fixtures/spec/{at_name}.txt",
            direction.as_str()
        );
    }
    assert_schema_at(db, graph, at);
    assert_eq!(
        versions(db),
        at.map(|a| vec![a.to_owned()]).unwrap_or_default(),
        "alembic_version after {} {revision}",
        direction.as_str()
    );
    let history = history(db);
    assert_eq!(history.len(), history_len, "one history row per step");
    let last = history.last().unwrap();
    assert_eq!(last.revision, revision);
    assert_eq!(last.direction, direction.as_str());
    assert_eq!(last.outcome, "applied");
    assert_eq!(last.error, None);
    assert_eq!(last.ran_by, "test@test");
    assert_eq!(last.tool_version, "0");
    assert!(
        is_sha256_hex(&last.checksum),
        "checksum {:?} is not 64 lowercase hex digits",
        last.checksum
    );
}

/// The spec's fixture for `base` and the two legacy revisions; later revisions have none.
fn spec_fixture(at: &str) -> Option<String> {
    ["base", "974799e38366", "68d314520251"]
        .contains(&at)
        .then(|| fixture(at))
}

#[test]
fn identity_revisions_step_up_down_and_up_again_matching_the_spec_fixtures() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    let ids: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids[..2], ["974799e38366", "68d314520251"]);
    let mut engine = engine(&db, &graph);
    assert_eq!(describe(&db), fixture("base"));

    let mut rows = 0;
    // Up, one revision at a time.
    for id in &ids {
        let reports = run(&mut engine, &up("+1")).unwrap();
        rows += 1;
        assert_step(&db, &graph, &reports, id, Direction::Up, Some(id), rows);
    }
    assert!(engine.status().unwrap().at_head);
    // Down, one revision at a time, back to base.
    for (i, id) in ids.iter().enumerate().rev() {
        let reports = run(&mut engine, &down("-1")).unwrap();
        rows += 1;
        let below = i.checked_sub(1).map(|p| ids[p].as_str());
        assert_step(&db, &graph, &reports, id, Direction::Down, below, rows);
    }
    let status = engine.status().unwrap();
    assert!(status.current.is_empty());
    assert_eq!(status.pending, ids.len());
    // Up again, all the way.
    let (result, events) = run_collecting(&mut engine, &up("head"));
    let reports = result.unwrap();
    assert_eq!(report_ids(&reports), ids);
    // Events come as they happen: the plan, then each step's start and end.
    // (A backfill's progress reports aside: fbcbc6afff27 has one.)
    let events: Vec<String> = events
        .iter()
        .filter(|e| !matches!(e, Event::BatchProgress { .. }))
        .map(|e| match e {
            Event::Planned { steps } => format!("planned {}", step_ids(steps).join(",")),
            Event::StepStarted(s) => format!("started {}", s.revision),
            Event::StepFinished(r) => format!("finished {}", r.step.revision),
            Event::Retrying { step, .. } => format!("retrying {}", step.revision),
            Event::Accepted(ids) => format!("accepted {}", ids.join(",")),
            Event::BatchProgress { step, .. } => format!("batches {}", step.revision),
        })
        .collect();
    let mut expected = vec![format!("planned {}", ids.join(","))];
    for id in &ids {
        expected.push(format!("started {id}"));
        expected.push(format!("finished {id}"));
    }
    assert_eq!(events, expected);
    let head = ids.last().unwrap();
    assert_schema_at(&db, &graph, Some(head));
    assert_eq!(versions(&db), [head.as_str()]);
    let history = history(&db);
    assert_eq!(history.len(), rows + ids.len());
    let directions: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.revision.as_str(), h.direction.as_str()))
        .collect();
    let mut expected: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "up")).collect();
    expected.extend(ids.iter().rev().map(|id| (id.as_str(), "down")));
    expected.extend(ids.iter().map(|id| (id.as_str(), "up")));
    assert_eq!(directions, expected);
    assert!(history.iter().all(|h| h.outcome == "applied"));
    // The same revision is recorded with the same checksum every time.
    for h in &history {
        let first = history.iter().find(|f| f.revision == h.revision).unwrap();
        assert_eq!(h.checksum, first.checksum);
    }
    // The engine's own reading of the history agrees with the table.
    assert_eq!(engine.history().unwrap().len(), history.len());
    assert!(engine.changed_revisions().unwrap().is_empty());
    // At head, one more `+1` has nowhere to go and changes nothing.
    let before = snapshot(&db);
    assert!(run(&mut engine, &up("+1")).is_err());
    assert_eq!(snapshot(&db), before);
}

#[test]
fn identity_rollback_to_base_and_back_keeps_user_rows() {
    // Rows written at 974799e38366 survive head and a rollback to 974799e38366 again (the
    // original lost them: spec defects 2 and 3).
    let db = TestDb::new();
    let graph = identity_schema::graph();
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up("974799e38366")).unwrap();
    exec(
        &db,
        "INSERT INTO users_simple (id, email, password_hash, status, language, created_at) VALUES \
           ('00000000-0000-0000-0000-000000000001', 'a@x.io', 'h1', 'active', 'fr', '2024-01-02 03:04:05'), \
           ('00000000-0000-0000-0000-000000000002', 'b@x.io', 'h2', NULL, NULL, NULL); \
         INSERT INTO email_verifications_simple (id, user_id, email, token_hash, expires_at) VALUES \
           ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-000000000001', 'a@x.io', 't1', '2030-01-01');",
    );
    let users_before = texts(
        &db,
        "SELECT id || ' ' || email || ' ' || password_hash FROM users_simple ORDER BY id",
    );
    run(&mut engine, &up("head")).unwrap();
    assert_eq!(
        texts(
            &db,
            "SELECT id || ' ' || email || ' ' || password_hash FROM users ORDER BY id"
        ),
        users_before
    );
    run(&mut engine, &down("974799e38366")).unwrap();
    assert_eq!(describe(&db), fixture("974799e38366"));
    assert_eq!(
        texts(
            &db,
            "SELECT id || ' ' || email || ' ' || password_hash FROM users_simple ORDER BY id"
        ),
        users_before
    );
    assert_eq!(
        texts(
            &db,
            "SELECT token_hash FROM email_verifications_simple ORDER BY id"
        ),
        ["t1"]
    );
    // The verification refers to a user, so rolling back to base must drop in order.
    run(&mut engine, &down("base")).unwrap();
    assert_eq!(describe(&db), fixture("base"));
    assert!(versions(&db).is_empty());
}

/// `describe` text with `user_activity_logs.session_id` moved last: where it stays once
/// `fbcbc6afff27` changed its type online and back. Nothing else may move.
fn session_id_last(described: &str) -> String {
    migrate_testkit::with_column_last(described, "user_activity_logs", "session_id")
}

//! `script()` (dry-run, generate-sql) says exactly what `run` then executes, from the database's
//! real state, and changes nothing. Also: single-transaction mode.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::{Index, Op, Revision, RevisionGraph, TableName};
use migrate_engine::{Engine, EngineError, Intent, Options, Script};
use migrate_testkit::TestDb;

/// Asks for the script, checks it changed nothing, runs the intent through a recording driver,
/// and checks that the run executed exactly the script.
fn assert_script_is_what_runs(db: &TestDb, graph: &RevisionGraph, intent: &Intent) -> Script {
    let mut dry = engine(db, graph);
    let before = snapshot(db);
    let script = dry.script(intent).unwrap();
    assert_eq!(snapshot(db), before, "script() changed the database");
    assert!(!script.single_transaction);
    drop(dry);

    assert_run_executes(Box::new(driver(db)), graph, intent, &script);
    script
}

#[test]
fn script_on_a_fresh_database_leaves_no_version_or_history_table() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    let mut engine = engine(&db, &graph);
    for intent in [up("head"), up("+1"), up("974799e38366"), down("base")] {
        engine.script(&intent).unwrap();
    }
    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT to_regclass('public.alembic_version') IS NULL, \
             to_regclass('public.identity_migrate_history') IS NULL, \
             (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'public')",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "alembic_version was created");
    assert!(row.get::<_, bool>(1), "the history table was created");
    assert_eq!(row.get::<_, i64>(2), 0, "script() created relations");
}

#[test]
fn script_from_974799e38366_starts_from_the_real_revision_and_is_what_the_run_executes() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    run(&mut engine(&db, &graph), &up("974799e38366")).unwrap();
    let script = assert_script_is_what_runs(&db, &graph, &up("head"));
    assert!(script.bootstrap.is_empty(), "the tool's tables exist");
    // Every revision after the recorded one, and only those.
    let ids = revision_ids(&graph);
    assert_eq!(
        script
            .steps
            .iter()
            .map(|s| s.step.revision.as_str())
            .collect::<Vec<_>>(),
        ids[1..]
    );
    assert_eq!(script.steps[0].step.heads_before, heads(&["974799e38366"]));
    // Nothing of the first revision is rendered again (the original printed SQL from base).
    assert!(!script
        .steps
        .iter()
        .flat_map(|s| &s.statements)
        .any(|s| s.starts_with("CREATE TABLE users_simple")));
    assert_schema_at(&db, &graph, Some(&head_of(&graph)));
}

#[test]
fn script_of_a_rollback_to_base_from_head_is_what_the_run_executes() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    run(&mut engine(&db, &graph), &up("head")).unwrap();
    let script = assert_script_is_what_runs(&db, &graph, &down("base"));
    assert!(script.bootstrap.is_empty());
    let steps: Vec<(String, migrate_core::Direction)> = script
        .steps
        .iter()
        .map(|s| (s.step.revision.clone(), s.step.direction))
        .collect();
    // Every revision, newest first.
    let expected: Vec<(String, migrate_core::Direction)> = revision_ids(&graph)
        .into_iter()
        .rev()
        .map(|id| (id, migrate_core::Direction::Down))
        .collect();
    assert_eq!(steps, expected);
    assert_eq!(describe(&db), fixture("base"));
    // Nothing left in any schema either (the `legacy` schema included).
    assert_schema_at(&db, &graph, None);
    assert!(versions(&db).is_empty());
}

#[test]
fn script_at_head_has_no_steps() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    run(&mut engine(&db, &graph), &up("head")).unwrap();
    let script = assert_script_is_what_runs(&db, &graph, &up("head"));
    assert!(script.bootstrap.is_empty() && script.steps.is_empty());
}

fn single_transaction() -> Options {
    let mut o = options();
    o.single_transaction = true;
    o
}

/// a, b, then c followed by a division by zero when `fail`.
fn three(fail: bool) -> RevisionGraph {
    let mut last = table_revision("c3000000000c", &["c2000000000b"], "c");
    if fail {
        last.upgrade.push(sql("SELECT 1/0"));
    }
    graph(vec![
        table_revision("c1000000000a", &[], "a"),
        table_revision("c2000000000b", &["c1000000000a"], "b"),
        last,
    ])
}

#[test]
fn single_transaction_mode_rolls_everything_back_when_the_last_step_fails() {
    let db = TestDb::new();
    let graph = three(true);
    let mut engine = engine_with(&db, &graph, single_transaction());
    let script = engine.script(&up("head")).unwrap();
    assert!(script.single_transaction);
    let result = run(&mut engine, &up("head"));
    match &result {
        Err(EngineError::StepFailed(f)) => {
            assert_eq!(f.step.revision, "c3000000000c");
            // The index is the failing statement's place in its own step.
            assert_eq!(f.statement, Some((1, "SELECT 1/0".to_owned())));
            assert!(f.completed.is_empty(), "nothing of the run is kept");
        }
        other => panic!("expected StepFailed, got {other:?}"),
    }
    for t in ["a", "b", "c"] {
        assert!(!relation_exists(&db, t), "table {t} was kept");
    }
    assert!(versions(&db).is_empty());
    let history = history(&db);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].revision.as_str(), history[0].outcome.as_str()),
        ("c3000000000c", "failed")
    );
}

#[test]
fn single_transaction_mode_applies_every_step_when_all_succeed() {
    let db = TestDb::new();
    let graph = three(false);
    let script = {
        let mut e = engine_with(&db, &graph, single_transaction());
        e.script(&up("head")).unwrap()
    };
    let (recording, log) = Recording::new(Box::new(driver(&db)));
    let mut engine = Engine::new(Box::new(recording), &graph, single_transaction());
    let reports = run(&mut engine, &up("head")).unwrap();
    assert_eq!(
        report_ids(&reports),
        ["c1000000000a", "c2000000000b", "c3000000000c"]
    );
    assert_eq!(*log.lock().unwrap(), script_statements(&script));
    assert!(["a", "b", "c"].iter().all(|t| relation_exists(&db, t)));
    assert_eq!(versions(&db), ["c3000000000c"]);
    let history = history(&db);
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|h| h.outcome == "applied"));
}

#[test]
fn single_transaction_mode_refuses_a_revision_that_cannot_run_in_a_transaction() {
    let db = TestDb::new();
    let graph = graph(vec![
        table_revision("d1000000000a", &[], "a"),
        Revision::new("d2000000000b", &["d1000000000a"], "concurrent index").upgrade(vec![
            Op::CreateIndex {
                table: TableName::new("a"),
                index: Index::new("ix_a_id", &["id"]),
                concurrently: true,
            },
        ]),
    ]);
    let mut engine = engine_with(&db, &graph, single_transaction());
    let result = run(&mut engine, &up("head"));
    assert!(
        matches!(&result, Err(EngineError::NotTransactional(id)) if id == "d2000000000b"),
        "{result:?}"
    );
    assert!(!relation_exists(&db, "a"));
    assert!(versions(&db).is_empty());
    // Without the option, it runs (the index outside a transaction).
    let reports = run(&mut common::engine(&db, &graph), &up("head")).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(relation_exists(&db, "ix_a_id"));
}

#[test]
fn single_transaction_failure_says_the_database_stays_where_the_run_started() {
    let db = TestDb::new();
    let graph = three(true);
    let mut engine = engine_with(&db, &graph, single_transaction());
    let message = run(&mut engine, &up("head")).unwrap_err().to_string();
    assert!(versions(&db).is_empty());
    assert!(message.contains("stays at base"), "{message}");
}

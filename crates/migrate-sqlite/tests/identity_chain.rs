//! The identity revisions on a real SQLite file, through the engine, one step at a time: after
//! every step the live schema, introspected, equals the canonical form of `schema_at` there.
//!
//! The one PostgreSQL-only expression of the chain, the country-code CHECK (a regular
//! expression), carries its SQLite spelling in the model; it is checked to hold here.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::Driver;
use migrate_core::{Direction, RevisionGraph};

fn ids(graph: &RevisionGraph) -> Vec<String> {
    graph.revisions().iter().map(|r| r.id.clone()).collect()
}

/// Steps up one revision at a time through `ids`, then down to base, checking each step.
fn step_up_and_down(file: &TestFile, graph: &RevisionGraph, ids: &[String]) {
    let mut engine = engine(file, graph);
    assert_live_matches(file, graph, "base");
    let mut history = 0;
    for id in ids {
        let reports = run(&mut engine, &up("+1")).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(&reports[0].step.revision, id);
        history += 1;
        assert_step(file, graph, id, Direction::Up, Some(id), history);
    }
    for (i, id) in ids.iter().enumerate().rev() {
        let reports = run(&mut engine, &down("-1")).unwrap();
        assert_eq!(&reports[0].step.revision, id);
        history += 1;
        let below = i.checked_sub(1).map(|p| ids[p].as_str());
        assert_step(file, graph, id, Direction::Down, below, history);
    }
    assert!(engine.status().unwrap().current.is_empty());
    // Base again: no table of the identity schema is left, only the tool's own.
    let conn = file.conn();
    assert_eq!(
        texts(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ),
        ["alembic_version", "identity_migrate_history"]
    );
}

fn assert_step(
    file: &TestFile,
    graph: &RevisionGraph,
    revision: &str,
    direction: Direction,
    at: Option<&str>,
    history_len: usize,
) {
    let name = at.unwrap_or("base");
    assert_live_matches(file, graph, name);
    let mut driver = file.driver();
    let heads: Vec<String> = driver.read_heads().unwrap().into_iter().collect();
    assert_eq!(heads, at.map(|a| vec![a.to_owned()]).unwrap_or_default());
    let history = driver.read_history().unwrap();
    assert_eq!(history.len(), history_len, "one history row per step");
    let last = history.last().unwrap();
    assert_eq!(last.revision, revision);
    assert_eq!(last.direction, direction);
    assert_eq!(last.outcome, "applied");
    assert_eq!(last.ran_by, "test@test");
    assert_eq!(last.checksum.len(), 64);
    assert!(last.duration_ms >= 0.0, "{}", last.duration_ms);
    assert!(
        last.finished_at.ends_with('Z') && last.finished_at.contains('T'),
        "{}",
        last.finished_at
    );
}

#[test]
fn the_whole_identity_chain_steps_up_and_down_on_sqlite() {
    let file = TestFile::new();
    let graph = identity_schema::graph();
    let all = ids(&graph);
    step_up_and_down(&file, &graph, &all);

    // At head, the updated_at triggers and the legacy tables read back as the model has them,
    // the leftovers under names that read as table names (no dot, no schema).
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up("head")).unwrap();
    assert_live_matches(&file, &graph, "head");
    let live = file.driver().introspect().unwrap();
    assert!(live.schemas.is_empty());
    let names = texts(
        &file.conn(),
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'legacy%' ORDER BY name",
    );
    assert_eq!(
        names,
        [
            "legacy_user_activities_simple",
            "legacy_user_sessions_simple"
        ]
    );
    let users = &live.tables[&migrate_core::TableName::new("users")];
    assert_eq!(
        users.triggers["set_updated_at"].function,
        migrate_core::TableName::new("set_updated_at")
    );
    // The model's own trigger function reads back unchanged (see the introspect module).
    let expected = expected_at(&graph, &file.driver().read_heads().unwrap());
    assert_eq!(live.functions, expected.functions);

    // The trigger stamps updated_at on SQLite as on PostgreSQL.
    let conn = file.conn();
    conn.execute_batch(
        "INSERT INTO organizations (id, name, slug, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'Acme', 'acme', '2000-01-01 00:00:00')",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch("UPDATE organizations SET name = 'Acme Inc'")
        .unwrap();
    let stamped = texts(&conn, "SELECT updated_at FROM organizations");
    assert_ne!(stamped, ["2000-01-01 00:00:00"]);

    // The country code is two capital letters on SQLite too (GLOB, case-sensitive, whole value).
    for (code, accepted) in [
        ("US", true),
        ("us", false),
        ("USA", false),
        ("U", false),
        ("U1", false),
    ] {
        let result = conn.execute(
            "UPDATE organizations SET country_code = ?1",
            rusqlite::params![code],
        );
        assert_eq!(result.is_ok(), accepted, "{code}: {result:?}");
        if let Err(e) = result {
            assert!(
                e.to_string().contains("organizations_country_code_check"),
                "{e}"
            );
        }
    }
}

//! The identity revisions on a real SQLite file at head: what only SQLite reads back its own
//! way (triggers, legacy names, the country-code GLOB). The chain step by step, against
//! `schema_at`, runs on both databases in `crates/migrate-engine/tests/scenarios.rs`.
//!
//! The one PostgreSQL-only expression of the chain, the country-code CHECK (a regular
//! expression), carries its SQLite spelling in the model; it is checked to hold here.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::Driver;

#[test]
fn the_identity_chain_at_head_reads_back_as_the_model_has_it_on_sqlite() {
    let file = TestFile::new();
    let graph = identity_schema::graph();

    // At head, the updated_at triggers and the legacy tables read back as the model has them,
    // the leftovers under names that read as table names (no dot, no schema).
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up("head")).unwrap();
    assert_live_matches(&mut file.driver(), &graph, "head");
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

//! The identity revisions against the core's model: they form a graph, fold without error in both
//! directions, undo exactly what they do, and render to the PostgreSQL reviewed in the snapshots.

use identity_schema::{graph, revisions};
use migrate_core::op::apply_all;
use migrate_core::render::{render_ops, schema_at};
use migrate_core::revision::is_canonical_id;
use migrate_core::{Dialect, Direction, Op, Revision, Schema, TableName};
use std::collections::BTreeSet;

const SIMPLIFIED: &str = "974799e38366";
const ENHANCED: &str = "68d314520251";

/// The series after the original's head, in order.
const ALIGN: &str = "3ffba08b0d3f";
const SESSION_ID: &str = "fbcbc6afff27";
const CHECKS: &str = "094916cde150";
const VALIDATE: &str = "ea2415e1242d";
const UPDATED_AT: &str = "f0c623fbdcf5";
const LEGACY: &str = "411d3d954d7f";
const INDEXES: &str = "f971d04cfdc7";
const SERIES: [&str; 7] = [
    ALIGN, SESSION_ID, CHECKS, VALIDATE, UPDATED_AT, LEGACY, INDEXES,
];

/// The ten tables of `68d314520251`, in foreign-key order.
const ENHANCED_TABLES: [&str; 10] = identity_schema::TABLES;

fn revision(id: &str) -> Revision {
    revisions()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("revision {id} is registered"))
}

/// The schema with `ids` applied, through the core's own fold.
fn schema_with(ids: &[&str]) -> Schema {
    let applied: BTreeSet<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    schema_at(&graph(), &applied).unwrap_or_else(|e| panic!("fold up to {ids:?}: {e}"))
}

/// The schema before `id`: every revision listed before it applied (the history is linear).
fn schema_before(id: &str) -> Schema {
    let all = revisions();
    let earlier: Vec<&str> = all
        .iter()
        .take_while(|r| r.id != id)
        .map(|r| r.id.as_str())
        .collect();
    schema_with(&earlier)
}

fn has_table(schema: &Schema, name: &str) -> bool {
    schema.table(&TableName::new(name)).is_some()
}

#[test]
fn the_revisions_form_one_linear_graph() {
    let graph = graph();
    let ids: Vec<&str> = graph.revisions().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [&[SIMPLIFIED, ENHANCED][..], &SERIES[..]].concat());
    assert_eq!(graph.roots(), [SIMPLIFIED]);
    assert_eq!(graph.heads(), [INDEXES]);
    // Linear: each revision follows the one listed before it.
    for pair in graph.revisions().windows(2) {
        assert_eq!(pair[1].down, [pair[0].id.clone()], "{} follows", pair[1].id);
    }
}

#[test]
fn the_series_is_dated_and_described() {
    for id in SERIES {
        let r = revision(id);
        assert_eq!(r.created, "2026-12-03", "{id}");
        assert!(!r.message.is_empty(), "{id} has a message");
    }
}

#[test]
fn only_the_last_revision_runs_outside_a_transaction_and_every_statement_of_it_can_run_again() {
    for r in revisions() {
        let alone = r.id == INDEXES;
        for direction in [Direction::Up, Direction::Down] {
            assert_eq!(r.transactional(direction), !alone, "{} {direction:?}", r.id);
        }
    }
    // Run statement by statement, it is resumed by running it again from its start: so it
    // holds only concurrent index builds and drops (which drop a failed build first, or say IF
    // EXISTS) and checks that only read.
    let r = revision(INDEXES);
    for op in r.upgrade.iter().chain(&r.downgrade) {
        match op {
            Op::CreateIndex { concurrently, .. } | Op::DropIndex { concurrently, .. } => {
                assert!(concurrently, "{op:?}")
            }
            Op::Sql(raw) => {
                let sql = raw.postgres.as_deref().unwrap_or_default();
                assert!(sql.starts_with("DO $check$"), "{sql}");
                assert!(raw.sqlite.is_none());
            }
            other => panic!("{INDEXES} holds {other:?}"),
        }
    }
}

#[test]
fn ids_messages_and_down_revisions_are_the_originals() {
    let simplified = revision(SIMPLIFIED);
    assert!(simplified.down.is_empty());
    assert_eq!(simplified.message, "Initial simplified schema");

    let enhanced = revision(ENHANCED);
    assert_eq!(enhanced.down, [SIMPLIFIED]);
    assert_eq!(enhanced.message, "Initial enhanced models migration");

    for r in revisions() {
        assert!(
            is_canonical_id(&r.id),
            "{} is 12 lowercase hex digits",
            r.id
        );
        assert!(!r.created.is_empty(), "{} has a creation date", r.id);
    }
}

#[test]
fn both_revisions_fold_up_from_base() {
    let head = schema_with(&[SIMPLIFIED, ENHANCED]);
    // Defect 1: the UNIQUE constraint's index and the `ix_` index are two relations, each
    // created once (the fold refuses a second relation of the same name).
    let organizations = head
        .table(&TableName::new("organizations"))
        .expect("organizations exists at head");
    assert!(organizations
        .constraints
        .contains_key("organizations_slug_key"));
    assert!(organizations.indexes["ix_organizations_slug"].unique);
}

#[test]
fn each_downgrade_restores_exactly_the_schema_before_its_upgrade() {
    for r in revisions() {
        let before = schema_before(&r.id);
        let mut schema = before.clone();
        apply_all(&mut schema, &r.upgrade)
            .unwrap_or_else(|(op, e)| panic!("{} upgrade op #{op}: {e}", r.id));
        assert_ne!(schema, before, "{} changes the schema", r.id);
        apply_all(&mut schema, &r.downgrade)
            .unwrap_or_else(|(op, e)| panic!("{} downgrade op #{op}: {e}", r.id));
        let mut expected = before.clone();
        if r.id == "fbcbc6afff27" {
            // Its online type change takes the column out and adds it back last, both ways.
            let logs = expected
                .tables
                .get_mut(&TableName::new("user_activity_logs"))
                .expect("user_activity_logs exists");
            let at = logs
                .columns
                .iter()
                .position(|c| c.name == "session_id")
                .expect("session_id exists");
            let column = logs.columns.remove(at);
            logs.columns.push(column);
        }
        assert_eq!(schema, expected, "{} down undoes {} up", r.id, r.id);
    }
}

#[test]
fn rolling_back_to_base_leaves_no_table() {
    let all = revisions();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    let mut schema = schema_with(&ids);
    for r in revisions().iter().rev() {
        apply_all(&mut schema, &r.downgrade)
            .unwrap_or_else(|(op, e)| panic!("{} downgrade op #{op}: {e}", r.id));
    }
    assert_eq!(schema, Schema::new());
}

#[test]
fn head_has_the_ten_tables_and_the_two_leftover_simplified_ones() {
    let head = schema_with(&[SIMPLIFIED, ENHANCED]);
    for table in ENHANCED_TABLES {
        assert!(has_table(&head, table), "{table} exists at head");
    }
    // Defect 2 is kept for now: a later revision moves these two out of the way.
    for table in ["user_activities_simple", "user_sessions_simple"] {
        assert!(has_table(&head, table), "{table} is still there at head");
    }
    for table in ["users_simple", "email_verifications_simple"] {
        assert!(!has_table(&head, table), "{table} is gone at head");
    }
    assert_eq!(head.tables.len(), ENHANCED_TABLES.len() + 2);
}

#[test]
fn the_enhanced_tables_are_created_in_foreign_key_order_and_dropped_in_reverse() {
    let r = revision(ENHANCED);
    let created: Vec<&str> = r
        .upgrade
        .iter()
        .filter_map(|op| match op {
            migrate_core::Op::CreateTable(t) => Some(t.name.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(created, ENHANCED_TABLES);

    let dropped: Vec<&str> = r
        .downgrade
        .iter()
        .filter_map(|op| match op {
            migrate_core::Op::DropTable { table } => Some(table.name.as_str()),
            _ => None,
        })
        .collect();
    let mut reversed = ENHANCED_TABLES;
    reversed.reverse();
    assert_eq!(dropped, reversed);
}

#[test]
fn no_column_has_a_server_default_in_either_revision() {
    // Spec defect 4: the originals had none; a later revision adds them.
    for schema in [
        schema_with(&[SIMPLIFIED]),
        schema_with(&[SIMPLIFIED, ENHANCED]),
    ] {
        for table in schema.tables.values() {
            for column in &table.columns {
                assert_eq!(column.default, None, "{}.{}", table.name, column.name);
            }
        }
    }
}

/// The PostgreSQL statements of one direction of a revision, as one reviewable script.
fn postgres_script(id: &str, direction: Direction) -> String {
    let r = revision(id);
    let mut schema = schema_before(id);
    if direction == Direction::Down {
        apply_all(&mut schema, &r.upgrade).unwrap_or_else(|(op, e)| panic!("{id} op #{op}: {e}"));
    }
    let statements = render_ops(
        id,
        direction,
        r.ops(direction),
        &mut schema,
        Dialect::Postgres,
    )
    .unwrap_or_else(|e| panic!("render {id}: {e}"));
    statements
        .iter()
        .map(|s| s.sql.as_str())
        .collect::<Vec<_>>()
        .join(";\n\n")
}

#[test]
fn postgres_974799e38366_upgrade() {
    insta::assert_snapshot!(postgres_script(SIMPLIFIED, Direction::Up));
}

#[test]
fn postgres_974799e38366_downgrade() {
    insta::assert_snapshot!(postgres_script(SIMPLIFIED, Direction::Down));
}

#[test]
fn postgres_68d314520251_upgrade() {
    insta::assert_snapshot!(postgres_script(ENHANCED, Direction::Up));
}

#[test]
fn postgres_68d314520251_downgrade() {
    insta::assert_snapshot!(postgres_script(ENHANCED, Direction::Down));
}

// The series after the original's head, one snapshot per direction of each revision.

#[test]
fn postgres_3ffba08b0d3f_upgrade() {
    insta::assert_snapshot!(postgres_script(ALIGN, Direction::Up));
}

#[test]
fn postgres_3ffba08b0d3f_downgrade() {
    insta::assert_snapshot!(postgres_script(ALIGN, Direction::Down));
}

#[test]
fn postgres_fbcbc6afff27_upgrade() {
    insta::assert_snapshot!(postgres_script(SESSION_ID, Direction::Up));
}

#[test]
fn postgres_fbcbc6afff27_downgrade() {
    insta::assert_snapshot!(postgres_script(SESSION_ID, Direction::Down));
}

#[test]
fn postgres_094916cde150_upgrade() {
    insta::assert_snapshot!(postgres_script(CHECKS, Direction::Up));
}

#[test]
fn postgres_094916cde150_downgrade() {
    insta::assert_snapshot!(postgres_script(CHECKS, Direction::Down));
}

#[test]
fn postgres_ea2415e1242d_upgrade() {
    insta::assert_snapshot!(postgres_script(VALIDATE, Direction::Up));
}

#[test]
fn postgres_ea2415e1242d_downgrade() {
    insta::assert_snapshot!(postgres_script(VALIDATE, Direction::Down));
}

#[test]
fn postgres_f0c623fbdcf5_upgrade() {
    insta::assert_snapshot!(postgres_script(UPDATED_AT, Direction::Up));
}

#[test]
fn postgres_f0c623fbdcf5_downgrade() {
    insta::assert_snapshot!(postgres_script(UPDATED_AT, Direction::Down));
}

#[test]
fn postgres_411d3d954d7f_upgrade() {
    insta::assert_snapshot!(postgres_script(LEGACY, Direction::Up));
}

#[test]
fn postgres_411d3d954d7f_downgrade() {
    insta::assert_snapshot!(postgres_script(LEGACY, Direction::Down));
}

#[test]
fn postgres_f971d04cfdc7_upgrade() {
    insta::assert_snapshot!(postgres_script(INDEXES, Direction::Up));
}

#[test]
fn postgres_f971d04cfdc7_downgrade() {
    insta::assert_snapshot!(postgres_script(INDEXES, Direction::Down));
}

/// The checksums recorded in databases already migrated: a change to the renderer that changed
/// one would make every such database report the revision as edited.
#[test]
fn checksums_are_stable() {
    let sums = migrate_core::checksum::checksums(&graph()).expect("every revision renders");
    let mut lines: Vec<String> = sums.iter().map(|(id, sum)| format!("{id} {sum}")).collect();
    lines.sort();
    insta::assert_snapshot!(lines.join("\n"));
}

//! The identity service's revisions, one module each, named `r<id>_<message>`: the first two
//! after the Alembic files they replace, the series that follows after what it does.
//! `checks` holds the data checks that revisions run before changing anything; [`withdrawn`]
//! the series that 0.1.0 released after `68d314520251`, kept only to take a database that ran
//! it back there.
//!
//! Each module exposes `revision()`. [`all`] lists them oldest first; that list is the one
//! place a new revision is registered.
//!
//! The helpers below keep the revision files close to the spec's layout (one table, then its
//! indexes) without repeating `TableName` conversions in every op.

mod checks;
pub mod r094916cde150_check_constraints_not_valid;
pub mod r3ffba08b0d3f_align_with_the_service_models;
pub mod r411d3d954d7f_legacy_table_names;
pub mod r68d314520251_initial_enhanced_models;
pub mod r974799e38366_initial_simplified_schema;
pub mod rea2415e1242d_validate_check_constraints;
pub mod rf0c623fbdcf5_updated_at_trigger;
pub mod rf971d04cfdc7_indexes_concurrently;
pub mod rfbcbc6afff27_activity_session_id_uuid;
pub mod withdrawn;
// identity-migrate revision: new modules go above this line

use migrate_core::{ColumnType, Constraint, ConstraintKind, Index, Op, RawSql, Revision, Table};

/// Every revision, oldest first.
pub fn all() -> Vec<Revision> {
    vec![
        r974799e38366_initial_simplified_schema::revision(),
        r68d314520251_initial_enhanced_models::revision(),
        // This project's own work: the service's models, then hardening it cannot notice.
        r3ffba08b0d3f_align_with_the_service_models::revision(),
        rfbcbc6afff27_activity_session_id_uuid::revision(),
        r094916cde150_check_constraints_not_valid::revision(),
        rea2415e1242d_validate_check_constraints::revision(),
        rf0c623fbdcf5_updated_at_trigger::revision(),
        r411d3d954d7f_legacy_table_names::revision(),
        rf971d04cfdc7_indexes_concurrently::revision(),
        // identity-migrate revision: new revisions go above this line
    ]
}

/// The chain as identity-migrate 0.1.0 released it: the two original revisions, then the
/// [`withdrawn`] series.
pub fn released_in_0_1() -> Vec<Revision> {
    let mut chain = vec![
        r974799e38366_initial_simplified_schema::revision(),
        r68d314520251_initial_enhanced_models::revision(),
    ];
    chain.extend(withdrawn::all());
    chain
}

/// `varchar(len)`, short enough that a column definition stays on one line like the spec's row.
fn varchar(len: u32) -> ColumnType {
    ColumnType::varchar(len)
}

/// Creates `table` (columns and constraints), then each of `indexes` with its own op.
///
/// The indexes are separate ops because that is how the core renders them; listing them next to
/// the table keeps a table and its `ix_...` indexes together, as the spec lists them.
fn create_table(table: Table, indexes: Vec<Index>) -> Vec<Op> {
    let name = table.name.clone();
    let mut ops = vec![Op::CreateTable(table)];
    ops.extend(indexes.into_iter().map(|index| Op::CreateIndex {
        table: name.clone(),
        index,
        concurrently: false,
    }));
    ops
}

/// Drops a table; its indexes and constraints go with it.
fn drop_table(table: &str) -> Op {
    Op::DropTable {
        table: table.into(),
    }
}

/// Adds a named constraint, checking existing rows (a failure aborts the revision's transaction).
fn add_constraint(table: &str, name: &str, kind: ConstraintKind) -> Op {
    Op::AddConstraint {
        table: table.into(),
        constraint: Constraint {
            name: name.to_owned(),
            kind,
        },
        not_valid: false,
    }
}

/// Drops a named constraint.
fn drop_constraint(table: &str, name: &str) -> Op {
    Op::DropConstraint {
        table: table.into(),
        name: name.to_owned(),
    }
}

/// A data copy that PostgreSQL and SQLite run as the same SQL text.
///
/// One body for both keeps the dialects from drifting apart; it is written to be portable
/// (`CURRENT_TIMESTAMP`, which is `now()` on PostgreSQL; `true`/`false`; plain `'{}'` literals,
/// which PostgreSQL casts to `json` on insert).
fn copy_rows(description: &str, sql: &str) -> Op {
    Op::Sql(RawSql {
        description: description.to_owned(),
        postgres: Some(sql.to_owned()),
        sqlite: Some(sql.to_owned()),
    })
}

//! Safe forms: the ops that do what a blocking op does without holding a lock that blocks the
//! service while the database works (lint's help names them).
//!
//! | blocking op | safe form |
//! |---|---|
//! | `AddConstraint` CHECK or foreign key | the same `NOT VALID`, then `ValidateConstraint` (its own transaction, a lock that blocks neither reads nor writes) |
//! | `AddConstraint` primary key or unique | a unique index built `concurrently`, then `AddConstraintUsingIndex` |
//! | `AlterColumn` to NOT NULL | a `CHECK (col IS NOT NULL) NOT VALID`, validated, then `SET NOT NULL` (no scan from PostgreSQL 12: the CHECK proves it), then the CHECK dropped |
//! | `AlterColumn` type change that rewrites | `AlterColumnTypeOnline` |
//! | `CreateIndex`, `DropIndex` | the same with `concurrently` |
//! | an `UPDATE` of a whole table | `Backfill` |

use crate::op::Op;
use crate::render::postgres::helper_name;
use crate::schema::{Constraint, ConstraintKind, Index, TableName};

/// Adds `constraint` to the existing `table` without blocking it: a CHECK or foreign key `NOT
/// VALID` then validated; a primary key or unique constraint over a unique index built
/// concurrently (named as the constraint), which it then takes over.
pub fn add_constraint(table: impl Into<TableName>, constraint: Constraint) -> Vec<Op> {
    let table = table.into();
    match &constraint.kind {
        ConstraintKind::PrimaryKey { columns } | ConstraintKind::Unique { columns } => {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            vec![
                Op::CreateIndex {
                    table: table.clone(),
                    index: Index::new(constraint.name.clone(), &columns).unique(),
                    concurrently: true,
                },
                Op::AddConstraintUsingIndex {
                    table,
                    name: constraint.name.clone(),
                    index: constraint.name.clone(),
                    primary_key: matches!(constraint.kind, ConstraintKind::PrimaryKey { .. }),
                },
            ]
        }
        ConstraintKind::Check { .. } | ConstraintKind::ForeignKey(_) => {
            let name = constraint.name.clone();
            vec![
                Op::AddConstraint {
                    table: table.clone(),
                    constraint,
                    not_valid: true,
                },
                Op::ValidateConstraint { table, name },
            ]
        }
    }
}

/// The name of the CHECK that [`set_not_null`] adds and drops.
pub fn not_null_check_name(column: &str) -> String {
    helper_name("_im_not_null_", column)
}

/// Makes `column` of the existing `table` NOT NULL without a scan under ACCESS EXCLUSIVE.
pub fn set_not_null(table: impl Into<TableName>, column: &str) -> Vec<Op> {
    let table = table.into();
    let check = not_null_check_name(column);
    let mut ops = add_constraint(
        table.clone(),
        Constraint {
            name: check.clone(),
            kind: ConstraintKind::Check {
                expr: format!("{} IS NOT NULL", crate::render::quote_ident(column)),
                sqlite: None,
            },
        },
    );
    ops.push(Op::AlterColumn {
        table: table.clone(),
        column: column.to_owned(),
        change: crate::op::ColumnChange {
            nullable: Some(false),
            ..Default::default()
        },
    });
    ops.push(Op::DropConstraint { table, name: check });
    ops
}

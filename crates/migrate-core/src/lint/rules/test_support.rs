//! What the rules' tests share: a schema with an existing `users` table, and the findings of
//! one rule for one op.

use crate::lint::{lint_op, Finding, LintContext, TableSize};
use crate::op::Op;
use crate::schema::{Column, ColumnType, Index, Schema, Table, TableName};

/// `users` (id, email, status, age) with an index on email, and `orgs` (id).
pub(crate) fn schema() -> Schema {
    let mut schema = Schema::new();
    for op in [
        Op::CreateTable(
            Table::new("orgs")
                .column(Column::new("id", ColumnType::Uuid).not_null())
                .primary_key("orgs_pkey", &["id"]),
        ),
        Op::CreateTable(
            Table::new("users")
                .column(Column::new("id", ColumnType::Uuid).not_null())
                .column(Column::new("email", ColumnType::varchar(255)))
                .column(Column::new("status", ColumnType::Text))
                .column(Column::new("org_id", ColumnType::Uuid))
                .column(Column::new("age", ColumnType::Integer))
                .primary_key("users_pkey", &["id"])
                .index(Index::new("ix_users_email", &["email"])),
        ),
    ] {
        op.apply(&mut schema).expect("the test schema applies");
    }
    schema
}

/// A PostgreSQL context that knows the size of `users`.
pub(crate) fn ctx() -> LintContext {
    let mut ctx = LintContext::postgres();
    ctx.sizes.insert(
        TableName::new("users"),
        TableSize {
            rows: 1_000_000,
            bytes: 610 * 1024 * 1024,
        },
    );
    ctx
}

/// The findings of rule `id` for `op` against [`schema`] in `ctx`.
pub(crate) fn lint_with(id: &str, op: &Op, ctx: &LintContext) -> Vec<Finding> {
    lint_op(op, &schema(), ctx)
        .into_iter()
        .filter(|f| f.rule == id)
        .collect()
}

/// The findings of rule `id` for `op` against [`schema`] in [`ctx`].
pub(crate) fn lint(id: &str, op: &Op) -> Vec<Finding> {
    lint_with(id, op, &ctx())
}

/// The findings as text, one after the other, for snapshots.
pub(crate) fn text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same context, with `users` created in the revision.
pub(crate) fn users_created() -> LintContext {
    let mut ctx = ctx();
    ctx.created.insert(TableName::new("users"));
    ctx
}

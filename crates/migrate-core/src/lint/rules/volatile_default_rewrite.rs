//! `volatile-default-rewrite`: `ADD COLUMN .. DEFAULT` with a default evaluated per row (or any
//! default before PostgreSQL 11) rewrites the table under ACCESS EXCLUSIVE.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::lock::{volatility, Volatility};
use crate::op::Op;
use crate::render::postgres::default_sql;

pub(super) const RULE: Rule = Rule {
    id: "volatile-default-rewrite",
    severity: Severity::Error,
    summary: "a column added with a default evaluated per row, which rewrites the table",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG302"],
        squawk: &["adding-field-with-default"],
        strong_migrations: &["add_column_default", "add_column_default_callable"],
        eugene: &["E10", "E11"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::AddColumn { table, column } = s.op else {
        return Vec::new();
    };
    let Some(default) = &column.default else {
        return Vec::new();
    };
    if !s.existed(table) || !s.profile.iter().any(|p| p.rewrites.contains(table)) {
        return Vec::new();
    }
    let why = match volatility(default) {
        _ if s.ctx.pg_major < 11 => "before PostgreSQL 11 every default is written into every row",
        Volatility::Unknown => "it calls a function the model does not know, which may be volatile",
        _ => "it is evaluated for every row",
    };
    vec![found(
        format!("{table}.{}", column.name),
        format!(
            "adds a column with the default {} ({why}): rewrites {} under ACCESS EXCLUSIVE; \
             every read and write of {table} waits until it is done",
            default_sql(default),
            s.sized(table)
        ),
        "add the column without a default (or with a constant one), then set the default \
         (new rows get it), then fill the existing rows with Op::Backfill",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, lint_with, text};
    use crate::op::{Backfill, Op};
    use crate::schema::{Column, ColumnType, DefaultExpr};

    fn add(default: DefaultExpr) -> Op {
        Op::AddColumn {
            table: "users".into(),
            column: Column::new("token", ColumnType::Uuid).default(default),
        }
    }

    #[test]
    fn fires_on_a_volatile_default() {
        let findings = lint("volatile-default-rewrite", &add(DefaultExpr::RandomUuid));
        insta::assert_snapshot!(text(&findings));
    }

    #[test]
    fn fires_on_an_unknown_function_and_on_any_default_before_11() {
        let unknown = add(DefaultExpr::Sql("make_token()".to_owned()));
        assert_eq!(lint("volatile-default-rewrite", &unknown).len(), 1);
        let mut old = ctx();
        old.pg_major = 10;
        let constant = add(DefaultExpr::Text("x".to_owned()));
        assert_eq!(
            lint_with("volatile-default-rewrite", &constant, &old).len(),
            1
        );
    }

    #[test]
    fn passes_constant_defaults_and_the_backfill_form() {
        for op in [
            add(DefaultExpr::Text("x".to_owned())),
            add(DefaultExpr::Now),
            Op::AddColumn {
                table: "users".into(),
                column: Column::new("token", ColumnType::Uuid),
            },
            Op::Backfill(Backfill::new("users", "token", "gen_random_uuid()")),
        ] {
            assert_eq!(lint("volatile-default-rewrite", &op), vec![], "{op:?}");
        }
    }
}

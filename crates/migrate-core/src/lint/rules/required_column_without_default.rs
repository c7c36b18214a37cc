//! `required-column-without-default`: a NOT NULL column without a default added to an existing
//! table fails as soon as the table has a row, and the running release's INSERTs, which do not
//! name it, fail after it.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "required-column-without-default",
    severity: Severity::Error,
    summary: "a NOT NULL column without a default added to an existing table",
    postgres_only: false,
    peers: Peers {
        atlas: &["MF103"],
        squawk: &["adding-required-field"],
        strong_migrations: &[],
        eugene: &[],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::AddColumn { table, column } = s.op else {
        return Vec::new();
    };
    if column.nullable || column.default.is_some() || !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        format!("{table}.{}", column.name),
        format!(
            "adds a NOT NULL column without a default: fails if {table} has any row, and once \
             added, every INSERT of the release still running (which does not name it) fails"
        ),
        "add it nullable or with a default, fill it (Op::Backfill), deploy the release that \
         writes it, then make it NOT NULL (migrate_core::safe::set_not_null)",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::lint::LintContext;
    use crate::op::Op;
    use crate::render::Dialect;
    use crate::schema::{Column, ColumnType, DefaultExpr};

    fn add(default: Option<DefaultExpr>) -> Op {
        let mut column = Column::new("tenant", ColumnType::Text).not_null();
        column.default = default;
        Op::AddColumn {
            table: "users".into(),
            column,
        }
    }

    #[test]
    fn fires_on_both_databases() {
        insta::assert_snapshot!(text(&lint("required-column-without-default", &add(None))));
        let sqlite = LintContext::for_dialect(Dialect::Sqlite);
        assert_eq!(
            lint_with("required-column-without-default", &add(None), &sqlite).len(),
            1
        );
    }

    #[test]
    fn passes_a_default_and_a_new_table() {
        let with_default = add(Some(DefaultExpr::Text("main".to_owned())));
        assert_eq!(
            lint("required-column-without-default", &with_default),
            vec![]
        );
        assert_eq!(
            lint_with(
                "required-column-without-default",
                &add(None),
                &users_created()
            ),
            vec![]
        );
    }
}

//! `set-not-null-scan`: `SET NOT NULL` reads the whole table under ACCESS EXCLUSIVE, unless a
//! validated `CHECK (col IS NOT NULL)` already proves it (PostgreSQL 12 and later). A primary
//! key taken over from an index sets NOT NULL on its nullable columns the same way.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "set-not-null-scan",
    severity: Severity::Error,
    summary:
        "SET NOT NULL without a validated CHECK proving it: a full scan under ACCESS EXCLUSIVE",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG303", "PG304", "MF104"],
        squawk: &["adding-not-nullable-field"],
        strong_migrations: &["change_column_null"],
        eugene: &["E2"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let (table, what) = match s.op {
        Op::AlterColumn {
            table,
            column,
            change,
        } if change.nullable == Some(false) => (table, format!("{table}.{column}")),
        Op::AddConstraintUsingIndex {
            table,
            name,
            primary_key: true,
            ..
        } => (table, format!("primary key {name} on {table}")),
        _ => return Vec::new(),
    };
    if !s.existed(table) || !s.profile.iter().any(|p| p.scans.contains(table)) {
        return Vec::new();
    }
    let help = if s.ctx.pg_major >= 12 {
        "add CHECK (col IS NOT NULL) NOT VALID, validate it (its own transaction, no blocking \
         lock), then SET NOT NULL, which the CHECK proves without a scan, then drop the CHECK: \
         migrate_core::safe::set_not_null writes these ops"
    } else {
        "before PostgreSQL 12 nothing spares the scan: run it when the table is quiet, and allow \
         it with the reason"
    };
    vec![found(
        what,
        format!(
            "sets NOT NULL: reads all of {} under ACCESS EXCLUSIVE to prove that no row is NULL; \
             every read and write of {table} waits until it is done",
            s.sized(table)
        ),
        help,
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, schema, text};
    use crate::lint::lint_ops;
    use crate::op::{ColumnChange, Op};
    use crate::safe::set_not_null;

    fn set(column: &str) -> Op {
        Op::AlterColumn {
            table: "users".into(),
            column: column.to_owned(),
            change: ColumnChange {
                nullable: Some(false),
                ..ColumnChange::default()
            },
        }
    }

    #[test]
    fn fires_on_set_not_null() {
        insta::assert_snapshot!(text(&lint("set-not-null-scan", &set("email"))));
    }

    #[test]
    fn passes_the_safe_form_but_not_an_unvalidated_check() {
        let findings =
            lint_ops(&set_not_null("users", "email"), &mut schema(), &mut ctx()).expect("applies");
        assert_eq!(findings, vec![], "{findings:#?}");
        // Without the VALIDATE the CHECK proves nothing.
        let mut ops = set_not_null("users", "email");
        ops.remove(1);
        let findings = lint_ops(&ops, &mut schema(), &mut ctx()).expect("applies");
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            vec!["set-not-null-scan"]
        );
    }
}

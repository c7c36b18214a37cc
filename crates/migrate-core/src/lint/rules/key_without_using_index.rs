//! `key-without-using-index`: a primary key or unique constraint added to an existing table
//! builds its index while holding ACCESS EXCLUSIVE.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;
use crate::schema::ConstraintKind;

pub(super) const RULE: Rule = Rule {
    id: "key-without-using-index",
    severity: Severity::Error,
    summary: "a primary key or unique constraint that builds its index under ACCESS EXCLUSIVE",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG104", "PG105", "MF101"],
        squawk: &[
            "disallowed-unique-constraint",
            "adding-serial-primary-key-field",
        ],
        strong_migrations: &["add_index"],
        eugene: &["E7", "W14"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::AddConstraint {
        table, constraint, ..
    } = s.op
    else {
        return Vec::new();
    };
    let what = match constraint.kind {
        ConstraintKind::PrimaryKey { .. } => "primary key",
        ConstraintKind::Unique { .. } => "unique constraint",
        _ => return Vec::new(),
    };
    if !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        format!("{what} {} on {table}", constraint.name),
        format!(
            "adds a {what}: builds its index over all of {} under ACCESS EXCLUSIVE; every read \
             and write of {table} waits until it is done",
            s.sized(table)
        ),
        "build a unique index concurrently, then Op::AddConstraintUsingIndex, a catalog change \
         under a brief lock: migrate_core::safe::add_constraint writes both",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, schema, text};
    use crate::lint::lint_ops;
    use crate::op::Op;
    use crate::safe::add_constraint;
    use crate::schema::{Constraint, ConstraintKind};

    fn unique() -> Constraint {
        Constraint {
            name: "users_email_key".to_owned(),
            kind: ConstraintKind::Unique {
                columns: vec!["email".to_owned()],
            },
        }
    }

    #[test]
    fn fires_on_a_unique_constraint() {
        let op = Op::AddConstraint {
            table: "users".into(),
            constraint: unique(),
            not_valid: false,
        };
        insta::assert_snapshot!(text(&lint("key-without-using-index", &op)));
    }

    #[test]
    fn passes_a_concurrent_index_taken_over() {
        let ops = add_constraint("users", unique());
        let findings = lint_ops(&ops, &mut schema(), &mut ctx()).expect("applies");
        assert_eq!(findings, vec![]);
    }
}

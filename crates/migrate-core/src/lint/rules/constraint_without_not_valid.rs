//! `constraint-without-not-valid`: a CHECK or foreign key added to an existing table checks
//! every row while holding a lock that blocks writes (a CHECK: reads too).

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;
use crate::schema::ConstraintKind;

pub(super) const RULE: Rule = Rule {
    id: "constraint-without-not-valid",
    severity: Severity::Error,
    summary: "a CHECK or foreign key added without NOT VALID: every row checked under the lock",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG305"],
        squawk: &[
            "constraint-missing-not-valid",
            "adding-foreign-key-constraint",
        ],
        strong_migrations: &["add_check_constraint", "add_foreign_key"],
        eugene: &["E1"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::AddConstraint {
        table,
        constraint,
        not_valid: false,
    } = s.op
    else {
        return Vec::new();
    };
    if !s.existed(table) {
        return Vec::new();
    }
    let message = match &constraint.kind {
        ConstraintKind::Check { expr, .. } => format!(
            "adds CHECK ({expr}) and checks every row of {} under ACCESS EXCLUSIVE; every read \
             and write of {table} waits until it is done",
            s.sized(table)
        ),
        ConstraintKind::ForeignKey(fk) => format!(
            "adds a foreign key to {} and checks every row of {} against it while writes to \
             both tables wait (SHARE ROW EXCLUSIVE)",
            fk.ref_table,
            s.sized(table)
        ),
        _ => return Vec::new(),
    };
    vec![found(
        format!("constraint {} on {table}", constraint.name),
        message,
        "add it NOT VALID (new and updated rows are checked at once), then ValidateConstraint, \
         which checks the old rows in its own transaction under a lock that blocks neither \
         reads nor writes: migrate_core::safe::add_constraint writes both",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, lint_with, schema, text, users_created};
    use crate::lint::lint_ops;
    use crate::op::Op;
    use crate::safe::add_constraint;
    use crate::schema::{Constraint, ConstraintKind, ForeignKey, ReferentialAction};

    fn check() -> Constraint {
        Constraint {
            name: "users_age_check".to_owned(),
            kind: ConstraintKind::Check {
                expr: "age >= 0".to_owned(),
                sqlite: None,
            },
        }
    }

    fn foreign_key() -> Constraint {
        Constraint {
            name: "users_org_id_fkey".to_owned(),
            kind: ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["org_id".to_owned()],
                ref_table: "orgs".into(),
                ref_columns: vec!["id".to_owned()],
                on_delete: ReferentialAction::Cascade,
                on_update: ReferentialAction::NoAction,
            }),
        }
    }

    fn add(constraint: Constraint) -> Op {
        Op::AddConstraint {
            table: "users".into(),
            constraint,
            not_valid: false,
        }
    }

    #[test]
    fn fires_on_a_check_and_a_foreign_key() {
        let mut findings = lint("constraint-without-not-valid", &add(check()));
        findings.extend(lint("constraint-without-not-valid", &add(foreign_key())));
        insta::assert_snapshot!(text(&findings));
    }

    #[test]
    fn passes_not_valid_then_validate_and_new_tables() {
        for constraint in [check(), foreign_key()] {
            let ops = add_constraint("users", constraint.clone());
            let findings = lint_ops(&ops, &mut schema(), &mut ctx()).expect("applies");
            assert_eq!(findings, vec![]);
            let direct = add(constraint);
            assert_eq!(
                lint_with("constraint-without-not-valid", &direct, &users_created()),
                vec![]
            );
        }
    }
}

//! `drop-breaks-release`: dropping a table or column that the running release may still read or
//! write (SQLAlchemy names every mapped column in its SELECTs and INSERTs).

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "drop-breaks-release",
    severity: Severity::Error,
    summary: "a table or column dropped while the running release may still use it",
    postgres_only: false,
    peers: Peers {
        atlas: &["BC101", "BC102"],
        squawk: &["ban-drop-column", "ban-drop-table"],
        strong_migrations: &["remove_column"],
        eugene: &[],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let (table, object) = match s.op {
        Op::DropTable { table } => (table, format!("table {table}")),
        Op::DropColumn { table, column } => (table, format!("{table}.{column}")),
        _ => return Vec::new(),
    };
    if !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        object,
        "drops it while the release of the service still running may read or write it \
         (SQLAlchemy names every mapped column): its queries fail until it is replaced"
            .to_owned(),
        "remove it from the service's models and deploy that release first, then drop it in a \
         later revision, allowed with the release that stopped using it",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::op::Op;

    fn drop() -> Op {
        Op::DropColumn {
            table: "users".into(),
            column: "status".to_owned(),
        }
    }

    #[test]
    fn fires_on_a_dropped_column() {
        insta::assert_snapshot!(text(&lint("drop-breaks-release", &drop())));
    }

    #[test]
    fn passes_a_table_created_in_the_revision() {
        assert_eq!(
            lint_with("drop-breaks-release", &drop(), &users_created()),
            vec![]
        );
    }
}

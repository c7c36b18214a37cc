//! `drop-loses-data`: dropping a table or column deletes what it holds; a rollback brings the
//! column or table back, empty.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "drop-loses-data",
    severity: Severity::Error,
    summary: "a table or column dropped with its data",
    postgres_only: false,
    peers: Peers {
        atlas: &["DS102", "DS103"],
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
        format!(
            "deletes its data, held in {}: a rollback brings it back empty",
            s.sized(table)
        ),
        "copy what must survive first (or run migrate --backup), then allow it, saying why the \
         data is not needed",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::op::Op;

    fn drop() -> Op {
        Op::DropTable {
            table: "users".into(),
        }
    }

    #[test]
    fn fires_on_a_dropped_table() {
        insta::assert_snapshot!(text(&lint("drop-loses-data", &drop())));
    }

    #[test]
    fn passes_a_table_created_in_the_revision() {
        assert_eq!(
            lint_with("drop-loses-data", &drop(), &users_created()),
            vec![]
        );
    }
}

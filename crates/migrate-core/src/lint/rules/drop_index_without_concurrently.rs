//! `drop-index-without-concurrently`: `DROP INDEX` takes ACCESS EXCLUSIVE on the table. It is
//! brief, but while it waits for a long transaction on the table every query of it queues
//! behind it.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "drop-index-without-concurrently",
    severity: Severity::Warning,
    summary: "an index dropped without CONCURRENTLY: a brief ACCESS EXCLUSIVE that queues readers",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG102"],
        squawk: &["require-concurrent-index-deletion"],
        strong_migrations: &["remove_index"],
        eugene: &["E4"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::DropIndex {
        table,
        name,
        concurrently: false,
    } = s.op
    else {
        return Vec::new();
    };
    if !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        format!("index {name} on {table}"),
        format!(
            "drops the index under ACCESS EXCLUSIVE on {table}: quick once granted, but while it \
             waits for a running transaction every read and write of {table} queues behind it"
        ),
        "set concurrently: true (DROP INDEX CONCURRENTLY waits without blocking anyone)",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, text};
    use crate::op::Op;

    fn drop(concurrently: bool) -> Op {
        Op::DropIndex {
            table: "users".into(),
            name: "ix_users_email".to_owned(),
            concurrently,
        }
    }

    #[test]
    fn fires_on_a_plain_drop() {
        insta::assert_snapshot!(text(&lint("drop-index-without-concurrently", &drop(false))));
    }

    #[test]
    fn passes_a_concurrent_drop() {
        assert_eq!(lint("drop-index-without-concurrently", &drop(true)), vec![]);
    }
}

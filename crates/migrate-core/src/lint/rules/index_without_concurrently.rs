//! `index-without-concurrently`: `CREATE INDEX` on an existing table blocks every write of it
//! until the build ends.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "index-without-concurrently",
    severity: Severity::Error,
    summary: "an index built on an existing table without CONCURRENTLY: writes wait for the build",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG101"],
        squawk: &["require-concurrent-index-creation"],
        strong_migrations: &["add_index"],
        eugene: &["E6"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::CreateIndex {
        table,
        index,
        concurrently: false,
    } = s.op
    else {
        return Vec::new();
    };
    if !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        format!("index {} on {table}", index.name),
        format!(
            "builds the index over all of {} while every INSERT, UPDATE and DELETE of {table} \
             waits (SHARE lock)",
            s.sized(table)
        ),
        "set concurrently: true (CREATE INDEX CONCURRENTLY runs outside the transaction and \
         lets writes go on; a failed build is dropped and retried by the next run)",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::op::Op;
    use crate::schema::Index;

    fn create(concurrently: bool) -> Op {
        Op::CreateIndex {
            table: "users".into(),
            index: Index::new("ix_users_status", &["status"]),
            concurrently,
        }
    }

    #[test]
    fn fires_on_a_plain_index_build() {
        insta::assert_snapshot!(text(&lint("index-without-concurrently", &create(false))));
    }

    #[test]
    fn passes_a_concurrent_build_and_a_new_table() {
        assert_eq!(lint("index-without-concurrently", &create(true)), vec![]);
        assert_eq!(
            lint_with(
                "index-without-concurrently",
                &create(false),
                &users_created()
            ),
            vec![]
        );
    }
}

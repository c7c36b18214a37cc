//! `concurrently-in-transaction`: a step that must run outside a transaction block
//! (`CONCURRENTLY`) in a run that is one transaction.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject, TransactionMode};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    severity: Severity::Error,
    summary: "CONCURRENTLY in a run that is one transaction, where PostgreSQL refuses it",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG103"],
        squawk: &["ban-concurrent-index-creation-in-transaction"],
        strong_migrations: &[],
        eugene: &[],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    if s.ctx.transaction != TransactionMode::Single || s.op.transactional() {
        return Vec::new();
    }
    let object = match s.op {
        Op::CreateIndex { table, index, .. } => format!("index {} on {table}", index.name),
        Op::DropIndex { table, name, .. } => format!("index {name} on {table}"),
        _ => return Vec::new(),
    };
    vec![found(
        object,
        "runs CONCURRENTLY, which cannot run inside a transaction block, and this run is one \
         transaction"
            .to_owned(),
        "run it outside a transaction block: without --single-transaction, or outside BEGIN .. COMMIT in a script",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, lint_with, text};
    use crate::lint::TransactionMode;
    use crate::op::Op;
    use crate::schema::Index;

    fn create() -> Op {
        Op::CreateIndex {
            table: "users".into(),
            index: Index::new("ix_users_status", &["status"]),
            concurrently: true,
        }
    }

    #[test]
    fn fires_in_a_single_transaction_run() {
        let mut single = ctx();
        single.transaction = TransactionMode::Single;
        insta::assert_snapshot!(text(&lint_with(
            "concurrently-in-transaction",
            &create(),
            &single
        )));
    }

    #[test]
    fn passes_one_transaction_per_revision() {
        assert_eq!(lint("concurrently-in-transaction", &create()), vec![]);
    }
}

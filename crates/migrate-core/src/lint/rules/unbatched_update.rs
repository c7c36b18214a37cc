//! `unbatched-update`: an update of a whole existing table in one transaction holds the lock
//! of every row it touched until it commits: every login that updates its user waits.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject, TransactionMode};
use crate::op::Op;
use crate::schema::TableName;

/// The rule's id.
pub(in crate::lint) const RULE_ID: &str = "unbatched-update";

pub(super) const RULE: Rule = Rule {
    id: RULE_ID,
    severity: Severity::Warning,
    summary: "an UPDATE of a whole table in one transaction: row locks held until it commits",
    postgres_only: true,
    peers: Peers {
        atlas: &[],
        squawk: &[],
        strong_migrations: &["backfilling data"],
        eugene: &[],
    },
    check,
};

/// The finding for an `UPDATE` statement of `table` that selects every row (a script).
pub(in crate::lint) fn whole_table(sized: String, table: &TableName) -> Found {
    found(
        table.to_string(),
        format!(
            "updates every row of {sized} in one statement: each row stays locked until the \
             transaction commits, so every write of those rows waits"
        ),
        "use Op::Backfill (key-range batches, each its own transaction, resumable)",
    )
}

fn check(s: &Subject<'_>) -> Vec<Found> {
    let table = match s.op {
        Op::Backfill(b) => &b.table,
        Op::AlterColumnTypeOnline { table, .. } => table,
        _ => return Vec::new(),
    };
    if s.ctx.transaction != TransactionMode::Single || !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        table.to_string(),
        format!(
            "backfills {} in batches, but this run is one transaction: the batches become one \
             UPDATE whose row locks are held until the whole run commits",
            s.sized(table)
        ),
        "run without --single-transaction (one transaction per revision; batches commit one \
         by one)",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ctx, lint, lint_with, text};
    use crate::lint::TransactionMode;
    use crate::op::{Backfill, Op};

    fn backfill() -> Op {
        Op::Backfill(Backfill::new("users", "status", "'active'").filtered("status IS NULL"))
    }

    #[test]
    fn fires_on_a_backfill_in_a_single_transaction_run() {
        let mut single = ctx();
        single.transaction = TransactionMode::Single;
        insta::assert_snapshot!(text(&lint_with("unbatched-update", &backfill(), &single)));
    }

    #[test]
    fn passes_a_backfill_in_batches() {
        assert_eq!(lint("unbatched-update", &backfill()), vec![]);
    }
}

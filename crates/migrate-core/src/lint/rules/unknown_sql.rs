//! `unknown-sql`: SQL the model cannot judge. It is never passed silently: what it locks and
//! for how long is for a reviewer to say, with an allowance that gives the reason.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};

/// The rule's id.
pub(in crate::lint) const RULE_ID: &str = "unknown-sql";

pub(super) const RULE: Rule = Rule {
    id: RULE_ID,
    severity: Severity::Warning,
    summary: "SQL the model cannot judge",
    postgres_only: false,
    peers: Peers {
        atlas: &[],
        squawk: &[],
        strong_migrations: &["execute"],
        eugene: &[],
    },
    check,
};

/// The finding for one statement of a script (or of an `Op::Sql`) that lint cannot judge.
pub(in crate::lint) fn statement(what: &str, sql: &str) -> Found {
    let first = sql.trim().lines().next().unwrap_or_default();
    let shown: String = first.chars().take(80).collect();
    let ellipsis = if shown.len() < sql.trim().len() {
        "..."
    } else {
        ""
    };
    found(
        format!("`{shown}{ellipsis}`"),
        format!("cannot judge {what}: what it locks and for how long is not known"),
        HELP,
    )
}

const HELP: &str = "read it: if it is safe (a read-only check, a small table), allow \
                    unknown-sql in the revision, saying why";

/// Raw SQL never reaches the rules: [`crate::lint::lint_op`] hands it to [`crate::lint::sql`],
/// which reports what it cannot judge with [`statement`].
fn check(_: &Subject<'_>) -> Vec<Found> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text};
    use crate::lint::LintContext;
    use crate::op::{Op, RawSql};
    use crate::render::Dialect;

    fn raw(postgres: &str) -> Op {
        Op::Sql(RawSql {
            description: "fix the data".to_owned(),
            postgres: Some(postgres.to_owned()),
            sqlite: Some(postgres.to_owned()),
        })
    }

    #[test]
    fn fires_on_sql_the_parser_cannot_map() {
        let mut findings = lint(
            "unknown-sql",
            &raw("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"),
        );
        let sqlite = LintContext::for_dialect(Dialect::Sqlite);
        findings.extend(lint_with("unknown-sql", &raw("DELETE FROM users"), &sqlite));
        insta::assert_snapshot!(text(&findings));
    }

    #[test]
    fn passes_sql_that_maps_onto_ops_or_only_reads() {
        let op = raw("SELECT count(*) FROM users; ALTER TABLE users ADD COLUMN note text");
        assert_eq!(lint("unknown-sql", &op), vec![]);
    }
}

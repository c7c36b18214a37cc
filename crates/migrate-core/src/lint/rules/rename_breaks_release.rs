//! `rename-breaks-release`: renaming a table or column (or moving a table to another schema)
//! breaks the release of the service that is still running: it keeps using the old name until
//! it is replaced.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;

pub(super) const RULE: Rule = Rule {
    id: "rename-breaks-release",
    severity: Severity::Error,
    summary: "a table or column renamed while the running release still uses the old name",
    postgres_only: false,
    peers: Peers {
        atlas: &["BC101", "BC102"],
        squawk: &["renaming-table", "renaming-column"],
        strong_migrations: &["rename_table", "rename_column"],
        eugene: &[],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let (table, object, action) = match s.op {
        Op::RenameTable { table, to } => (
            table,
            format!("table {table}"),
            format!("renames it to {to}"),
        ),
        Op::SetTableSchema { table, schema } => (
            table,
            format!("table {table}"),
            format!(
                "moves it to schema {}",
                schema.as_deref().unwrap_or("public")
            ),
        ),
        Op::RenameColumn { table, from, to } => (
            table,
            format!("{table}.{from}"),
            format!("renames it to {to}"),
        ),
        _ => return Vec::new(),
    };
    if !s.existed(table) {
        return Vec::new();
    }
    vec![found(
        object,
        format!(
            "{action}: the release of the service still running uses the old name, and its \
             queries fail from the commit until it is replaced"
        ),
        "expand and contract: add the new name beside the old (a new column kept in step, or \
         a view), deploy the release that uses it, then drop the old name in a later revision; \
         or allow it, saying why no running release uses the old name",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::op::Op;

    #[test]
    fn fires_on_a_column_and_a_table_rename() {
        let mut findings = lint(
            "rename-breaks-release",
            &Op::RenameColumn {
                table: "users".into(),
                from: "email".to_owned(),
                to: "email_address".to_owned(),
            },
        );
        findings.extend(lint(
            "rename-breaks-release",
            &Op::RenameTable {
                table: "users".into(),
                to: "accounts".to_owned(),
            },
        ));
        insta::assert_snapshot!(text(&findings));
    }

    #[test]
    fn passes_a_table_created_in_the_revision() {
        let op = Op::RenameTable {
            table: "users".into(),
            to: "accounts".to_owned(),
        };
        assert_eq!(
            lint_with("rename-breaks-release", &op, &users_created()),
            vec![]
        );
    }
}

//! `type-change-rewrite`: a column type change that PostgreSQL cannot do in place rewrites the
//! table and rebuilds its indexes under ACCESS EXCLUSIVE: no read, no write of it until done.

use super::found;
use crate::lint::{Found, Peers, Rule, Severity, Subject};
use crate::op::Op;
use crate::render::postgres::type_sql;

pub(super) const RULE: Rule = Rule {
    id: "type-change-rewrite",
    severity: Severity::Error,
    summary: "a column type change that rewrites the table under ACCESS EXCLUSIVE",
    postgres_only: true,
    peers: Peers {
        atlas: &["PG301"],
        squawk: &["changing-column-type"],
        strong_migrations: &["change_column"],
        eugene: &["E5", "E10"],
    },
    check,
};

fn check(s: &Subject<'_>) -> Vec<Found> {
    let Op::AlterColumn {
        table,
        column,
        change,
    } = s.op
    else {
        return Vec::new();
    };
    let Some((ty, _)) = &change.ty else {
        return Vec::new();
    };
    if !s.existed(table) || !s.profile.iter().any(|p| p.rewrites.contains(table)) {
        return Vec::new();
    }
    let from = s
        .before
        .table(table)
        .and_then(|t| t.find_column(column))
        .map_or_else(|| "its type".to_owned(), |c| type_sql(&c.ty));
    vec![found(
        format!("{table}.{column}"),
        format!(
            "changes the type from {from} to {}: rewrites {} and its indexes under ACCESS \
             EXCLUSIVE; every read and write of {table} waits until it is done",
            type_sql(ty),
            s.sized(table)
        ),
        "use Op::AlterColumnTypeOnline (a new column kept in step by a trigger, filled in \
         batches, swapped in by one short transaction); a change PostgreSQL does in place (a \
         longer varchar, varchar to text, no USING) needs nothing",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lint, lint_with, text, users_created};
    use crate::op::{Batching, ColumnChange, Op};
    use crate::schema::ColumnType;

    fn change(ty: ColumnType, using: Option<&str>) -> Op {
        Op::AlterColumn {
            table: "users".into(),
            column: "email".to_owned(),
            change: ColumnChange {
                ty: Some((ty, using.map(str::to_owned))),
                ..ColumnChange::default()
            },
        }
    }

    #[test]
    fn fires_on_a_rewriting_type_change() {
        let findings = lint(
            "type-change-rewrite",
            &change(ColumnType::Inet, Some("email::inet")),
        );
        insta::assert_snapshot!(text(&findings));
    }

    #[test]
    fn a_narrower_varchar_rewrites_too() {
        assert_eq!(
            lint(
                "type-change-rewrite",
                &change(ColumnType::varchar(50), None)
            )
            .len(),
            1
        );
    }

    #[test]
    fn passes_in_place_changes_the_online_form_and_new_tables() {
        for op in [
            change(ColumnType::varchar(500), None),
            change(ColumnType::Text, Some("email::text")),
            Op::AlterColumnTypeOnline {
                table: "users".into(),
                column: "email".to_owned(),
                ty: ColumnType::Inet,
                using: Some("email::inet".to_owned()),
                batching: Batching::default(),
            },
        ] {
            assert_eq!(lint("type-change-rewrite", &op), vec![], "{op:?}");
        }
        let rewrite = change(ColumnType::Inet, Some("email::inet"));
        assert_eq!(
            lint_with("type-change-rewrite", &rewrite, &users_created()),
            vec![]
        );
    }
}

//! The one script function ([`migrate_engine::script`]) and its text, for the identity chain on
//! both dialects: insta snapshots of what the dry run, `generate-sql` and `run` all plan.

use migrate_core::driver::StateSql;
use migrate_core::{Heads, Target};
use migrate_engine::{script, script_text, Framing, Options, Range, RunIdentity};
use migrate_postgres::PostgresStateSql;
use migrate_sqlite::SqliteStateSql;

fn options() -> Options {
    Options::new(RunIdentity {
        os_user: "tester".to_owned(),
        host: "host".to_owned(),
        tool_version: "0.0.0".to_owned(),
    })
}

fn text(sql: &dyn StateSql, from: Heads, to: Target, framing: Framing) -> String {
    let graph = identity_schema::graph();
    let range = Range::between(&graph, from.clone(), to).expect("a range");
    let script = script(&graph, sql, &options(), &range, from.is_empty()).expect("a script");
    script_text(&["the identity chain".to_owned()], &script, framing)
}

fn head() -> Target {
    Target::Revisions(
        identity_schema::graph()
            .heads()
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
    )
}

fn heads_at_head() -> Heads {
    match head() {
        Target::Revisions(ids) => ids,
        Target::Base => unreachable!("the identity chain has a head"),
    }
}

#[test]
fn postgres_base_to_head() {
    insta::assert_snapshot!(text(
        &PostgresStateSql,
        Heads::new(),
        head(),
        Framing::Transactions
    ));
}

#[test]
fn postgres_head_to_base() {
    insta::assert_snapshot!(text(
        &PostgresStateSql,
        heads_at_head(),
        Target::Base,
        Framing::Transactions
    ));
}

#[test]
fn sqlite_base_to_head() {
    insta::assert_snapshot!(text(
        &SqliteStateSql,
        Heads::new(),
        head(),
        Framing::Transactions
    ));
}

#[test]
fn sqlite_head_to_base() {
    insta::assert_snapshot!(text(
        &SqliteStateSql,
        heads_at_head(),
        Target::Base,
        Framing::Transactions
    ));
}

#[test]
fn the_range_goes_down_only_to_an_applied_point() {
    let graph = identity_schema::graph();
    let at_head = heads_at_head();
    let down = Range::between(&graph, at_head.clone(), Target::Base).expect("a range");
    assert_eq!(down.direction, migrate_core::Direction::Down);
    let up = Range::between(&graph, Heads::new(), head()).expect("a range");
    assert_eq!(up.direction, migrate_core::Direction::Up);
    let nowhere = Range::between(&graph, at_head.clone(), head()).expect("a range");
    assert_eq!(nowhere.direction, migrate_core::Direction::Up);
    let empty = script(&graph, &PostgresStateSql, &options(), &nowhere, false).expect("a script");
    assert!(empty.steps.is_empty() && empty.bootstrap.is_empty());
}

/// `--single-transaction` frames the whole run once; without framing (`psql -1`) no
/// transaction statement is printed.
#[test]
fn one_transaction_and_bare_framing() {
    let graph = identity_schema::graph();
    let range = Range::between(&graph, Heads::new(), head()).expect("a range");
    let mut whole = options();
    whole.single_transaction = true;
    let one = script(&graph, &SqliteStateSql, &whole, &range, true).expect("a script");
    let text = script_text(&[], &one, Framing::Transactions);
    assert_eq!(text.matches("BEGIN IMMEDIATE;").count(), 1, "{text}");
    assert!(
        text.ends_with("pragma_foreign_key_check;\nCOMMIT;\n"),
        "{text}"
    );
    let bare = script_text(&[], &one, Framing::Bare);
    assert!(
        !bare.lines().any(|l| l.starts_with("BEGIN")
            || l == "COMMIT;"
            || l == "PRAGMA foreign_keys = OFF;"
            || l.contains("pragma_foreign_key_check")),
        "{bare}"
    );
}

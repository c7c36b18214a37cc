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
    let guard: String = migrate_core::render::FOREIGN_KEY_GUARD
        .iter()
        .map(|s| format!("{s};\n"))
        .collect();
    assert!(text.ends_with(&format!("{guard}COMMIT;\n")), "{text}");
    let bare = script_text(&[], &one, Framing::Bare);
    assert!(
        !bare.lines().any(|l| l.starts_with("BEGIN")
            || l == "COMMIT;"
            || l == "PRAGMA foreign_keys = OFF;"
            || l.contains("_identity_migrate_foreign_keys")),
        "{bare}"
    );
}

/// The printed SQLite framing is enough on its own: run by the `sqlite3` shell with `-bail`, a
/// transaction that leaves a row referencing a missing one fails at the foreign-key guard and
/// commits nothing, as the driver's does.
#[test]
fn the_printed_foreign_key_guard_stops_the_sqlite_shell() {
    use migrate_core::{Direction, Step};
    use migrate_engine::PreparedStep;
    let step = PreparedStep {
        step: Step {
            revision: rev(1),
            direction: Direction::Up,
            heads_before: Heads::new(),
            heads_after: [rev(1)].into_iter().collect(),
        },
        message: "a dangling reference".to_owned(),
        transactional: true,
        statements: vec![
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)".to_owned(),
            "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))".to_owned(),
            "INSERT INTO child (parent_id) VALUES (7)".to_owned(),
        ],
        bookkeeping: Vec::new(),
        cleanup: Vec::new(),
        phases: Vec::new(),
    };
    let script = migrate_engine::Script {
        bootstrap: Vec::new(),
        steps: vec![step],
        single_transaction: false,
        dialect: migrate_core::Dialect::Sqlite,
    };
    let text = script_text(&[], &script, Framing::Transactions);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("guarded.db");
    let mut shell = std::process::Command::new("sqlite3")
        .arg("-bail")
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sqlite3 (Debian: apt-get install sqlite3)");
    std::io::Write::write_all(&mut shell.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write the script");
    let out = shell.wait_with_output().expect("sqlite3 ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        stderr.contains("a row references a missing row"),
        "{stderr}"
    );
    let conn = rusqlite::Connection::open(&file).expect("open");
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .expect("count");
    assert_eq!(tables, 0, "nothing was committed");
}

fn rev(n: usize) -> String {
    format!("{n:012x}")
}

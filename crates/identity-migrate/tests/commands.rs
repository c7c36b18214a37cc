//! The everyday commands against a real PostgreSQL database: status, migrate, list (and its
//! `history` alias), migrate-to, rollback, `--json`, `--help`; results on stdout, logs on stderr.

mod common;

use common::{
    before_head, chain, db_at, head, history, history_to_head, parse_json, revision_count, run,
    run_db, tables, tempdir, version, Json, JsonExt, R1, R2,
};
use migrate_testkit::TestDb;

#[test]
fn status_of_a_fresh_database_is_base_with_every_revision_pending() {
    let dir = tempdir();
    let db = TestDb::new();
    let (head, n) = (head(), revision_count());
    let out = run_db(dir.path(), &db, &["status"]).ok();
    assert!(out.stdout.contains("base"), "{out}");
    assert!(out.stdout.contains(&format!("head      {head}\n")), "{out}");
    assert!(out.stdout.contains(&format!("pending   {n}\n")), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    // status reads only: it creates nothing.
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));

    let json = parse_json(&run_db(dir.path(), &db, &["status", "--json"]).ok().stdout);
    assert_eq!(json.at("current"), &Json::Array(Vec::new()));
    assert_eq!(json.at("pending").number(), n as f64);
    assert_eq!(json.at("at_head"), &Json::Bool(false));
    assert_eq!(json.at("heads"), &Json::Array(vec![Json::String(head)]));
}

#[test]
fn migrate_then_status_list_and_their_json() {
    let dir = tempdir();
    let db = TestDb::new();
    let ids = chain();
    let (head, n) = (head(), ids.len());
    let out = run_db(dir.path(), &db, &["migrate"]).ok();
    // One line per step and a summary, nothing else; logs (if any) on stderr only.
    let lines: Vec<&str> = out.stdout.lines().collect();
    let steps: Vec<&&str> = lines.iter().filter(|l| l.starts_with("applied ")).collect();
    assert_eq!(steps.len(), n, "{out}");
    for (step, id) in steps.iter().zip(&ids) {
        assert!(
            step.starts_with(&format!("applied  {id} ")),
            "in order:\n{out}"
        );
    }
    let last = lines.last().expect("a summary line");
    assert!(
        last.starts_with(&format!("Applied {n} revision(s)"))
            && last.contains(&head)
            && last.contains("(head)"),
        "{out}"
    );
    assert!(
        lines.len() <= n + 2,
        "only a plan line, the steps and a summary:\n{out}"
    );
    for noise in ["info:", "debug:", "warn:", "error:", "trace:"] {
        assert!(!out.stdout.contains(noise), "log line on stdout:\n{out}");
    }
    assert_eq!(version(&db), Some(vec![head.clone()]));
    assert_eq!(history(&db), history_to_head());

    let status = run_db(dir.path(), &db, &["status"]).ok();
    assert!(
        status.stdout.contains(&format!("{head} (head)")),
        "{status}"
    );
    assert!(status.stdout.contains("pending   0"), "{status}");
    assert!(status.stdout.contains("up to date"), "{status}");

    let list = run_db(dir.path(), &db, &["list"]).ok();
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(rows.len(), n + 1, "a header and every revision:\n{list}");
    assert!(rows[0].starts_with("REVISION"), "{list}");
    for (row, id) in rows[1..].iter().zip(&ids) {
        assert!(row.starts_with(&format!("{id} ")), "in order:\n{list}");
    }
    for row in &rows[1..] {
        assert!(row.contains(" yes "), "applied:\n{list}");
        let stamp = row
            .split_whitespace()
            .any(|w| w.len() == 20 && w.as_bytes()[10] == b'T' && w.ends_with('Z'));
        assert!(stamp, "applied at:\n{list}");
    }
    assert!(rows[n].contains("current,head"), "{list}");
    for row in &rows[1..n] {
        assert!(!row.contains("head"), "{list}");
    }

    let json = parse_json(&run_db(dir.path(), &db, &["list", "--json"]).ok().stdout);
    let items = json.items();
    assert_eq!(items.len(), n);
    for (i, (item, id)) in items.iter().zip(&ids).enumerate() {
        assert_eq!(item.at("revision").str(), id);
        assert_eq!(item.at("applied"), &Json::Bool(true));
        let at = item.at("applied_at").str();
        assert!(at.len() == 20 && at.ends_with('Z'), "{at}");
        assert!(item.at("duration_ms").number() >= 0.0);
        assert_eq!(item.at("head"), &Json::Bool(*id == head));
        assert_eq!(item.at("current"), &Json::Bool(*id == head));
        let down: Vec<Json> = ids[..i]
            .last()
            .map(|parent| Json::String(parent.clone()))
            .into_iter()
            .collect();
        assert_eq!(item.at("down_revisions"), &Json::Array(down), "{id}");
    }

    let json = parse_json(&run_db(dir.path(), &db, &["status", "--json"]).ok().stdout);
    assert_eq!(json.at("at_head"), &Json::Bool(true));
    assert_eq!(json.at("pending").number(), 0.0);
    let current = json.at("current").items();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].at("revision").str(), head);
    assert_eq!(current[0].at("head"), &Json::Bool(true));
    assert!(json.at("database").str().contains(db.name()));

    // A second migrate has nothing to do and says so.
    let again = run_db(dir.path(), &db, &["migrate"]).ok();
    assert!(again.stdout.starts_with("Nothing to do"), "{again}");
    assert_eq!(history(&db).len(), n);
}

#[test]
fn history_is_an_alias_of_list() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let list = run_db(dir.path(), &db, &["list"]).ok();
    let hist = run_db(dir.path(), &db, &["history"]).ok();
    assert_eq!(list.stdout, hist.stdout);
    let hist_json = run_db(dir.path(), &db, &["history", "--json"]).ok();
    assert_eq!(
        parse_json(&hist_json.stdout).items().len(),
        revision_count()
    );
}

#[test]
fn migrate_to_a_prefix_then_rollback_to_base() {
    let dir = tempdir();
    let db = TestDb::new();
    let out = run_db(dir.path(), &db, &["migrate-to", "9747"]).ok();
    assert!(out.stdout.contains(&format!("applied  {R1}")), "{out}");
    assert!(!out.stdout.contains(&format!("applied  {R2}")), "{out}");
    assert_eq!(version(&db), Some(vec![R1.to_owned()]));
    assert!(tables(&db).contains(&"users_simple".to_owned()));
    assert!(!tables(&db).contains(&"users".to_owned()));

    let out = run_db(dir.path(), &db, &["rollback", "base"]).ok();
    assert!(out.stdout.contains(&format!("reverted {R1}")), "{out}");
    assert!(out.stdout.contains("Reverted 1 revision(s)"), "{out}");
    assert_eq!(version(&db), Some(Vec::new()));
    assert_eq!(
        tables(&db),
        [
            "alembic_version",
            "identity_migrate_history",
            "identity_migrate_progress"
        ],
        "only the tool's own tables stay"
    );
    assert_eq!(
        history(&db),
        [format!("{R1} up applied"), format!("{R1} down applied")]
    );
}

#[test]
fn rollback_minus_one() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let out = run_db(dir.path(), &db, &["rollback", "-1"]).ok();
    assert!(
        out.stdout.contains(&format!("reverted {}", head())),
        "{out}"
    );
    assert!(out.stdout.contains("Reverted 1 revision(s)"), "{out}");
    assert_eq!(version(&db), Some(vec![before_head()]));
}

#[test]
fn rollback_relative_after_double_dash() {
    // `--` before a relative target works as well. From the last legacy revision, so that what
    // the step undoes (the `users` table) is known.
    let dir = tempdir();
    let db = db_at(dir.path(), R2);
    let out = run_db(dir.path(), &db, &["rollback", "--", "-1"]).ok();
    assert!(out.stdout.contains(&format!("reverted {R2}")), "{out}");
    assert_eq!(version(&db), Some(vec![R1.to_owned()]));
    assert!(!tables(&db).contains(&"users".to_owned()));
    let out = run_db(dir.path(), &db, &["migrate-to", "+1"]).ok();
    assert!(out.stdout.contains(&format!("applied  {R2}")), "{out}");
    assert_eq!(version(&db), Some(vec![R2.to_owned()]));
}

#[test]
fn help_of_every_command() {
    let dir = tempdir();
    let top = run(dir.path(), &["--help"]).ok();
    let commands = [
        "status",
        "list",
        "migrate",
        "migrate-to",
        "rollback",
        "generate-sql",
    ];
    for c in commands {
        assert!(top.stdout.contains(&format!("  {c} ")), "{c} in:\n{top}");
        let out = run(dir.path(), &[c, "--help"]).ok();
        assert!(
            out.stdout.contains(&format!("Usage: identity-migrate {c}")),
            "{c}:\n{out}"
        );
        assert_eq!(out.stderr, "", "{c}:\n{out}");
    }
    let out = run(dir.path(), &["history", "--help"]).ok();
    assert!(out.stdout.contains("Usage: identity-migrate"), "{out}");
    let out = run(dir.path(), &["help", "rollback"]).ok();
    assert!(out.stdout.contains("rollback"), "{out}");
    let out = run(dir.path(), &["--version"]).ok();
    assert!(out.stdout.starts_with("identity-migrate "), "{out}");
}

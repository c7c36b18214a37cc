//! `check` and `verify` against a real PostgreSQL database.
//!
//! `check` compares the live schema with what the database's revision defines: exit 0 when
//! clean, 3 on drift, pending or changed revisions, with one line per difference on stdout and
//! one `error:` line on stderr. Each kind of drift has its own test on a database migrated to
//! head, changed by hand the way an operator would. `verify` is the after-deployment summary:
//! `ok` lines when all is well, exit 3 naming what is not (here an invalid index).

mod common;

use common::{
    assert_one_error_line, chain, db_at, execute, head, history, history_to_head, parse_json,
    run_db, snapshot, strings, tempdir, version, Json, JsonExt, Out, R2,
};
use migrate_testkit::TestDb;

/// Exit code of `check` and `verify` when the database is not what it should be.
const DRIFT: i32 = 3;
/// Exit code of a failure while doing the work (a refused migrate).
const FAILURE: i32 = 1;

/// The `drift` lines of a `check` run that must have failed with exit 3 and one error line.
#[track_caller]
fn drift_lines(out: &Out) -> Vec<String> {
    assert_eq!(out.code, DRIFT, "{out}");
    let line = assert_one_error_line(out);
    assert!(line.contains("not clean"), "{out}");
    assert!(!out.stdout.contains("clean     "), "not said clean:\n{out}");
    out.stdout
        .lines()
        .filter(|l| l.starts_with("drift "))
        .map(str::to_owned)
        .collect()
}

/// A database at head with `sql` run on it, and `check`'s answer about it: exactly one
/// difference, whose line is returned.
#[track_caller]
fn one_difference_after(sql: &str) -> String {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    execute(&db, sql);
    let out = run_db(dir.path(), &db, &["check"]);
    let drift = drift_lines(&out);
    assert_eq!(drift.len(), 1, "one difference:\n{out}");
    assert!(
        out.stderr
            .contains("1 difference(s), 0 pending revision(s), 0 changed revision(s)"),
        "{out}"
    );
    assert!(!out.stdout.contains("pending "), "{out}");
    assert!(!out.stdout.contains("changed   "), "{out}");
    drift[0].clone()
}

#[test]
fn clean_at_head() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let head = head();
    let out = run_db(dir.path(), &db, &["check"]).ok();
    assert_eq!(out.stderr, "", "{out}");
    assert!(out.stdout.contains(db.name()), "{out}");
    assert!(out.stdout.contains(&format!("revision  {head}\n")), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "clean     the schema is exactly what revision {head} defines\n"
        )),
        "{out}"
    );
    assert!(
        !out.stdout.contains("drift") && !out.stdout.contains("pending"),
        "{out}"
    );

    let json = parse_json(&run_db(dir.path(), &db, &["check", "--json"]).ok().stdout);
    assert_eq!(json.at("clean"), &Json::Bool(true));
    assert_eq!(json.at("current"), &Json::Array(vec![Json::String(head)]));
    for key in ["differences", "pending", "changed"] {
        assert_eq!(json.at(key), &Json::Array(Vec::new()), "{key}");
    }
    // check reads only.
    assert_eq!(history(&db), history_to_head());
}

#[test]
fn an_added_column() {
    let line = one_difference_after("ALTER TABLE users ADD COLUMN nickname text");
    assert!(
        line.contains("extra column") && line.contains("users.nickname"),
        "{line}"
    );
}

#[test]
fn a_dropped_index() {
    let line = one_difference_after("DROP INDEX ix_users_status");
    assert!(
        line.contains("missing index") && line.contains("users.ix_users_status"),
        "{line}"
    );
}

#[test]
fn a_changed_default() {
    let line =
        one_difference_after("ALTER TABLE users ALTER COLUMN language_code SET DEFAULT 'fr'");
    assert!(line.contains("users.language_code"), "{line}");
    assert!(line.contains("'en'") && line.contains("'fr'"), "{line}");
}

#[test]
fn a_changed_type() {
    let line = one_difference_after("ALTER TABLE users ALTER COLUMN bio TYPE varchar(10)");
    assert!(line.contains("users.bio"), "{line}");
    assert!(
        line.contains("text") && line.contains("varchar(10)"),
        "{line}"
    );
}

#[test]
fn a_missing_constraint() {
    let line = one_difference_after("ALTER TABLE users DROP CONSTRAINT users_status_check");
    assert!(
        line.contains("missing constraint") && line.contains("users.users_status_check"),
        "{line}"
    );
}

#[test]
fn json_report_of_a_drifted_database() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    execute(&db, "ALTER TABLE users ADD COLUMN nickname text");
    let out = run_db(dir.path(), &db, &["check", "--json"]);
    assert_eq!(out.code, DRIFT, "{out}");
    assert_one_error_line(&out);
    let json = parse_json(&out.stdout);
    assert_eq!(json.at("clean"), &Json::Bool(false));
    assert_eq!(json.at("current"), &Json::Array(vec![Json::String(head())]));
    assert_eq!(json.at("pending"), &Json::Array(Vec::new()));
    assert_eq!(json.at("changed"), &Json::Array(Vec::new()));
    let differences = json.at("differences").items();
    assert_eq!(differences.len(), 1, "{json:?}");
    let d = &differences[0];
    assert_eq!(d.at("change").str(), "extra");
    assert_eq!(d.at("object").str(), "column");
    assert_eq!(d.at("name").str(), "users.nickname");
    assert!(d.at("text").str().contains("users.nickname"), "{d:?}");
}

#[test]
fn an_edited_applied_revision() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    // What a revision file edited after it was applied looks like to the tool: its recorded
    // checksum no longer matches the compiled-in one.
    execute(
        &db,
        &format!(
            "UPDATE identity_migrate_history SET checksum = repeat('0', 64) \
             WHERE revision = '{R2}'"
        ),
    );
    let out = run_db(dir.path(), &db, &["check"]);
    assert!(
        drift_lines(&out).is_empty(),
        "the schema itself is fine:\n{out}"
    );
    assert!(
        out.stdout.contains(&format!("changed   {R2}: ")),
        "names the revision:\n{out}"
    );
    assert_eq!(
        out.stdout.matches("changed   ").count(),
        1,
        "only that one:\n{out}"
    );
    assert!(out.stderr.contains("1 changed revision(s)"), "{out}");
    let json = parse_json(&run_db(dir.path(), &db, &["check", "--json"]).stdout);
    assert_eq!(json.at("clean"), &Json::Bool(false));
    assert_eq!(
        json.at("changed"),
        &Json::Array(vec![Json::String(R2.into())])
    );

    // migrate refuses, changing nothing, until told to accept the change.
    let before = snapshot(&db);
    let out = run_db(dir.path(), &db, &["migrate"]);
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(
        line.contains(R2) && line.contains("--accept-changed"),
        "{out}"
    );
    assert_eq!(snapshot(&db), before, "a refused migrate writes nothing");

    run_db(dir.path(), &db, &["migrate", "--accept-changed"]).ok();
    let mut accepted = history_to_head();
    accepted.push(format!("{R2} up accepted"));
    assert_eq!(history(&db), accepted);
    // Accepted once, clean from then on, and migrate no longer asks.
    run_db(dir.path(), &db, &["check"]).ok();
    let again = run_db(dir.path(), &db, &["migrate"]).ok();
    assert!(again.stdout.starts_with("Nothing to do"), "{again}");
}

#[test]
fn pending_revisions() {
    let dir = tempdir();
    let db = db_at(dir.path(), R2);
    let pending = chain()[2..].to_vec();
    assert!(!pending.is_empty());
    let out = run_db(dir.path(), &db, &["check"]);
    // The schema is what 68d314520251 defines: only the pending revisions are reported.
    assert!(drift_lines(&out).is_empty(), "{out}");
    assert!(out.stdout.contains(&format!("revision  {R2}\n")), "{out}");
    let graph = identity_schema::graph();
    let listed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("pending "))
        .collect();
    let expected: Vec<String> = pending
        .iter()
        .map(|id| {
            let message = &graph.get(id).expect("a revision").message;
            format!("pending   {id} {message}")
        })
        .collect();
    assert_eq!(listed, expected, "each pending revision, in order:\n{out}");
    assert!(
        out.stderr
            .contains(&format!("{} pending revision(s)", pending.len())),
        "{out}"
    );
    let json = parse_json(&run_db(dir.path(), &db, &["check", "--json"]).stdout);
    assert_eq!(json.at("clean"), &Json::Bool(false));
    let ids: Vec<Json> = pending.iter().cloned().map(Json::String).collect();
    assert_eq!(json.at("pending"), &Json::Array(ids));
    assert_eq!(json.at("differences"), &Json::Array(Vec::new()));

    // verify says the same, on its revision line.
    let out = run_db(dir.path(), &db, &["verify"]);
    assert_eq!(out.code, DRIFT, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("revision"), "{out}");
    assert!(
        out.stdout.contains(&format!("{} pending", pending.len())),
        "{out}"
    );
    assert_eq!(version(&db), Some(vec![R2.to_owned()]), "reads only");
}

/// The `verify` lines as (status, check, detail).
fn verify_lines(out: &Out) -> Vec<(String, String, String)> {
    out.stdout
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let status = parts.next().unwrap_or_default().to_owned();
            let check = parts.next().unwrap_or_default().to_owned();
            (status, check, parts.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[test]
fn verify_on_a_clean_head_database() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    let out = run_db(dir.path(), &db, &["verify"]).ok();
    assert_eq!(out.stderr, "", "{out}");
    let lines = verify_lines(&out);
    let checks: Vec<&str> = lines.iter().map(|(_, c, _)| c.as_str()).collect();
    assert_eq!(
        checks,
        ["connect", "tls", "server", "revision", "schema", "indexes"],
        "{out}"
    );
    for (status, check, _) in &lines {
        assert_eq!(status, "ok", "{check}:\n{out}");
    }
    assert!(out.stdout.contains(&format!("{} (head)", head())), "{out}");
}

#[test]
fn verify_names_an_invalid_index() {
    let dir = tempdir();
    let db = db_at(dir.path(), "head");
    // A unique index built concurrently on duplicate data fails and stays behind, INVALID.
    execute(
        &db,
        "CREATE TABLE scratch (x integer); INSERT INTO scratch VALUES (1), (1)",
    );
    let failed = db
        .client()
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY ix_scratch_x ON scratch (x)");
    assert!(failed.is_err(), "the duplicate must make it fail");
    assert_eq!(
        strings(
            &db,
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE NOT i.indisvalid"
        ),
        ["ix_scratch_x"]
    );

    let out = run_db(dir.path(), &db, &["verify"]);
    assert_eq!(out.code, DRIFT, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("indexes"), "{out}");
    let lines = verify_lines(&out);
    let indexes = lines
        .iter()
        .find(|(_, c, _)| c == "indexes")
        .unwrap_or_else(|| panic!("an indexes line:\n{out}"));
    assert_eq!(indexes.0, "FAIL", "{out}");
    assert!(indexes.2.contains("ix_scratch_x"), "names it:\n{out}");
    // The scratch table is drift too, which the schema line reports; the rest is fine.
    for (status, check, _) in &lines {
        if !["indexes", "schema"].contains(&check.as_str()) {
            assert_eq!(status, "ok", "{check}:\n{out}");
        }
    }
    let out = run_db(dir.path(), &db, &["check"]);
    let drift = drift_lines(&out);
    assert!(
        drift.iter().any(|l| l.contains("scratch")),
        "check reports the extra table:\n{out}"
    );
}

#[test]
fn a_fresh_database_has_every_revision_pending() {
    let dir = tempdir();
    let db = TestDb::new();
    let out = run_db(dir.path(), &db, &["check"]);
    assert!(drift_lines(&out).is_empty(), "{out}");
    assert!(
        out.stderr
            .contains(&format!("{} pending revision(s)", chain().len())),
        "{out}"
    );
    assert_eq!(
        common::tables(&db),
        Vec::<String>::new(),
        "check creates nothing"
    );
}

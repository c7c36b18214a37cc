//! `lint` and `trace` as an operator runs them: the chain, a range, a SQL file or stdin, the
//! configured severities, the pending revisions of a database with its live sizes; and `trace`
//! on a scratch copy that is always dropped, never touching the live database.

mod common;

use common::{
    assert_one_error_line, command, db_at, execute, output, parse_json, run, run_db, tempdir,
    version, Json, JsonExt, R2,
};
use migrate_testkit::TestDb;
use std::io::Write;
use std::process::Stdio;

const LINT_ERROR: i32 = 6;
const BAD_INPUT: i32 = 2;
const FAILURE: i32 = 1;

const UNSAFE_INDEX: &str = "CREATE INDEX ix_users_last_login_at ON users (last_login_at);\n";
const SAFE_INDEX: &str =
    "CREATE INDEX CONCURRENTLY ix_users_last_login_at ON users (last_login_at);\n";

#[test]
fn the_whole_chain_lints_clean_or_allowed_without_a_database() {
    let dir = tempdir();
    let out = run(dir.path(), &["lint"]).ok();
    let summary = out.stdout.lines().last().expect("a summary line");
    assert!(
        summary.starts_with("linted ") && summary.contains("(0 without an allowance)"),
        "{out}"
    );
    let json = parse_json(&run(dir.path(), &["lint", "--json"]).ok().stdout);
    assert_eq!(json.at("blocking").number(), 0.0);
    let findings = json.at("findings").items();
    assert!(!findings.is_empty(), "the chain has allowed findings");
    for f in findings {
        assert!(
            matches!(f.at("allowed"), Json::String(reason) if !reason.is_empty()),
            "every finding carries its reason: {f:?}"
        );
        assert!(!f.at("rule").str().is_empty());
    }
}

#[test]
fn a_range_lints_only_its_revisions() {
    let dir = tempdir();
    let json = parse_json(&run(dir.path(), &["lint", R2, "--json"]).ok().stdout);
    let revisions: Vec<&str> = json
        .at("findings")
        .items()
        .iter()
        .filter_map(|f| match f.at("revision") {
            Json::String(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    assert!(!revisions.is_empty());
    assert!(revisions.iter().all(|r| *r == R2), "{revisions:?}");
    let out = run(dir.path(), &["lint", "zzzz..head"]);
    assert_eq!(out.code, BAD_INPUT, "{out}");
    assert_one_error_line(&out);
}

#[test]
fn a_sql_file_is_judged_by_the_same_rules_and_its_safe_form_passes() {
    let dir = tempdir();
    std::fs::write(dir.path().join("unsafe.sql"), UNSAFE_INDEX).expect("write");
    std::fs::write(dir.path().join("safe.sql"), SAFE_INDEX).expect("write");

    let out = run(dir.path(), &["lint", "unsafe.sql"]);
    assert_eq!(out.code, LINT_ERROR, "{out}");
    assert!(
        out.stdout
            .contains("error[index-without-concurrently] statement 1"),
        "{out}"
    );
    let line = assert_one_error_line(&out);
    assert!(line.contains("index-without-concurrently"), "{line}");

    let out = run(dir.path(), &["lint", "safe.sql"]).ok();
    assert!(!out.stdout.contains("index-without-concurrently"), "{out}");

    let json = parse_json(&run(dir.path(), &["lint", "unsafe.sql", "--json"]).stdout);
    let first = &json.at("findings").items()[0];
    assert_eq!(first.at("rule").str(), "index-without-concurrently");
    assert_eq!(first.at("severity").str(), "error");
    assert_eq!(first.at("statement").number(), 1.0);
    assert_eq!(json.at("blocking").number(), 1.0);

    // `-` reads the script from stdin.
    let mut child = command(dir.path())
        .args(["lint", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(UNSAFE_INDEX.as_bytes())
        .expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(LINT_ERROR));
    assert!(String::from_utf8_lossy(&o.stdout).contains("index-without-concurrently"));

    let out = run(dir.path(), &["lint", "missing.sql"]);
    assert_eq!(out.code, BAD_INPUT, "{out}");
    assert_one_error_line(&out);
}

#[test]
fn severities_come_from_identity_migrate_toml_and_the_rule_flag() {
    let dir = tempdir();
    std::fs::write(dir.path().join("unsafe.sql"), UNSAFE_INDEX).expect("write");
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "[lint.rules]\nindex-without-concurrently = \"warning\"\n",
    )
    .expect("write");
    let out = run(dir.path(), &["lint", "unsafe.sql"]).ok();
    assert!(
        out.stdout.contains("warning[index-without-concurrently]"),
        "{out}"
    );
    let out = run(
        dir.path(),
        &[
            "lint",
            "unsafe.sql",
            "--rule",
            "index-without-concurrently=error",
        ],
    );
    assert_eq!(out.code, LINT_ERROR, "the flag beats the file: {out}");
    let out = run(
        dir.path(),
        &[
            "lint",
            "unsafe.sql",
            "--rule",
            "index-without-concurrently=off",
        ],
    )
    .ok();
    assert!(!out.stdout.contains("index-without-concurrently"), "{out}");

    for bad in ["no-such-rule=off", "index-without-concurrently=loud"] {
        let out = run(dir.path(), &["lint", "unsafe.sql", "--rule", bad]);
        assert_eq!(out.code, BAD_INPUT, "{out}");
        assert_one_error_line(&out);
    }
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "[lint.rules]\nindex-without-concurently = \"off\"\n",
    )
    .expect("write");
    let out = run(dir.path(), &["lint", "unsafe.sql"]);
    assert_eq!(out.code, BAD_INPUT, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("index-without-concurently"), "{line}");
}

#[test]
fn pending_lints_what_migrate_would_run_with_live_sizes() {
    let dir = tempdir();
    let db = db_at(dir.path(), R2);
    let json = parse_json(
        &run_db(dir.path(), &db, &["lint", "--pending", "--json"])
            .ok()
            .stdout,
    );
    assert!(json.at("linted").str().contains("pending revision(s)"));
    // The pending range rewrites nothing since fbcbc6afff27 changes its type online (the live
    // sizes of a rewrite's message are tested in commands::lint's own tests).
    let findings = json.at("findings").items();
    assert!(
        findings
            .iter()
            .all(|f| f.at("rule").str() != "type-change-rewrite"),
        "{findings:?}"
    );
    assert!(
        findings.iter().all(|f| f.at("revision").str() != R2),
        "applied revisions are not linted"
    );
}

fn scratch_copies(db: &TestDb) -> Vec<String> {
    let mut client = db.client();
    client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE '%\\_\\_trace\\_%'",
            &[],
        )
        .expect("pg_database")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|name| name.starts_with(&db.name()[..db.name().len().min(40)]))
        .collect()
}

#[test]
fn trace_measures_each_statement_on_a_scratch_copy_and_drops_it() {
    let dir = tempdir();
    let db = db_at(dir.path(), "3ffba08b0d3f");
    let before = version(&db);
    let out = run_db(dir.path(), &db, &["trace", "--json"]).ok();
    let json = parse_json(&out.stdout);
    assert_eq!(json.at("scratch").at("dropped"), &Json::Bool(true));
    let steps = json.at("steps").items();
    let statements = |revision: &str| -> Vec<Json> {
        steps
            .iter()
            .find(|s| s.at("revision").str() == revision)
            .unwrap_or_else(|| panic!("{revision} traced"))
            .at("statements")
            .items()
            .to_vec()
    };
    // The online type change (its blocking fallback, in one transaction, as trace runs a
    // revision): ACCESS EXCLUSIVE on the table from the new column on, held to the commit, and
    // no rewrite.
    let fbcbc = statements("fbcbc6afff27");
    assert!(fbcbc.iter().all(|s| s.at("rewritten").items().is_empty()));
    let alter = fbcbc
        .into_iter()
        .find(|s| {
            s.at("sql")
                .str()
                .contains("ADD COLUMN _im_new_session_id uuid")
        })
        .expect("the ALTER is traced");
    let lock = alter
        .at("locks")
        .items()
        .iter()
        .find(|l| l.at("relation").str() == "public.user_activity_logs")
        .expect("a lock on user_activity_logs")
        .clone();
    assert_eq!(lock.at("mode").str(), "ACCESS EXCLUSIVE");
    assert!(lock.at("held_ms").number() >= alter.at("elapsed_ms").number());
    // A concurrent index build, outside a transaction, watched from a second session.
    let build = statements("f971d04cfdc7")
        .into_iter()
        .find(|s| {
            s.at("sql")
                .str()
                .starts_with("CREATE UNIQUE INDEX CONCURRENTLY")
        })
        .expect("a concurrent build is traced");
    assert_eq!(build.at("transactional"), &Json::Bool(false));
    assert!(
        build
            .at("locks")
            .items()
            .iter()
            .any(|l| l.at("mode").str() == "SHARE UPDATE EXCLUSIVE"
                && l.at("relation").str() == "public.users"),
        "{build:?}"
    );
    assert!(build.at("rewritten").items().is_empty());
    // The live database did not move, and no copy is left.
    assert_eq!(version(&db), before);
    assert!(scratch_copies(&db).is_empty(), "{:?}", scratch_copies(&db));

    let text = run_db(dir.path(), &db, &["trace", "fbcbc6afff27"])
        .ok()
        .stdout;
    assert!(
        text.contains("ACCESS EXCLUSIVE       on public.user_activity_logs"),
        "{text}"
    );
    assert!(
        !text.contains("rewrote public.user_activity_logs"),
        "{text}"
    );
}

#[test]
fn a_failing_trace_still_drops_its_copy() {
    let dir = tempdir();
    let db = db_at(dir.path(), "3ffba08b0d3f");
    // Not a UUID: fbcbc6afff27's check refuses it.
    run_db(dir.path(), &db, &["seed", "--users", "20"]).ok();
    execute(
        &db,
        "UPDATE user_activity_logs SET session_id = 'not-a-uuid' \
         WHERE id = (SELECT min(id::text)::uuid FROM user_activity_logs)",
    );
    let out = run_db(dir.path(), &db, &["trace"]);
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("fbcbc6afff27"), "{line}");
    assert!(scratch_copies(&db).is_empty());
}

/// A copy whose trace was killed (no session holds its owner lock) is dropped by the next
/// trace of the same database; the copy of a trace still running (its lock held) is not.
#[test]
fn a_trace_drops_the_copy_a_killed_trace_left_and_spares_a_running_ones() {
    let dir = tempdir();
    let db = db_at(dir.path(), "3ffba08b0d3f");
    let base: String = db.name().chars().take(40).collect();
    let (killed, running) = (
        format!("{base}__trace_4000000"),
        format!("{base}__trace_4000001"),
    );
    let mut maintenance = postgres::Client::connect(
        &migrate_testkit::ensure_server().url("postgres"),
        postgres::NoTls,
    )
    .expect("maintenance session");
    for name in [&killed, &running] {
        maintenance
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create a copy");
    }
    let key = format!("identity-migrate trace {running}");
    maintenance
        .query_one("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .expect("own the running copy");
    let out = run_db(dir.path(), &db, &["trace"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "dropped {killed}: the scratch copy of a trace that was killed"
        )),
        "{out}"
    );
    assert_eq!(scratch_copies(&db), std::slice::from_ref(&running));
    maintenance
        .batch_execute(&format!("DROP DATABASE \"{running}\""))
        .expect("drop the running copy");
}

#[test]
fn trace_needs_nobody_connected_or_a_verified_backup() {
    let dir = tempdir();
    let db = db_at(dir.path(), "3ffba08b0d3f");
    let _other = db.client();
    let out = run_db(dir.path(), &db, &["trace"]);
    assert_eq!(out.code, FAILURE, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("--from-backup"), "{line}");

    let backup = dir.path().join("b.dump");
    let path = backup.to_str().expect("utf-8");
    run_db(
        dir.path(),
        &db,
        &["backup", "--format", "custom", "-o", path],
    )
    .ok();
    let out = run_db(dir.path(), &db, &["trace", "--from-backup", path]).ok();
    assert!(out.stdout.contains("verified backup"), "{out}");
    assert!(scratch_copies(&db).is_empty());
}

#[test]
fn trace_is_for_postgresql() {
    let dir = tempdir();
    let out = output(command(dir.path()).args(["--database-url", "sqlite:///x.db", "trace"]));
    assert_eq!(out.code, BAD_INPUT, "{out}");
    let line = assert_one_error_line(&out);
    assert!(line.contains("SQLite"), "{line}");
}

#[test]
fn the_readme_lists_every_rule_with_its_severity() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    for rule in migrate_core::lint::rules() {
        let row = format!("| `{}` | {} |", rule.id, rule.severity);
        assert!(readme.contains(&row), "README's rules table lacks {row}");
    }
    assert!(readme.contains("| `unused-allowance` | warning |"));
}

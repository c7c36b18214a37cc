//! The same scenarios on PostgreSQL and on SQLite, through the binary as an operator runs it.
//!
//! Each scenario is written once, over [`Backend`], and instantiated for both databases by the
//! test kit's [`both!`]. The schema is compared with what the revisions define by `check`, which
//! introspects the database and compares it with the canonical form of `schema_at` of its
//! revision; content is compared through the backup manifest, which holds a row count and a
//! SHA-256 of the data of every table.

mod common;

use common::{
    assert_one_error_line, chain, head, parse_json, run, tempdir, Json, JsonExt, Out, R2,
};
use migrate_testkit::{both, Kind, TestDb};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A database of one kind, fresh and private to the test.
enum Backend {
    Postgres(TestDb),
    Sqlite(PathBuf),
}

impl Backend {
    /// A new empty database; a SQLite one is a file in `dir` not created yet.
    fn new(kind: Kind, dir: &Path, name: &str) -> Backend {
        match kind {
            Kind::Postgres => Backend::Postgres(TestDb::new()),
            Kind::Sqlite => Backend::Sqlite(dir.join(format!("{name}.db"))),
        }
    }

    fn url(&self) -> String {
        match self {
            Backend::Postgres(db) => db.url(),
            Backend::Sqlite(path) => format!("sqlite:{}", path.display()),
        }
    }

    /// Runs the binary on this database.
    fn run(&self, dir: &Path, args: &[&str]) -> Out {
        run(dir, &[&["--database-url", &self.url()], args].concat())
    }

    /// Runs SQL (several statements) on the database.
    fn execute(&self, sql: &str) {
        match self {
            Backend::Postgres(db) => db
                .client()
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Backend::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sql))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The first column of the first row of `sql`, as text.
    fn text(&self, sql: &str) -> String {
        match self {
            Backend::Postgres(db) => db
                .client()
                .query_one(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<_, String>(0),
            Backend::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.query_row(sql, [], |r| r.get::<_, String>(0)))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Applies a script the way an operator would: `psql -1` for PostgreSQL; for SQLite the
    /// script holds its own transaction, run here by the same SQLite the tool bundles.
    fn apply_script(&self, dir: &Path, script: &Path) {
        match self {
            Backend::Postgres(db) => {
                let psql = Command::new("/usr/bin/psql")
                    .args([
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-1",
                        "-d",
                        &db.url(),
                        "-f",
                    ])
                    .arg(script)
                    .env("HOME", dir)
                    .output()
                    .expect("run psql");
                assert!(
                    psql.status.success(),
                    "psql: {}",
                    String::from_utf8_lossy(&psql.stderr)
                );
            }
            Backend::Sqlite(_) => {
                self.execute(&std::fs::read_to_string(script).expect("read the script"));
            }
        }
    }

    /// The revision(s) the database is at, from `status --json`.
    fn current(&self, dir: &Path) -> Vec<String> {
        let out = self.run(dir, &["status", "--json"]).ok();
        parse_json(&out.stdout)
            .at("current")
            .items()
            .iter()
            .map(|c| c.at("revision").str().to_owned())
            .collect()
    }

    /// Asserts that `check` finds the schema exactly what its revision defines (pending
    /// revisions aside: the chain is walked one step at a time).
    #[track_caller]
    fn assert_clean(&self, dir: &Path) {
        let out = self.run(dir, &["check", "--json"]);
        assert!(out.code == 0 || out.code == 3, "check:\n{out}");
        let report = parse_json(&out.stdout);
        assert_eq!(
            report.at("differences").items(),
            &[] as &[Json],
            "drift:\n{out}"
        );
        assert_eq!(
            report.at("changed").items(),
            &[] as &[Json],
            "changed:\n{out}"
        );
    }

    /// Runs `intent` through the engine with `graph` directly, as another release of the tool
    /// would have (the binary only applies its own chain).
    fn run_engine(&self, graph: &migrate_core::RevisionGraph, intent: migrate_engine::Intent) {
        let driver: Box<dyn migrate_core::driver::Driver> = match self {
            Backend::Postgres(db) => {
                let settings = migrate_postgres::url::parse_with_process_env(&db.url())
                    .expect("the test URL parses");
                Box::new(
                    migrate_postgres::PostgresDriver::connect(&settings, Default::default())
                        .expect("connect"),
                )
            }
            Backend::Sqlite(path) => Box::new(
                migrate_sqlite::SqliteDriver::connect(
                    &migrate_sqlite::SqliteTarget::File(path.clone()),
                    Default::default(),
                )
                .expect("open"),
            ),
        };
        let options = migrate_engine::Options::new(migrate_engine::RunIdentity {
            os_user: "test".into(),
            host: "test".into(),
            tool_version: "0.1.0".into(),
        });
        migrate_engine::Engine::new(driver, graph, options)
            .run(&intent, &mut |_| {})
            .unwrap_or_else(|e| panic!("{intent:?}: {e}"));
    }

    /// Takes a one-file backup to `path`.
    fn backup(&self, dir: &Path, path: &Path) -> Out {
        self.run(dir, &backup_args(self, path))
    }

    /// Row count and data digest of every table, read by a backup of the database.
    fn content(&self, dir: &Path, name: &str) -> BTreeMap<String, (String, String)> {
        let path = backup_path(self, dir, name);
        self.backup(dir, &path).ok();
        manifest_content(&path)
    }
}

/// `backup` into one file: PostgreSQL's custom format (its default is a directory), SQLite's
/// copy of the database.
fn backup_args<'a>(backend: &Backend, path: &'a Path) -> Vec<&'a str> {
    let path = path.to_str().expect("utf-8");
    match backend {
        Backend::Postgres(_) => vec!["backup", "--format", "custom", "--output", path],
        Backend::Sqlite(_) => vec!["backup", "--output", path],
    }
}

fn backup_path(backend: &Backend, dir: &Path, name: &str) -> PathBuf {
    dir.join(match backend {
        Backend::Postgres(_) => format!("{name}.dump"),
        Backend::Sqlite(_) => format!("{name}.backup.db"),
    })
}

/// Per table, the row count and the data digest from a backup's manifest.
fn manifest_content(archive: &Path) -> BTreeMap<String, (String, String)> {
    let mut manifest_name = archive.as_os_str().to_owned();
    manifest_name.push(".manifest.json");
    let text = std::fs::read_to_string(PathBuf::from(manifest_name)).expect("read the manifest");
    let manifest = parse_json(&text);
    let rows = manifest.at("tables");
    let digests = manifest.at("table_sha256");
    rows.keys()
        .into_iter()
        .map(|table| {
            (
                table.clone(),
                (
                    rows.at(&table).number().to_string(),
                    digests.at(&table).str().to_owned(),
                ),
            )
        })
        .collect()
}

/// The same content, without the history table, whose times differ from run to run.
fn without_history(
    mut content: BTreeMap<String, (String, String)>,
) -> BTreeMap<String, (String, String)> {
    content.retain(|table, _| !table.contains("identity_migrate_history"));
    content
}

both!(whole_chain_up_down_up_matches_schema_at_every_step);
both!(dry_run_applied_by_hand_equals_the_migration);
both!(a_failure_halfway_keeps_the_last_good_revision);
both!(backup_and_restore_give_identical_content);
both!(corrupted_backups_are_refused_and_the_target_is_unchanged);
both!(concurrent_migrators_apply_each_revision_once);
both!(a_database_that_ran_the_withdrawn_series_is_told_the_way_forward_and_follows_it);

fn whole_chain_up_down_up_matches_schema_at_every_step(kind: Kind) {
    let dir = tempdir();
    let db = Backend::new(kind, dir.path(), "chain");
    let ids = chain();
    for id in &ids {
        db.run(dir.path(), &["migrate-to", "+1"]).ok();
        assert_eq!(db.current(dir.path()), std::slice::from_ref(id));
        db.assert_clean(dir.path());
    }
    for i in (0..ids.len()).rev() {
        db.run(dir.path(), &["rollback", "-1"]).ok();
        let below: Vec<String> = i
            .checked_sub(1)
            .map(|p| ids[p].clone())
            .into_iter()
            .collect();
        assert_eq!(db.current(dir.path()), below);
        db.assert_clean(dir.path());
    }
    let out = db.run(dir.path(), &["migrate"]).ok();
    assert!(
        out.stdout
            .contains(&format!("Applied {} revision(s)", ids.len())),
        "{out}"
    );
    assert_eq!(db.current(dir.path()), [head()]);
    db.assert_clean(dir.path());
}

fn dry_run_applied_by_hand_equals_the_migration(kind: Kind) {
    let dir = tempdir();
    let planned = Backend::new(kind, dir.path(), "planned");
    let out = planned.run(dir.path(), &["migrate", "--dry-run"]).ok();
    let script = dir.path().join("dry-run.sql");
    std::fs::write(&script, &out.stdout).expect("write the script");
    // The dry run changed nothing: still no revision (and, on SQLite, no file).
    assert!(planned.current(dir.path()).is_empty());
    if let Backend::Sqlite(path) = &planned {
        assert!(!path.exists(), "a dry run creates no file");
    }

    let by_hand = Backend::new(kind, dir.path(), "by_hand");
    by_hand.apply_script(dir.path(), &script);
    let migrated = Backend::new(kind, dir.path(), "migrated");
    migrated.run(dir.path(), &["migrate"]).ok();

    assert_eq!(by_hand.current(dir.path()), [head()]);
    by_hand.assert_clean(dir.path());
    assert_eq!(
        without_history(by_hand.content(dir.path(), "by_hand")),
        without_history(migrated.content(dir.path(), "migrated")),
    );
    let history = "SELECT group_concat(revision || ' ' || direction || ' ' || outcome, ',') FROM (SELECT * FROM identity_migrate_history ORDER BY id) AS h";
    let history = match kind {
        Kind::Postgres => history
            .replace("group_concat(", "string_agg(")
            .replace(", ',')", ", ',' ORDER BY id)"),
        Kind::Sqlite => history.to_owned(),
    };
    assert_eq!(
        by_hand.text(&history),
        migrated.text(&history),
        "the same history rows"
    );
}

/// Two live users whose emails differ only by case: what the last revision's unique index on
/// `lower(email)` refuses (on PostgreSQL its check lists them first, on SQLite the index build
/// fails), while every revision before it lets them be.
const CASE_VARIANTS: &str = "INSERT INTO users (id, email, password_hash) VALUES \
     ('00000000-0000-4000-8000-0000000000a1', 'Ada@x.io', 'h'), \
     ('00000000-0000-4000-8000-0000000000a2', 'ada@x.io', 'h')";

fn a_failure_halfway_keeps_the_last_good_revision(kind: Kind) {
    let dir = tempdir();
    let db = Backend::new(kind, dir.path(), "halfway");
    let ids = chain();
    let failing = head();
    let last_good = ids[ids.len() - 2].clone();
    db.run(dir.path(), &["migrate-to", &last_good]).ok();
    db.execute(CASE_VARIANTS);

    let out = db.run(dir.path(), &["migrate"]);
    let line = assert_one_error_line(&out);
    assert_eq!(out.code, 1, "{out}");
    assert!(line.contains(&failing), "names the failed revision: {out}");
    assert_eq!(
        db.current(dir.path()),
        std::slice::from_ref(&last_good),
        "{out}"
    );
    db.assert_clean(dir.path());
    assert_eq!(
        db.text("SELECT email FROM users ORDER BY id LIMIT 1"),
        "Ada@x.io",
        "the rows are as they were"
    );

    // Once the rows are corrected, the same command finishes the chain.
    db.execute("UPDATE users SET email = 'ada.too@x.io' WHERE email = 'ada@x.io'");
    db.run(dir.path(), &["migrate"]).ok();
    assert_eq!(db.current(dir.path()), [head()]);
    db.assert_clean(dir.path());
}

/// Rows in several tables, with NULLs, quotes, backslashes, newlines and non-ASCII text.
const ROWS: &str = "\
INSERT INTO organizations (id, name, slug, country_code) VALUES
    ('00000000-0000-4000-8000-000000000001', 'Acme ''quoted'' \\ back', 'acme', 'US'),
    ('00000000-0000-4000-8000-000000000002', 'Zürich
two lines', 'zurich', NULL);
INSERT INTO users (id, organization_id, email, username, password_hash) VALUES
    ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'ada@example.com', 'ada', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA'),
    ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-000000000002', 'bob@example.com', 'bob', '$2b$12$abcdefghijklmnopqrstuv');";

fn seeded(kind: Kind, dir: &Path, name: &str) -> Backend {
    let db = Backend::new(kind, dir, name);
    db.run(dir, &["migrate"]).ok();
    db.execute(ROWS);
    db
}

fn backup_and_restore_give_identical_content(kind: Kind) {
    let dir = tempdir();
    let source = seeded(kind, dir.path(), "source");
    let archive = backup_path(&source, dir.path(), "round-trip");
    let out = source.run(dir.path(), &backup_args(&source, &archive)).ok();
    assert!(out.stdout.contains("rows      "), "{out}");
    assert_mode(&archive, 0o600);
    source
        .run(
            dir.path(),
            &["backup", "verify", archive.to_str().expect("utf-8")],
        )
        .ok();

    let target = Backend::new(kind, dir.path(), "target");
    let out = target
        .run(dir.path(), &["restore", archive.to_str().expect("utf-8")])
        .ok();
    assert!(
        out.stdout
            .contains(&format!("the database is at {}", head())),
        "{out}"
    );
    assert_eq!(target.current(dir.path()), [head()]);
    target.assert_clean(dir.path());
    // Every table, the version and history tables included, row for row.
    let restored = target.content(dir.path(), "restored");
    assert_eq!(restored, manifest_content(&archive));
    // PostgreSQL names tables with their schema, SQLite without.
    let rows = |table: &str| {
        restored
            .iter()
            .find(|(name, _)| *name == table || **name == format!("public.{table}"))
            .map(|(_, (rows, _))| rows.clone())
    };
    assert_eq!(rows("organizations").as_deref(), Some("2"));
    assert_eq!(rows("users").as_deref(), Some("2"));
}

fn corrupted_backups_are_refused_and_the_target_is_unchanged(kind: Kind) {
    let dir = tempdir();
    let source = seeded(kind, dir.path(), "source");
    let archive = backup_path(&source, dir.path(), "good");
    source.run(dir.path(), &backup_args(&source, &archive)).ok();
    let bytes = std::fs::read(&archive).expect("read the archive");
    let mut manifest_name = archive.as_os_str().to_owned();
    manifest_name.push(".manifest.json");
    let manifest = std::fs::read_to_string(PathBuf::from(manifest_name)).expect("manifest");

    // The target holds something of its own, to be kept whatever happens.
    let target = Backend::new(kind, dir.path(), "target");
    target.run(dir.path(), &["migrate"]).ok();
    target.execute(
        "INSERT INTO organizations (id, name, slug) \
         VALUES ('00000000-0000-4000-8000-0000000000ff', 'Keep', 'keep')",
    );
    let before = target.content(dir.path(), "before");

    let middle = bytes.len() / 2;
    let mut overwritten = bytes.clone();
    for b in &mut overwritten[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("empty", Vec::new(), manifest.clone()),
        ("100 bytes", bytes[..100].to_vec(), manifest.clone()),
        ("half", bytes[..middle].to_vec(), manifest.clone()),
        (
            "one byte short",
            bytes[..bytes.len() - 1].to_vec(),
            manifest.clone(),
        ),
        ("overwritten", overwritten, manifest.clone()),
        (
            "a manifest that does not match",
            bytes.clone(),
            manifest.replace(
                parse_json(&manifest).at("files").items()[0]
                    .at("sha256")
                    .str(),
                &"0".repeat(64),
            ),
        ),
    ];
    for (i, (what, data, manifest_text)) in cases.iter().enumerate() {
        let bad = backup_path(&source, dir.path(), &format!("bad{i}"));
        std::fs::write(&bad, data).expect("write");
        let mut name = bad.as_os_str().to_owned();
        name.push(".manifest.json");
        std::fs::write(PathBuf::from(name), manifest_text).expect("write");
        let path = bad.to_str().expect("utf-8");

        let out = source.run(dir.path(), &["backup", "verify", path]);
        assert_one_error_line(&out);
        assert!(out.stderr.contains("not intact"), "{what}: {out}");

        let out = target.run(dir.path(), &["restore", "--yes", path]);
        assert_one_error_line(&out);
        assert!(out.stderr.contains("nothing was restored"), "{what}: {out}");
    }
    assert_eq!(
        target.content(dir.path(), "after"),
        before,
        "the target is exactly as it was"
    );
}

fn concurrent_migrators_apply_each_revision_once(kind: Kind) {
    let dir = tempdir();
    let db = Backend::new(kind, dir.path(), "contended");
    let url = db.url();
    let children: Vec<_> = (0..8)
        .map(|_| {
            common::command(dir.path())
                .args(["--database-url", &url, "migrate"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start identity-migrate")
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().expect("wait");
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert_eq!(out.code, 0, "every migrator succeeds:\n{out}");
    }
    assert_eq!(db.current(dir.path()), [head()]);
    let applied = db.text(
        "SELECT CAST(count(*) AS TEXT) || '/' || CAST(count(DISTINCT revision) AS TEXT) \
         FROM identity_migrate_history WHERE direction = 'up' AND outcome = 'applied'",
    );
    let n = chain().len();
    assert_eq!(applied, format!("{n}/{n}"), "each revision applied once");
    db.assert_clean(dir.path());
}

#[track_caller]
fn assert_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let actual = std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(actual, mode, "{}", path.display());
}

/// A database that identity-migrate 0.1.0 took to its head, through the series 0.2.0 withdrew:
/// every command says what happened and what to run, in one line; running it takes the database
/// back to `68d314520251` with its rows, and on to the new head.
fn a_database_that_ran_the_withdrawn_series_is_told_the_way_forward_and_follows_it(kind: Kind) {
    let dir = tempdir();
    let db = Backend::new(kind, dir.path(), "withdrawn");
    db.run(dir.path(), &["migrate-to", R2]).ok();
    db.execute(
        "INSERT INTO users (id, email, password_hash, language_code, timezone, theme_preference,
             notification_preferences, privacy_settings, status, is_verified, is_active,
             failed_login_attempts, created_at, updated_at)
         VALUES ('a0000000-0000-4000-8000-000000000001', 'kept@x.io', 'h', 'en', 'UTC', 'dark',
             '{}', '{}', 'active', TRUE, TRUE, 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')",
    );
    let released = &identity_schema::withdrawal().released;
    let old_head = released.heads()[0].to_owned();
    db.run_engine(released, migrate_engine::Intent::Upgrade("head".into()));
    let at = "SELECT version_num FROM alembic_version";
    assert_eq!(db.text(at), old_head);

    for command in [
        &["migrate"][..],
        &["status"],
        &["check"],
        &["migrate", "--dry-run"],
    ] {
        let out = db.run(dir.path(), command);
        assert_eq!(out.code, 2, "{command:?}: {out}");
        let line = assert_one_error_line(&out);
        for part in [
            old_head.as_str(),
            "withdrawn in identity-migrate 0.2.0",
            "run `identity-migrate rollback 68d314520251`",
            "then `identity-migrate migrate`",
        ] {
            assert!(line.contains(part), "{command:?}: {part:?} not in {line}");
        }
    }
    assert_eq!(db.text(at), old_head, "refused: nothing changed");

    // The way forward, as the line says: back down the released chain, then up the new one.
    let plan = db.run(dir.path(), &["rollback", R2, "--dry-run"]).ok();
    assert!(plan.stdout.contains(&old_head), "{plan}");
    db.run(dir.path(), &["rollback", R2]).ok();
    assert_eq!(db.current(dir.path()), [R2]);
    db.assert_clean(dir.path());
    db.run(dir.path(), &["migrate"]).ok();
    assert_eq!(db.current(dir.path()), [head()]);
    db.assert_clean(dir.path());
    assert_eq!(
        db.text("SELECT email FROM users WHERE id = 'a0000000-0000-4000-8000-000000000001'"),
        "kept@x.io"
    );
}

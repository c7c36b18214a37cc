//! What every reporting command prints, pinned byte for byte on both databases: the text
//! tables and the `--json` documents, with only the volatile parts (paths, database names,
//! durations, timestamps, server versions, generated ids) replaced by placeholders.
//!
//! A change to what an operator reads shows up here as a snapshot diff to review.

mod common;

use common::{before_head, head, run, tempdir, Db, Out, R1, R2};
use migrate_testkit::TestDb;
use std::path::Path;

/// One database of a kind, in its own directory, and what to scrub from its outputs.
struct Subject {
    db: Db,
    dir: tempfile::TempDir,
    scrub: Vec<(String, String)>,
}

impl Subject {
    fn new(postgres: bool) -> Subject {
        let dir = tempdir();
        let db = if postgres {
            Db::Postgres(TestDb::new())
        } else {
            Db::Sqlite(dir.path().join("identity.db"))
        };
        let mut scrub = vec![(db.url(), "<URL>".to_owned())];
        if let Db::Postgres(pg) = &db {
            scrub.push((pg.name().to_owned(), "<DB>".to_owned()));
        }
        scrub.push((dir.path().display().to_string(), "<DIR>".to_owned()));
        Subject { db, dir, scrub }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary on the database.
    fn run(&self, args: &[&str]) -> Out {
        let url = self.db.url();
        run(
            self.dir(),
            &[&["--database-url", url.as_str()], args].concat(),
        )
    }

    /// `$ identity-migrate ARGS`, its stdout, its error line and its exit code when not 0.
    fn transcript(&self, commands: &[&[&str]]) -> String {
        let mut text = String::new();
        for args in commands {
            let out = self.run(args);
            assert!(!out.all().contains("panicked"), "{out}");
            text.push_str(&format!("$ identity-migrate {}\n", args.join(" ")));
            text.push_str(&out.stdout);
            for line in out.stderr.lines().filter(|l| l.starts_with("error: ")) {
                text.push_str(line);
                text.push('\n');
            }
            if out.code != 0 {
                text.push_str(&format!("[exit {}]\n", out.code));
            }
            text.push('\n');
        }
        self.clean(&text)
    }

    /// A command's `--json` document, parsed (so that key order does not matter), its strings
    /// scrubbed, pretty-printed.
    fn json(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.code == 0 || out.code == 3, "{out}");
        let mut value: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
        self.clean_value(&mut value);
        format!(
            "$ identity-migrate {}\n[exit {}]\n{}\n",
            args.join(" "),
            out.code,
            serde_json::to_string_pretty(&value).expect("print JSON")
        )
    }

    fn clean_value(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.clean(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.clean_value(v)),
            serde_json::Value::Object(members) => {
                for (key, v) in members.iter_mut() {
                    match key.as_str() {
                        "duration_ms" if v.is_number() => *v = "<MS>".into(),
                        "detail" if v.as_str().is_some_and(|d| d.starts_with("PostgreSQL")) => {
                            *v = "<VERSION>".into()
                        }
                        _ => self.clean_value(v),
                    }
                }
            }
            _ => {}
        }
    }

    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (from, to) in &self.scrub {
            text = text.replace(from.as_str(), to);
        }
        let text = durations(&timestamps(&text));
        text.lines()
            .map(|line| match line.find("server    PostgreSQL") {
                Some(at) => format!("{}server    <VERSION>", &line[..at]),
                None => line.to_owned(),
            })
            .map(|line| line + "\n")
            .collect()
    }

    /// Gives every history row the same times, 12 ms apart, so that `list` is the same on every
    /// run, padding included.
    fn fix_history_times(&self) {
        self.db.execute(
            "UPDATE identity_migrate_history SET started_at = '2026-01-02 03:04:05Z', \
             finished_at = '2026-01-02 03:04:05.012Z'",
        );
    }
}

/// `2026-12-04T15:33:14Z` (and with fractions) as `<TIME>`.
fn timestamps(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let shape = "dddd-dd-ddTdd:dd:dd";
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let fits = chars.len() - i >= shape.len()
            && shape.chars().zip(&chars[i..]).all(|(s, c)| match s {
                'd' => c.is_ascii_digit(),
                s => s == *c,
            });
        if fits {
            out.push_str("<TIME>");
            i += shape.len();
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && chars[i] == 'Z' {
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `20261204_153345`, the stamp of a backup's default name, as `<STAMP>`.
fn stamps(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let fits = chars.len() - i >= 15
            && chars[i..i + 15].iter().enumerate().all(|(k, c)| {
                if k == 8 {
                    *c == '_'
                } else {
                    c.is_ascii_digit()
                }
            });
        if fits {
            out.push_str("<STAMP>");
            i += 15;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `12 ms`, `1.4 s` (a duration as `duration_text` writes it, ended by `)`, `;`, `,` or the
/// line) as `<DURATION>`.
fn durations(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let number_len = from
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(from.len());
        let after = &from[number_len..];
        let unit = [" ms", " s"].into_iter().find(|u| {
            after.starts_with(u)
                && after[u.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| matches!(c, ')' | ';' | ',' | '\n'))
        });
        let glued = before
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        match unit {
            Some(unit) if !glued => {
                out.push_str("<DURATION>");
                rest = &after[unit.len()..];
            }
            _ => {
                out.push_str(&from[..number_len]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn name(postgres: bool, what: &str) -> String {
    format!("{}_{what}", if postgres { "postgres" } else { "sqlite" })
}

/// A new database: nothing applied yet.
fn fresh(postgres: bool) {
    let s = Subject::new(postgres);
    let text = s.transcript(&[&["status"], &["list"], &["check"], &["verify"]]);
    insta::assert_snapshot!(name(postgres, "fresh"), text);
    let json = [
        s.json(&["status", "--json"]),
        s.json(&["list", "--json"]),
        s.json(&["check", "--json"]),
        s.json(&["verify", "--json"]),
    ]
    .concat();
    insta::assert_snapshot!(name(postgres, "fresh_json"), json);
}

/// Up in two moves, dry runs first, then everything that reads, then a rollback.
fn through_the_chain(postgres: bool) {
    let s = Subject::new(postgres);
    let text = s.transcript(&[
        &["migrate-to", R2, "--dry-run"],
        &["migrate-to", R2],
        &["migrate", "--dry-run"],
    ]);
    insta::assert_snapshot!(name(postgres, "up_dry_runs"), text);
    let text = s.transcript(&[&["migrate"], &["migrate"]]);
    insta::assert_snapshot!(name(postgres, "migrate"), text);
    s.fix_history_times();
    let text = s.transcript(&[
        &["status"],
        &["list"],
        &["history"],
        &["check"],
        &["verify"],
    ]);
    insta::assert_snapshot!(name(postgres, "at_head"), text);
    let json = [
        s.json(&["status", "--json"]),
        s.json(&["list", "--json"]),
        s.json(&["check", "--json"]),
        s.json(&["verify", "--json"]),
    ]
    .concat();
    insta::assert_snapshot!(name(postgres, "at_head_json"), json);
    let below = before_head();
    let text = s.transcript(&[
        &["rollback", &below, "--dry-run"],
        &["rollback", &below],
        &["migrate-to", &head()],
        &["rollback", R2, "--dry-run"],
    ]);
    insta::assert_snapshot!(name(postgres, "rollback"), text);
}

/// `generate-sql` from the database's revision, between two revisions, in both dialects.
fn generate_sql(postgres: bool) {
    let s = Subject::new(postgres);
    s.run(&["migrate-to", R2]).ok();
    let text = s.transcript(&[
        &["generate-sql", "--to", "+1"],
        &[
            "generate-sql",
            "--from",
            R1,
            "--to",
            R2,
            "--dialect",
            "postgres",
        ],
        &[
            "generate-sql",
            "--from",
            R2,
            "--to",
            R1,
            "--dialect",
            "sqlite",
        ],
    ]);
    insta::assert_snapshot!(name(postgres, "generate_sql"), text);
}

/// `revision` writes a file and says where.
#[test]
fn revision_says_what_it_wrote() {
    let dir = tempdir();
    let revisions = dir.path().join("revisions");
    std::fs::create_dir(&revisions).expect("mkdir");
    std::fs::write(
        revisions.join("mod.rs"),
        "// identity-migrate revision: new modules go above this line\nfn all() {\n    vec![\n        // identity-migrate revision: new revisions go above this line\n    ]\n}\n",
    )
    .expect("write mod.rs");
    let dir_arg = revisions.display().to_string();
    let out = run(
        dir.path(),
        &["revision", "-m", "Add a nickname", "--dir", &dir_arg],
    )
    .ok();
    let id = out
        .stdout
        .split("(revision ")
        .nth(1)
        .and_then(|rest| rest.get(..12))
        .expect("the new id")
        .to_owned();
    let text = out
        .stdout
        .replace(&id, "<ID>")
        .replace(&dir.path().display().to_string(), "<DIR>");
    insta::assert_snapshot!("revision", text);
}

/// `backup`, `backup verify` and `restore`, on a database at head with no rows.
fn backup_and_restore(postgres: bool) {
    let s = Subject::new(postgres);
    s.run(&["migrate"]).ok();
    let backup = s.dir().join("backup");
    let backup = backup.display().to_string();
    let text = s.transcript(&[
        &["backup", "--output", &backup],
        &["backup", "verify", &backup],
        &["restore", &backup],
        &["restore", &backup, "--yes"],
    ]);
    if let Db::Postgres(pg) = &s.db {
        // The replaced database is kept under another name: this test's to drop.
        let kept = common::strings(
            pg,
            &format!(
                "SELECT datname::text FROM pg_database WHERE datname LIKE '{}__before_%'",
                pg.name()
            ),
        );
        let mut admin = pg.client();
        for name in kept {
            admin
                .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                .expect("drop the kept database");
        }
    }
    // The size of an archive depends on the server's and pg_dump's version.
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("size ") {
                "size      <SIZE>".to_owned()
            } else {
                stamps(l)
            }
        })
        .map(|l| l + "\n")
        .collect();
    insta::assert_snapshot!(name(postgres, "backup"), text);
}

/// The field names of a JSON document, one path a line (an array's first element stands for
/// all of them): the shape every database must give.
fn shape(value: &serde_json::Value, at: &str, lines: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(members) => {
            for (key, v) in members {
                let path = format!("{at}.{key}");
                lines.push(path.clone());
                shape(v, &path, lines);
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(first) = items.iter().find(|v| v.is_object()) {
                shape(first, &format!("{at}[]"), lines);
            }
        }
        _ => {}
    }
}

/// Runs a `--json` command: exactly one line on stdout, a JSON document; its shape is
/// snapshotted under one name for both databases, so their field names cannot drift apart.
fn json_run(s: &Subject, args: &[&str], snapshot: &str) -> serde_json::Value {
    let out = s.run(args).ok();
    assert_eq!(out.stdout.lines().count(), 1, "one line of JSON:\n{out}");
    let value: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
    let mut lines = Vec::new();
    shape(&value, "", &mut lines);
    insta::assert_snapshot!(snapshot, lines.join("\n"));
    value
}

fn strings_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// `--json` of `migrate`, `migrate-to`, `rollback` and their dry runs: the plan or the steps
/// run, and where the database ended, as one document (no progress lines).
fn json_of_runs(postgres: bool) {
    let s = Subject::new(postgres);
    let plan = json_run(
        &s,
        &["migrate-to", R2, "--dry-run", "--json"],
        "json_dry_run",
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(strings_of(&plan["from"]), Vec::<String>::new());
    assert_eq!(strings_of(&plan["to"]), [R2]);
    assert_eq!(plan["database_missing"], !postgres);
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{plan}");
    assert_eq!(steps[0]["revision"], R1);
    assert_eq!(steps[1]["direction"], "up");
    assert!(!steps[1]["statements"]
        .as_array()
        .expect("statements")
        .is_empty());
    assert!(!plan["bootstrap"].as_array().expect("bootstrap").is_empty());
    assert!(
        !s.run(&["status", "--json"]).ok().stdout.contains(R1),
        "a dry run applies nothing"
    );

    let run = json_run(&s, &["migrate-to", R2, "--json"], "json_migration");
    assert_eq!(run["direction"], "up");
    assert_eq!(run["steps"].as_array().expect("steps").len(), 2);
    assert_eq!(run["steps"][1]["revision"], R2);
    assert_eq!(strings_of(&run["current"]), [R2]);
    assert_eq!(run["at_head"], false);
    assert_eq!(run["backup"], serde_json::Value::Null);

    let run = json_run(&s, &["migrate", "--json"], "json_migration");
    assert_eq!(strings_of(&run["current"]), [head()]);
    assert_eq!(run["at_head"], true);
    let nothing = json_run(&s, &["migrate", "--json"], "json_migration_nothing");
    assert_eq!(nothing["direction"], serde_json::Value::Null);
    assert_eq!(nothing["steps"].as_array().expect("steps").len(), 0);

    let back = json_run(&s, &["rollback", R2, "--dry-run", "--json"], "json_dry_run");
    assert_eq!(strings_of(&back["to"]), [R2]);
    assert!(back["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .all(|step| step["direction"] == "down"));
    let back = json_run(&s, &["rollback", R2, "--json"], "json_migration");
    assert_eq!(back["direction"], "down");
    assert_eq!(strings_of(&back["current"]), [R2]);
}

/// `--json` of `backup`, `backup verify` and `restore`: the same field names on both databases.
fn json_of_backups(postgres: bool) {
    let s = Subject::new(postgres);
    s.run(&["migrate"]).ok();
    let archive = s.dir().join("backup").display().to_string();
    let taken = json_run(
        &s,
        &["backup", "--output", &archive, "--json"],
        "json_backup",
    );
    assert_eq!(taken["backup"], archive.as_str());
    assert_eq!(strings_of(&taken["revisions"]), [head()]);
    assert!(taken["tables"].as_u64().expect("tables") > 0);
    assert_eq!(
        taken["format"],
        if postgres { "directory" } else { "sqlite" }
    );
    let verified = json_run(
        &s,
        &["backup", "verify", &archive, "--json"],
        "json_backup_verify",
    );
    assert_eq!(verified["intact"], true);
    assert_eq!(verified["tables"], taken["tables"]);
    // A SQLite copy is small enough to be decoded in full every time.
    assert_eq!(
        verified["depth"],
        if postgres {
            "table_of_contents"
        } else {
            "full_decode"
        }
    );
    let restored = json_run(
        &s,
        &["restore", &archive, "--yes", "--json"],
        "json_restore",
    );
    assert_eq!(strings_of(&restored["revisions"]), [head()]);
    assert_eq!(restored["tables"], taken["tables"]);
    assert_eq!(
        restored["method"],
        if postgres { "swap" } else { "in_place" }
    );
    if let Db::Postgres(pg) = &s.db {
        let kept = restored["previous_database"].as_str().expect("kept");
        assert!(kept.starts_with(pg.name()), "{restored}");
        pg.client()
            .batch_execute(&format!("DROP DATABASE \"{kept}\" WITH (FORCE)"))
            .expect("drop the kept database");
    } else {
        assert!(restored["safety_backup"].is_string(), "{restored}");
    }
}

/// `seed` (PostgreSQL only): its table of rows; the same seed gives the same rows.
#[test]
fn seed_reports_its_rows() {
    let s = Subject::new(true);
    s.run(&["migrate"]).ok();
    let text = s.transcript(&[&["seed", "--users", "10"]]);
    insta::assert_snapshot!("postgres_seed", text);
}

/// `revision --json` says what it wrote.
#[test]
fn revision_json() {
    let dir = tempdir();
    let revisions = dir.path().join("revisions");
    std::fs::create_dir(&revisions).expect("mkdir");
    std::fs::write(
        revisions.join("mod.rs"),
        "// identity-migrate revision: new modules go above this line\nfn all() {\n    vec![\n        // identity-migrate revision: new revisions go above this line\n    ]\n}\n",
    )
    .expect("write mod.rs");
    let dir_arg = revisions.display().to_string();
    let out = run(
        dir.path(),
        &[
            "revision",
            "-m",
            "Add a nickname",
            "--dir",
            &dir_arg,
            "--json",
        ],
    )
    .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let id = value["revision"].as_str().expect("an id");
    assert_eq!(id.len(), 12);
    assert_eq!(strings_of(&value["down_revisions"]), [head()]);
    assert_eq!(value["autogenerated"], false);
    let path = value["path"].as_str().expect("a path");
    assert!(std::fs::read_to_string(path)
        .expect("the file written")
        .contains(id));
    assert_eq!(
        value["registered_in"],
        revisions.join("mod.rs").display().to_string()
    );
}

macro_rules! both {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn postgres() {
                super::$scenario(true);
            }
            #[test]
            fn sqlite() {
                super::$scenario(false);
            }
        }
    };
}

both!(fresh);
both!(through_the_chain);
both!(generate_sql);
both!(backup_and_restore);
both!(json_of_runs);
both!(json_of_backups);

#[test]
fn scrubbing_keeps_what_is_not_volatile() {
    assert_eq!(
        durations("applied  x  Initial (12 ms)\nin 1.4 s; 7 step(s) 5 ms, r2_5 ms)"),
        "applied  x  Initial (<DURATION>)\nin <DURATION>; 7 step(s) <DURATION>, r2_5 ms)"
    );
    assert_eq!(
        timestamps("at 2026-12-04T15:33:14Z and 2026-12-04T15:33:14.123456Z."),
        "at <TIME> and <TIME>."
    );
    assert_eq!(
        stamps("db__before_20261204_153512\""),
        "db__before_<STAMP>\""
    );
}

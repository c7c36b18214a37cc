//! The environments of identity-migrate.toml together: `promote --from ENV --to ENV` on two
//! PostgreSQL databases and on two SQLite files, `status --all-environments`, and
//! `status --exit-code`.

mod common;

use common::{
    assert_one_error, command, head, output, parse_json, tempdir, Db, Json, JsonExt, Out, R1, R2,
};
use migrate_testkit::TestDb;
use std::fs;
use std::path::{Path, PathBuf};

/// A staging and a production database of one kind, named in `dir/identity-migrate.toml`,
/// each with its own backup directory.
struct Setup {
    dir: tempfile::TempDir,
    staging: Db,
    production: Db,
}

impl Setup {
    fn new(sqlite: bool) -> Setup {
        let dir = tempdir();
        let (staging, production) = if sqlite {
            (
                Db::Sqlite(dir.path().join("staging.db")),
                Db::Sqlite(dir.path().join("production.db")),
            )
        } else {
            (Db::Postgres(TestDb::new()), Db::Postgres(TestDb::new()))
        };
        let config = format!(
            "default_environment = \"staging\"\n\
             [environments.staging]\ndatabase_url = \"{}\"\nbackup_dir = \"{}\"\n\
             [environments.production]\ndatabase_url = \"{}\"\nbackup_dir = \"{}\"\n",
            staging.url(),
            dir.path().join("backups-staging").display(),
            production.url(),
            dir.path().join("backups-production").display(),
        );
        fs::write(dir.path().join("identity-migrate.toml"), config).expect("config");
        fs::create_dir_all(dir.path().join("backups-staging")).expect("mkdir");
        fs::create_dir_all(dir.path().join("backups-production")).expect("mkdir");
        Setup {
            dir,
            staging,
            production,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Out {
        output(command(self.path()).args(args))
    }

    /// Migrates one environment to `rev`.
    fn at(&self, env: &str, rev: &str) {
        self.run(&["--env", env, "migrate-to", rev]).ok();
    }

    /// The current revision of one environment.
    fn current(&self, env: &str) -> Vec<String> {
        let out = self.run(&["--env", env, "status", "--json"]).ok();
        parse_json(out.stdout.trim())
            .at("current")
            .items()
            .iter()
            .map(|c| c.at("revision").str().to_owned())
            .collect()
    }

    /// The backups written for production (archives, not their manifests).
    fn production_backups(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(self.path().join("backups-production"))
            .expect("backup dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().ends_with(".manifest.json"))
            .collect();
        found.sort();
        found
    }
}

fn on_both(body: impl Fn(&Setup)) {
    body(&Setup::new(true));
    body(&Setup::new(false));
}

#[test]
fn promote_applies_exactly_the_source_revision_after_a_verified_backup() {
    on_both(|s| {
        s.at("staging", R2);
        s.at("production", R1);
        let out = s
            .run(&["promote", "--from", "staging", "--to", "production"])
            .ok();
        assert_eq!(s.current("production"), [R2], "{out}");
        // Exactly the source's revision: not the head the binary knows.
        assert_ne!(R2, head());
        assert!(out.stdout.contains(&format!("applied  {R2}")), "{out}");
        assert!(out.stdout.contains("Promoted 1 revision(s)"), "{out}");

        // The backup came first, holds the state before the promotion, and verifies.
        let backup_line = out.stdout.lines().next().expect("a first line");
        assert!(
            backup_line.starts_with("backup ") && backup_line.ends_with("(verified)"),
            "{out}"
        );
        let backups = s.production_backups();
        assert_eq!(backups.len(), 1, "{backups:?}");
        let manifest = migrate_backup_manifest(&backups[0]);
        assert_eq!(
            manifest.at("revisions").items(),
            &[Json::String(R1.to_owned())]
        );
        let path = backups[0].to_string_lossy().into_owned();
        s.run(&["--env", "production", "backup", "verify", &path])
            .ok();

        // Again: nothing to do, and no second backup.
        let out = s
            .run(&[
                "promote",
                "--from",
                "staging",
                "--to",
                "production",
                "--json",
            ])
            .ok();
        let v = parse_json(out.stdout.trim());
        assert_eq!(v.at("applied").items(), &[] as &[Json], "{out}");
        assert_eq!(v.at("backup"), &Json::Null, "{out}");
        assert_eq!(s.production_backups().len(), 1);

        // The source moves on; --no-backup and --dry-run do what they say.
        s.at("staging", "head");
        let out = s
            .run(&[
                "promote",
                "--from",
                "staging",
                "--to",
                "production",
                "--dry-run",
            ])
            .ok();
        assert!(out.stdout.contains("Dry run"), "{out}");
        assert_eq!(s.current("production"), [R2]);
        let out = s
            .run(&[
                "promote",
                "--from",
                "staging",
                "--to",
                "production",
                "--no-backup",
                "--json",
            ])
            .ok();
        let v = parse_json(out.stdout.trim());
        assert_eq!(v.at("to").at("after").items(), &[Json::String(head())]);
        assert_eq!(s.current("production"), [head()]);
        assert_eq!(s.production_backups().len(), 1, "--no-backup took none");
    });
}

/// The manifest next to a backup archive.
fn migrate_backup_manifest(archive: &Path) -> Json {
    let mut name = archive.file_name().expect("name").to_os_string();
    name.push(".manifest.json");
    let text = fs::read_to_string(archive.with_file_name(name)).expect("manifest");
    parse_json(&text)
}

/// Asserts a refusal: exit 3, one error line, production still at `rev`, no backup taken.
#[track_caller]
fn assert_refused(s: &Setup, out: &Out, production_at: &[String], says: &str) {
    let line = assert_one_error(out, 3);
    assert!(line.contains(says), "{line}");
    assert!(line.contains("nothing was promoted"), "{line}");
    assert_eq!(s.current("production"), production_at);
    assert_eq!(s.production_backups(), Vec::<PathBuf>::new());
}

#[test]
fn promote_refuses_a_drifted_source() {
    on_both(|s| {
        s.at("staging", R2);
        s.at("production", R1);
        s.staging
            .execute("CREATE TABLE hand_made (id INTEGER PRIMARY KEY)");
        let out = s.run(&[
            "--quiet",
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
        ]);
        assert_refused(s, &out, &[R1.to_owned()], "source staging");
        assert!(out.stderr.contains("is not clean"), "{out}");
    });
}

#[test]
fn promote_refuses_a_source_behind_the_target() {
    on_both(|s| {
        s.at("staging", R1);
        s.at("production", R2);
        let out = s.run(&[
            "--quiet",
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
        ]);
        assert_refused(s, &out, &[R2.to_owned()], "is behind target production");
        assert!(out.stderr.contains(R2), "{out}");
    });
}

#[test]
fn promote_refuses_a_target_with_a_revision_the_source_lacks() {
    on_both(|s| {
        s.at("staging", "head");
        s.at("production", "head");
        s.production
            .execute("UPDATE alembic_version SET version_num = 'fedcba987654'");
        let out = s.run(&[
            "--quiet",
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
        ]);
        let line = assert_one_error(&out, 3);
        assert!(line.contains("fedcba987654"), "{line}");
        assert!(line.contains("the source lacks it"), "{line}");
        assert_eq!(s.production_backups(), Vec::<PathBuf>::new());
    });
}

#[test]
fn promote_refuses_bad_input() {
    let s = Setup::new(true);
    for (args, says) in [
        (
            vec!["promote", "--from", "staging", "--to", "staging"],
            "both name",
        ),
        (
            vec!["promote", "--from", "staging", "--to", "qa"],
            "\"qa\" is not in identity-migrate.toml",
        ),
        (
            vec![
                "--database-url",
                "sqlite:///x.db",
                "promote",
                "--from",
                "staging",
                "--to",
                "production",
            ],
            "drop --database-url",
        ),
    ] {
        let out = s.run(&args);
        let line = assert_one_error(&out, 2);
        assert!(line.contains(says), "{args:?}: {line}");
    }
}

#[test]
fn status_of_all_environments_in_one_table() {
    on_both(|s| {
        s.at("staging", "head");
        s.at("production", R1);
        let out = s.run(&["status", "--all-environments"]).ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ENVIRONMENT"), "{out}");
        assert!(
            lines[1].starts_with("production") && lines[1].contains(R1),
            "{out}"
        );
        assert!(lines[1].contains("pending"), "{out}");
        assert!(
            lines[2].starts_with("staging") && lines[2].contains("up to date"),
            "{out}"
        );

        let out = s.run(&["status", "--all-environments", "--json"]).ok();
        let v = parse_json(out.stdout.trim());
        let names: Vec<&str> = v
            .items()
            .iter()
            .map(|e| e.at("environment").str())
            .collect();
        assert_eq!(names, ["production", "staging"]);
        assert_eq!(v.items()[1].at("at_head"), &Json::Bool(true));

        let out = s.run(&["--quiet", "status", "--all-environments", "--exit-code"]);
        assert_eq!(out.code, 4, "{out}");
        assert!(out.stderr.contains("pending in production"), "{out}");
    });
}

#[test]
fn status_of_all_environments_reports_one_that_cannot_be_read() {
    let dir = tempdir();
    let db = TestDb::new();
    fs::write(
        dir.path().join("identity-migrate.toml"),
        format!(
            "[environments.good]\ndatabase_url = \"{}\"\n\
             [environments.down]\ndatabase_url = \"postgresql://postgres:pw-canary-3@127.0.0.1:1/x\"\n",
            db.url()
        ),
    )
    .expect("config");
    let out = output(command(dir.path()).args(["status", "--all-environments"]));
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("good") && out.stdout.contains("error:"),
        "{out}"
    );
    assert!(!out.all().contains("pw-canary-3"), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
}

#[test]
fn status_exit_code_is_0_at_head_and_4_with_pending_revisions() {
    let dir = tempdir();
    let db = TestDb::new();
    let url = db.url();
    let run = |args: &[&str]| {
        output(
            command(dir.path())
                .args(["--database-url", &url])
                .args(args),
        )
    };
    let out = run(&["status", "--exit-code"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stdout.contains("pending"),
        "the status is printed too: {out}"
    );
    run(&["migrate-to", R2]).ok();
    assert_eq!(run(&["status", "--exit-code", "--json"]).code, 4);
    run(&["migrate"]).ok();
    run(&["status", "--exit-code"]).ok();
    run(&["status", "--exit-code", "--json"]).ok();
    // Without the flag, pending revisions are not a failure.
    run(&["rollback", R2]).ok();
    run(&["status"]).ok();
}

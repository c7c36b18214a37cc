//! `backup`, `backup verify`, `restore` and `migrate --backup` against a real PostgreSQL server,
//! through the binary: round trips in every format compared table by table, tampered archives
//! refused without touching the target, failing restores that change nothing, private files
//! whatever the umask, and no password on any child's command line.

mod common;

use common::{
    assert_one_error, assert_one_error_line, db_at, execute, output, relations, run, run_db,
    snapshot, tempdir, version, Out, R1, R2,
};
use migrate_backup::Manifest;
use migrate_testkit::archive::{
    biggest_data_file, connect_to, content_of, copy_backup, databases_beside, find, listing,
    manifest_of, overwrite, overwrite_keeping_lines, rewrite_hashes, size, truncate, DropDatabases,
};
use migrate_testkit::{auth_server, TestDb};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FAILURE: i32 = 1;
const BAD_INPUT: i32 = 2;
const FORMATS: [&str; 3] = ["custom", "directory", "plain"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The binary run by `sh` under `umask 000`, in `dir`, with the same clean environment as
/// `common::command` (no DATABASE_URL, no PG*, HOME = dir, no .env).
fn umask0(dir: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_identity-migrate"))
        .arg("--no-dotenv")
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            c.env_remove(name);
        }
    }
    c
}

/// Runs the binary under `umask 000` against `db`.
fn run_db_umask0(dir: &Path, db: &TestDb, args: &[&str]) -> Out {
    let url = db.url();
    output(umask0(dir).args(["--database-url", &url]).args(args))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read_manifest(archive: &Path) -> Manifest {
    let text = std::fs::read_to_string(manifest_of(archive)).expect("read the manifest");
    Manifest::from_json(&text).expect("parse the manifest")
}

fn write_manifest(archive: &Path, manifest: &Manifest) {
    std::fs::write(manifest_of(archive), manifest.to_json()).expect("write the manifest");
}

/// The content fingerprint of `db` (see [`content_of`]).
fn content(db: &TestDb) -> BTreeMap<String, String> {
    content_of(&mut db.client())
}

/// Everything a restore could change: the schema (describe_schema), the tool's tables, every
/// relation, and the content checksums.
fn state(db: &TestDb) -> String {
    format!("{}\n{:#?}", snapshot(db), content(db))
}

/// A database at head, migrated by the binary, holding an organization, 3000 users and their
/// sessions, with unicode, tabs, newlines, carriage returns, backslashes, `\N` and `\.` lookalikes,
/// empty strings and NULLs in text columns.
fn seeded(dir: &Path) -> TestDb {
    // The hand-written rows below use values (organization types, statuses) that the hardening
    // revisions' CHECK constraints refuse: they are data of the 68d314520251 schema.
    let db = db_at(dir, "68d314520251");
    execute(&db, SEED);
    db
}

const SEED: &str = r#"
INSERT INTO organizations (id, name, slug, display_name, description, website_url,
    organization_type, subscription_tier, subscription_status, settings, is_active, is_verified,
    created_at, updated_at, deleted_at)
VALUES
  ('00000000-0000-4000-8000-000000000001', 'Zoë & Søn — 日本語 🚀', 'zoe-son', NULL,
   E'line one\nline two\twith a tab, a backslash \\ and \\N and a lone\n\\.\nend', NULL,
   'company', 'pro', 'active', '{"k": "v\\twith\\nescapes", "emoji": "🎉", "n": null}',
   true, false, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', NULL),
  ('00000000-0000-4000-8000-000000000002', E'tab\there', 'tabbed', '', E'\\.', E'C:\\path\\',
   'nonprofit', 'free', 'trial', '{}', false, true, '2023-12-31 23:59:59.999999',
   '2024-02-29 12:00:00', '2024-03-01 00:00:00');

INSERT INTO users (id, email, username, password_hash, first_name, last_name, display_name, bio,
    phone_number, language_code, timezone, theme_preference, notification_preferences,
    privacy_settings, status, is_verified, is_active, failed_login_attempts, organization_id,
    created_at, updated_at, deleted_at)
SELECT md5('user' || i)::uuid,
       'user' || i || '@example.com',
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'user_' || i END,
       '$argon2id$v=19$m=65536,t=3,p=4$' || md5(i::text),
       CASE i % 5 WHEN 0 THEN 'José' WHEN 1 THEN 'Zoë' WHEN 2 THEN '李' WHEN 3 THEN E'O\'Brien' ELSE NULL END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'Ñoño-' || i END,
       CASE WHEN i % 11 = 0 THEN '' ELSE NULL END,
       CASE i % 6
         WHEN 0 THEN NULL
         WHEN 1 THEN E'multi\nline\r\nbio\twith tab ' || i
         WHEN 2 THEN E'back\\slash \\N \\. ' || i
         WHEN 3 THEN E'\\.'
         WHEN 4 THEN E'a\n\\.\nb'
         ELSE '😀 emoji ' || repeat('x', i % 300)
       END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE '+49 30 ' || i END,
       'en', 'Europe/Berlin', 'dark',
       json_build_object('email', i % 2 = 0, 'note', E'q"uote\\'),
       '{}',
       CASE WHEN i % 10 = 0 THEN 'suspended' ELSE 'active' END,
       i % 2 = 0, true, i % 4,
       CASE WHEN i % 2 = 0 THEN '00000000-0000-4000-8000-000000000001'::uuid
            WHEN i % 5 = 0 THEN '00000000-0000-4000-8000-000000000002'::uuid END,
       timestamp '2024-01-01' + i * interval '1 minute',
       timestamp '2024-06-01' + i * interval '1 second',
       CASE WHEN i % 13 = 0 THEN timestamp '2024-07-01' END
FROM generate_series(1, 3000) AS i;

INSERT INTO user_sessions (id, user_id, session_token_hash, refresh_token_hash, device_info,
    ip_address, user_agent, location_info, is_active, expires_at, last_accessed_at, created_at)
SELECT md5('session' || i)::uuid, md5('user' || (i % 3000 + 1))::uuid, md5('token' || i),
       CASE WHEN i % 3 = 0 THEN NULL ELSE md5('refresh' || i) END,
       json_build_object('device', E'Pixel\t8', 'os', 'Android'),
       CASE WHEN i % 2 = 0 THEN '2001:db8::' || to_hex(i) ELSE NULL END,
       E'Mozilla/5.0 (X11; Linux x86_64)\\ "quoted"',
       '{"city": "Köln"}', i % 5 <> 0,
       timestamp '2025-01-01' + i * interval '1 hour', timestamp '2024-12-01',
       timestamp '2024-11-01'
FROM generate_series(1, 1500) AS i;
"#;

/// Backs `db` up under umask 000 with `--output dir/<name>` in `format`; checks it is private.
fn backup_to(dir: &Path, db: &TestDb, name: &str, format: &str) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_string_lossy().into_owned();
    let out = run_db_umask0(dir, db, &["backup", "--format", format, "--output", &p]).ok();
    assert!(out.stdout.contains("verified"), "{out}");
    assert_private(&path);
    path
}

/// The archive and its manifest are 0600 (a directory archive 0700 with 0600 files).
#[track_caller]
fn assert_private(archive: &Path) {
    if archive.is_dir() {
        assert_eq!(mode(archive), 0o700, "{}", archive.display());
        let files = listing(archive);
        assert!(!files.is_empty(), "{}", archive.display());
        for f in files {
            let p = archive.join(f);
            assert!(p.is_file(), "{}", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    } else {
        assert_eq!(mode(archive), 0o600, "{}", archive.display());
    }
    assert_eq!(
        mode(&manifest_of(archive)),
        0o600,
        "manifest of {}",
        archive.display()
    );
}

/// The middle of the users' COPY block of a plain script.
fn middle_of_users_data(script: &Path) -> u64 {
    let start = find(script, "COPY public.users ", 0);
    let end = find(script, "\n\\.\n", start);
    u64::try_from(start + (end - start) / 2).expect("offset")
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn round_trip(format: &str) {
    let dir = tempdir();
    let source = seeded(dir.path());
    let before = state(&source);
    assert!(before.contains("table public.users\": \"3000 "), "{before}");
    let archive = backup_to(dir.path(), &source, &format!("b_{format}"), format);
    let m = read_manifest(&archive);
    assert_eq!(m.format, format);
    assert_eq!(m.revisions, [R2]);
    assert_eq!(m.tables.get("public.users"), Some(&3000));
    assert_eq!(m.tables.get("public.user_sessions"), Some(&1500));
    assert_eq!(m.tables.get("public.alembic_version"), Some(&1));
    assert_eq!(m.tables.get("public.identity_migrate_history"), Some(&2));

    let p = archive.to_string_lossy().into_owned();
    let out = run(dir.path(), &["backup", "verify", &p]).ok();
    assert!(out.stdout.contains("intact"), "{out}");
    let out = run(dir.path(), &["backup", "verify", "--full", &p]).ok();
    assert!(out.stdout.contains("data digest matching"), "{out}");

    let target = TestDb::new();
    let out = run_db(dir.path(), &target, &["restore", &p]).ok();
    assert!(out.stdout.contains("matching the manifest"), "{out}");
    assert!(out.stdout.contains("swapped in atomically"), "{out}");
    assert_eq!(databases_beside(&target), Vec::<String>::new(), "{out}");
    assert!(out.stdout.contains(R2), "{out}");
    assert_eq!(state(&target), before, "restored {format} backup differs");
    // The source is untouched by its backup.
    assert_eq!(state(&source), before);
}

#[test]
fn custom_backup_restores_identical_content() {
    round_trip("custom");
}

#[test]
fn directory_backup_restores_identical_content() {
    round_trip("directory");
}

#[test]
fn plain_backup_restores_identical_content() {
    round_trip("plain");
}

#[test]
fn files_are_private_under_umask_000() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    execute(
        &db,
        "INSERT INTO users_simple (id, email, password_hash) \
         VALUES ('00000000-0000-4000-8000-0000000000aa', 'a@example.com', 'h')",
    );
    // --output in every format (checked by backup_to), and the default name in --backup-dir.
    for format in FORMATS {
        backup_to(dir.path(), &db, &format!("out_{format}"), format);
    }
    let bdir = dir.path().join("backups");
    std::fs::create_dir(&bdir).expect("create the backup dir");
    let b = bdir.to_string_lossy().into_owned();
    let out = run_db_umask0(dir.path(), &db, &["--backup-dir", &b, "backup"]).ok();
    let names = listing(&bdir);
    assert_eq!(names.len(), 2, "{names:?}\n{out}");
    let archive = bdir.join(&names[0]);
    // The default format is a directory, named without an extension.
    assert!(
        names[0].starts_with("identity_service_backup_") && !names[0].contains('.'),
        "{names:?}"
    );
    assert!(archive.is_dir(), "{names:?}");
    assert_eq!(names[1], format!("{}.manifest.json", names[0]));
    assert_private(&archive);
    // What the umask alone gives: these modes are the tool's doing.
    let shell = Command::new("sh")
        .args(["-c", "umask 000; touch probe; stat -c %a probe"])
        .current_dir(dir.path())
        .output()
        .expect("run sh");
    assert_eq!(String::from_utf8_lossy(&shell.stdout).trim(), "666");
}

// ---------------------------------------------------------------------------------------------
// Tampered archives
// ---------------------------------------------------------------------------------------------

/// Every tampered copy of `good` (its manifest edited, missing, or another backup's; its bytes
/// cut or overwritten), each in its own directory under `work`.
fn tampered(good: &Path, other: &Path, work: &Path) -> Vec<(String, PathBuf)> {
    let mut cases = Vec::new();
    let mut case = |label: String, edit: &dyn Fn(&Path)| {
        let copy = copy_backup(good, &work.join(format!("case{}", cases.len())));
        edit(&copy);
        cases.push((label, copy));
    };
    case("manifest: users row count edited".into(), &|a| {
        let mut m = read_manifest(a);
        *m.tables.get_mut("public.users").expect("users") += 1;
        write_manifest(a, &m);
    });
    case("manifest: a row count removed".into(), &|a| {
        let mut m = read_manifest(a);
        m.tables.remove("public.user_sessions");
        write_manifest(a, &m);
    });
    case("manifest: sha256 edited".into(), &|a| {
        let mut m = read_manifest(a);
        let last = m.files.last_mut().expect("a file");
        let flipped = if last.sha256.starts_with('0') {
            "1"
        } else {
            "0"
        };
        last.sha256.replace_range(0..1, flipped);
        write_manifest(a, &m);
    });
    case("manifest: missing".into(), &|a| {
        std::fs::remove_file(manifest_of(a)).expect("remove the manifest");
    });
    case("manifest: not JSON".into(), &|a| {
        std::fs::write(manifest_of(a), "{\"format_version\": 1,").expect("write");
    });
    case("manifest: another backup's".into(), &|a| {
        std::fs::copy(manifest_of(other), manifest_of(a)).expect("copy the other manifest");
    });
    let data_file = |a: &Path| {
        if a.is_dir() {
            biggest_data_file(a)
        } else {
            a.to_owned()
        }
    };
    for (label, cut) in [
        ("empty", 0.0),
        ("100 bytes", -100.0),
        ("half", 0.5),
        ("size - 1", -1.0),
    ] {
        case(format!("truncated: {label}"), &|a| {
            let f = data_file(a);
            let n = size(&f);
            let len = if cut == -100.0 {
                100.min(n)
            } else if cut == -1.0 {
                n - 1
            } else {
                // A fraction of a file's length: between 0 and the length.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let at = (n as f64 * cut) as u64;
                at
            };
            truncate(&f, len);
        });
    }
    case("overwritten in the middle".into(), &|a| {
        let f = data_file(a);
        overwrite(&f, size(&f) / 2, 64);
    });
    if good.is_dir() {
        case("directory: toc.dat truncated to half".into(), &|a| {
            let toc = a.join("toc.dat");
            truncate(&toc, size(&toc) / 2);
        });
        case("directory: a data file missing".into(), &|a| {
            std::fs::remove_file(biggest_data_file(a)).expect("remove");
        });
        case("directory: an extra file".into(), &|a| {
            std::fs::write(a.join("9999.dat.gz"), b"").expect("write");
        });
    }
    cases
}

/// Every tampered copy of a backup in `format` is refused by `backup verify` (exit 1, one
/// error line) and by `restore`, into a fresh database (which keeps no table) and, with
/// `--yes`, into the database it came from (which stays exactly as it was, with no safety
/// backup taken).
fn tampered_archives_are_refused(format: &str) {
    let dir = tempdir();
    let source = seeded(dir.path());
    let good = backup_to(dir.path(), &source, &format!("good_{format}"), format);
    execute(
        &source,
        "UPDATE organizations SET description = 'changed after the first backup'",
    );
    let other = backup_to(dir.path(), &source, &format!("other_{format}"), format);
    let before = state(&source);
    let fresh = TestDb::new();
    let safety = dir.path().join("safety");
    std::fs::create_dir(&safety).expect("create the safety dir");
    let s = safety.to_string_lossy().into_owned();

    let cases = tampered(&good, &other, &dir.path().join("cases"));
    for (label, archive) in &cases {
        let p = archive.to_string_lossy().into_owned();
        let out = run(dir.path(), &["backup", "verify", "--full", &p]);
        let line = assert_one_error(&out, FAILURE);
        eprintln!("{format} {label}: verify --full: {line}");
        let out = run(dir.path(), &["backup", "verify", &p]);
        if label == "manifest: users row count edited" && format != "plain" {
            // The fast check trusts the counts decoded when the bytes it pins were written;
            // an edited count takes --full (or a restore) to find.
            assert_eq!(out.code, 0, "{out}");
        } else {
            assert_one_error(&out, FAILURE);
        }

        let out = run_db(dir.path(), &fresh, &["restore", &p]);
        assert_one_error(&out, FAILURE);
        assert_eq!(
            relations(&fresh),
            Vec::<String>::new(),
            "{format} {label}: restore into a fresh database left something: {out}"
        );

        let out = run_db(
            dir.path(),
            &source,
            &["--backup-dir", &s, "restore", "--yes", &p],
        );
        assert_one_error(&out, FAILURE);
        assert_eq!(
            state(&source),
            before,
            "{format} {label}: restore --yes changed the target"
        );
        assert_eq!(
            listing(&safety),
            Vec::<String>::new(),
            "{format} {label}: a refused archive must not even take a safety backup"
        );
        assert_eq!(databases_beside(&source), Vec::<String>::new(), "{label}");
        assert_eq!(databases_beside(&fresh), Vec::<String>::new(), "{label}");
    }
    // The untouched original is still good: the refusals were about the tampering.
    let p = good.to_string_lossy().into_owned();
    run(dir.path(), &["backup", "verify", &p]).ok();
}

#[test]
fn tampered_custom_archives_are_refused_and_change_nothing() {
    tampered_archives_are_refused("custom");
}

#[test]
fn tampered_directory_archives_are_refused_and_change_nothing() {
    tampered_archives_are_refused("directory");
}

#[test]
fn tampered_plain_archives_are_refused_and_change_nothing() {
    tampered_archives_are_refused("plain");
}

/// A labelled edit of a copied archive.
type Case<'a> = (&'a str, &'a dyn Fn(&Path));

/// Corrupts the archive AND rewrites the manifest's sizes and SHA-256s to match: `verify` and
/// `restore` can only rely on the full read and the row counts. `cases` edits the copy.
fn corrupt_with_matching_manifest(format: &str, cases: &[Case]) {
    let dir = tempdir();
    let source = seeded(dir.path());
    let good = backup_to(dir.path(), &source, &format!("good_{format}"), format);
    let fresh = TestDb::new();
    let mut passed = Vec::new();
    for (i, (label, edit)) in cases.iter().enumerate() {
        let copy = copy_backup(&good, &dir.path().join(format!("case{i}")));
        edit(&copy);
        rewrite_hashes(&copy);
        let p = copy.to_string_lossy().into_owned();
        let out = run(dir.path(), &["backup", "verify", "--full", &p]);
        if out.code == 0 {
            passed.push(format!("{label}: verify --full said {}", out.stdout.trim()));
        } else {
            let line = assert_one_error(&out, FAILURE);
            eprintln!("{format} {label}: {line}");
        }
        let out = run_db(dir.path(), &fresh, &["restore", &p]);
        if out.code == 0 {
            passed.push(format!("{label}: restore succeeded: {}", out.stdout.trim()));
            // Start again from an empty database for the next case.
            execute(&fresh, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        } else {
            assert_one_error_line(&out);
            assert_eq!(relations(&fresh), Vec::<String>::new(), "{label}: {out}");
            assert_eq!(databases_beside(&fresh), Vec::<String>::new(), "{label}");
        }
    }
    assert!(
        passed.is_empty(),
        "{format}: corrupted archives with a matching manifest were accepted:\n{}",
        passed.join("\n")
    );
}

#[test]
fn corrupt_custom_archive_with_a_matching_manifest_is_refused() {
    corrupt_with_matching_manifest(
        "custom",
        &[
            ("truncated to 100 bytes", &|a| truncate(a, 100)),
            ("truncated to half", &|a| truncate(a, size(a) / 2)),
            ("truncated by one byte", &|a| truncate(a, size(a) - 1)),
            ("overwritten at 3/4 (users' data)", &|a| {
                overwrite(a, size(a) * 3 / 4, 64)
            }),
            ("overwritten in the middle", &|a| {
                overwrite(a, size(a) / 2, 64)
            }),
        ],
    );
}

#[test]
fn corrupt_directory_archive_with_a_matching_manifest_is_refused() {
    corrupt_with_matching_manifest(
        "directory",
        &[
            ("users' data truncated to half", &|a| {
                let f = biggest_data_file(a);
                truncate(&f, size(&f) / 2)
            }),
            // Uncompressed, the last byte is a blank line after the end marker: cutting into the
            // data itself takes a few more.
            ("users' data truncated by ten bytes", &|a| {
                let f = biggest_data_file(a);
                truncate(&f, size(&f) - 10)
            }),
            ("users' data overwritten in the middle", &|a| {
                let f = biggest_data_file(a);
                overwrite(&f, size(&f) / 2, 64)
            }),
            ("toc.dat truncated to half", &|a| {
                let toc = a.join("toc.dat");
                truncate(&toc, size(&toc) / 2)
            }),
        ],
    );
}

#[test]
fn corrupt_plain_archive_cut_inside_data_with_a_matching_manifest_is_refused() {
    corrupt_with_matching_manifest(
        "plain",
        &[
            ("truncated to 100 bytes", &|a| truncate(a, 100)),
            ("truncated inside the users' data", &|a| {
                truncate(a, middle_of_users_data(a))
            }),
        ],
    );
}

#[test]
fn corrupt_plain_archive_with_a_matching_manifest_is_refused() {
    corrupt_with_matching_manifest(
        "plain",
        &[
            // A cut between statements: the last foreign key and pg_dump's trailer are lost,
            // and the restore "succeeds" without that constraint.
            ("cut before the last ALTER TABLE (a foreign key)", &|a| {
                let bytes = std::fs::read(a).expect("read");
                let text = String::from_utf8_lossy(&bytes);
                let last = text.rfind("ALTER TABLE ONLY").expect("an ALTER TABLE");
                truncate(a, u64::try_from(last).expect("offset"))
            }),
            ("overwritten in the middle of the users' data", &|a| {
                overwrite_keeping_lines(a, middle_of_users_data(a), 64)
            }),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Failing restores, non-empty targets
// ---------------------------------------------------------------------------------------------

/// A restore that fails late, after every table is loaded and indexed: the archive grants a
/// privilege to a role that no longer exists, and pg_restore applies grants last. Into a fresh
/// database and over a database that holds tables, swapped or in place, in every format: the
/// target stays exactly as it was and no scratch database is left behind.
#[test]
fn a_restore_failing_after_the_data_is_loaded_changes_nothing() {
    let dir = tempdir();
    let source = seeded(dir.path());
    let role = format!("{}_gone", source.name());
    execute(
        &source,
        &format!("CREATE ROLE {role}; GRANT SELECT ON users TO {role}"),
    );
    let archives: Vec<(&str, PathBuf)> = FORMATS
        .iter()
        .map(|f| (*f, backup_to(dir.path(), &source, &format!("b_{f}"), f)))
        .collect();
    execute(
        &source,
        &format!("REVOKE ALL ON users FROM {role}; DROP ROLE {role}"),
    );
    let fresh = TestDb::new();
    let full = seeded(dir.path());
    let full_before = state(&full);
    let safety = dir.path().join("safety");
    std::fs::create_dir(&safety).expect("create the safety dir");
    let s = safety.to_string_lossy().into_owned();
    for (format, archive) in &archives {
        let p = archive.to_string_lossy().into_owned();
        for how in [&["restore"][..], &["restore", "--in-place"][..]] {
            let args: Vec<&str> = how.iter().copied().chain([p.as_str()]).collect();
            let out = run_db(dir.path(), &fresh, &args);
            let line = assert_one_error(&out, FAILURE);
            assert!(line.contains(&role), "{format} {how:?}: {out}");
            assert_eq!(relations(&fresh), Vec::<String>::new(), "{format} {how:?}");
            assert_eq!(databases_beside(&fresh), Vec::<String>::new(), "{format}");

            let args: Vec<&str> = ["--backup-dir", &s]
                .into_iter()
                .chain(how.iter().copied())
                .chain(["--yes", p.as_str()])
                .collect();
            let out = run_db(dir.path(), &full, &args);
            let line = assert_one_error(&out, FAILURE);
            assert!(line.contains(&role), "{format} {how:?} --yes: {out}");
            assert_eq!(state(&full), full_before, "{format} {how:?} --yes");
            assert_eq!(databases_beside(&full), Vec::<String>::new(), "{format}");
        }
    }
}

/// A database that holds tables is refused without `--yes` (exit 2, nothing changed). With
/// `--yes` the restore gives exactly the backup's content, and the previous database is kept,
/// renamed, with its content; in place (`--in-place`, umask 000) a private, verified safety
/// backup of the previous content is written into the backup dir instead.
fn replace_needs_yes(format: &str, in_place: bool) {
    let dir = tempdir();
    let source = seeded(dir.path());
    let archive = backup_to(dir.path(), &source, &format!("b_{format}"), format);
    let at_backup = state(&source);
    // The database moves on after its backup.
    execute(
        &source,
        "DELETE FROM user_sessions WHERE is_active; \
         UPDATE users SET bio = E'changed\\tlater' WHERE status = 'suspended'; \
         INSERT INTO organizations (id, name, slug, organization_type, subscription_tier, \
           subscription_status, settings, is_active, is_verified, created_at, updated_at) \
         VALUES ('00000000-0000-4000-8000-0000000000ff', 'Later', 'later', 'company', 'free', \
           'active', '{}', true, true, now(), now())",
    );
    let previous = state(&source);
    let previous_content = content(&source);
    assert_ne!(previous, at_backup);
    let safety = dir.path().join("safety");
    std::fs::create_dir(&safety).expect("create the safety dir");
    let s = safety.to_string_lossy().into_owned();
    let p = archive.to_string_lossy().into_owned();
    let mode: &[&str] = if in_place { &["--in-place"] } else { &[] };

    let args: Vec<&str> = ["--backup-dir", &s, "restore"]
        .into_iter()
        .chain(mode.iter().copied())
        .chain([p.as_str()])
        .collect();
    let out = run_db_umask0(dir.path(), &source, &args);
    let line = assert_one_error(&out, BAD_INPUT);
    assert!(line.contains("--yes"), "{out}");
    assert_eq!(state(&source), previous, "refused, yet changed");
    assert_eq!(listing(&safety), Vec::<String>::new());

    let args: Vec<&str> = ["--backup-dir", &s, "restore", "--yes"]
        .into_iter()
        .chain(mode.iter().copied())
        .chain([p.as_str()])
        .collect();
    let out = run_db_umask0(dir.path(), &source, &args).ok();
    assert_eq!(
        state(&source),
        at_backup,
        "{format}: restored content differs"
    );
    if !in_place {
        let kept = databases_beside(&source);
        let _cleanup = DropDatabases(&source, kept.clone());
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            kept[0].starts_with(&format!("{}__before_", source.name())),
            "{kept:?}"
        );
        assert!(
            out.stdout
                .contains(&format!("previous database kept as {}", kept[0])),
            "{out}"
        );
        assert_eq!(
            listing(&safety),
            Vec::<String>::new(),
            "no safety backup file: {out}"
        );
        let mut client = connect_to(&source, &kept[0]);
        assert_eq!(
            content_of(&mut client),
            previous_content,
            "the previous database lost something"
        );
        return;
    }
    assert!(
        out.stdout.contains("safety backup of the previous content"),
        "{out}"
    );
    let names = listing(&safety);
    assert_eq!(
        names.len(),
        2,
        "a safety backup and its manifest: {names:?}"
    );
    let safety_archive = safety.join(&names[0]);
    assert!(names[0].ends_with(".dump"), "{names:?}");
    assert!(out.stdout.contains(&names[0]), "{out}");
    assert_private(&safety_archive);
    let sp = safety_archive.to_string_lossy().into_owned();
    run(dir.path(), &["backup", "verify", "--full", &sp]).ok();
    // It holds the previous content, exactly.
    let check = TestDb::new();
    run_db(dir.path(), &check, &["restore", &sp]).ok();
    assert_eq!(state(&check), previous, "the safety backup lost something");
}

#[test]
fn replacing_needs_yes_and_keeps_the_previous_database_custom() {
    replace_needs_yes("custom", false);
}

#[test]
fn replacing_needs_yes_and_keeps_the_previous_database_directory() {
    replace_needs_yes("directory", false);
}

#[test]
fn replacing_needs_yes_and_keeps_the_previous_database_plain() {
    replace_needs_yes("plain", false);
}

#[test]
fn replacing_in_place_needs_yes_and_takes_a_safety_backup() {
    replace_needs_yes("custom", true);
}

#[test]
fn compression_is_an_option_of_custom_and_directory() {
    let dir = tempdir();
    let db = seeded(dir.path());
    let plain = backup_to(dir.path(), &db, "default.dump", "custom");
    let p = dir.path().join("z6.dump").to_string_lossy().into_owned();
    let out = run_db(
        dir.path(),
        &db,
        &[
            "backup",
            "--format",
            "custom",
            "--compress",
            "6",
            "--output",
            &p,
        ],
    )
    .ok();
    assert!(out.stdout.contains("zlib level 6"), "{out}");
    let z6 = PathBuf::from(&p);
    assert!(
        size(&z6) * 2 < size(&plain),
        "compressed {} vs {}",
        size(&z6),
        size(&plain)
    );
    run(dir.path(), &["backup", "verify", "--full", &p]).ok();
    let target = TestDb::new();
    run_db(dir.path(), &target, &["restore", &p]).ok();
    assert_eq!(content(&target), content(&db));
    for bad in [
        &["backup", "--compress", "10"][..],
        &["backup", "--format", "plain", "--compress", "1"][..],
    ] {
        let out = run_db(dir.path(), &db, bad);
        assert_one_error(&out, BAD_INPUT);
    }
}

// ---------------------------------------------------------------------------------------------
// The password
// ---------------------------------------------------------------------------------------------

/// Drops what the password test created in the shared `im_pw_db`.
struct PwCleanup {
    table: String,
    drop_alembic_version: bool,
}

impl Drop for PwCleanup {
    fn drop(&mut self) {
        let mut sql = format!("DROP TABLE IF EXISTS {};", self.table);
        if self.drop_alembic_version {
            sql.push_str("DROP TABLE IF EXISTS public.alembic_version;");
        }
        let _ = pw_psql(&sql);
    }
}

/// Runs SQL on the password cluster's database as its user, the password in the environment.
fn pw_psql(sql: &str) -> String {
    let server = auth_server();
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host={} port={} user={} dbname={}",
            server.host, server.port, server.user, server.dbname
        ))
        .args(["-c", sql])
        .env("PGPASSWORD", &server.password)
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        match parent_of(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// A `pg_dump` taking the dump (not the `pg_dump --version` probe that comes first).
fn is_dumping(cmdline: &[u8]) -> bool {
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0.ends_with(b"pg_dump")
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(b"--snapshot="))
}

#[test]
fn the_password_never_reaches_a_command_line() {
    let server = auth_server();
    let password = server.password.clone();
    let table = format!("bk_pw_{}", std::process::id());
    // Workaround for the bug shown by migrate_backup_on_a_fresh_database_takes_a_backup: a
    // database without alembic_version cannot be backed up at all.
    let missing = pw_psql("SELECT to_regclass('public.alembic_version') IS NULL") == "t";
    let _cleanup = PwCleanup {
        table: table.clone(),
        drop_alembic_version: missing,
    };
    if missing {
        pw_psql("CREATE TABLE IF NOT EXISTS public.alembic_version (version_num varchar(32) PRIMARY KEY)");
    }
    pw_psql(&format!(
        "DROP TABLE IF EXISTS {table}; \
         CREATE TABLE {table} AS SELECT i AS id, md5(i::text) AS h, repeat('p', 40) AS pad \
         FROM generate_series(1, 200000) AS i"
    ));

    let dir = tempdir();
    let archive = dir.path().join("pw.dump");
    let mut cmd = common::command(dir.path());
    cmd.env("DATABASE_URL", server.url())
        .args(["-vv", "backup", "--output"])
        .arg(&archive)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("start identity-migrate backup");
    let child_pid = child.id();
    // Read the pipes on threads so the child never blocks on them while we scan.
    let mut child = child;
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut s: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        })
    };
    let out_thread = read(Box::new(stdout));
    let err_thread = read(Box::new(stderr));

    let mut pg_dumps = std::collections::BTreeSet::new();
    let mut leaks = Vec::new();
    let mut scans = 0u32;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the backup") {
            break status;
        }
        scans += 1;
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let mine = descends_from(pid, child_pid);
            if mine && is_dumping(&cmdline) {
                pg_dumps.insert(pid);
            }
            if cmdline
                .windows(password.len())
                .any(|w| w == password.as_bytes())
            {
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if mine {
                    leaks.push(format!("pid {pid}: {text}"));
                } else {
                    eprintln!("(password in an unrelated process {pid}, ignored: {text})");
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backup takes too long"
        );
        std::thread::sleep(Duration::from_millis(3));
    };
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: out_thread.join().expect("stdout reader"),
        stderr: err_thread.join().expect("stderr reader"),
    };
    eprintln!(
        "backup took {:?}; {scans} scans; pg_dump pids {pg_dumps:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        !pg_dumps.is_empty(),
        "no pg_dump was ever seen in {scans} scans: the scan proves nothing"
    );
    assert!(leaks.is_empty(), "password on a command line: {leaks:#?}");
    assert!(
        !out.all().contains(&password),
        "password in the output: {out}"
    );
    let manifest = std::fs::read_to_string(manifest_of(&archive)).expect("read the manifest");
    assert!(!manifest.contains(&password), "password in the manifest");
    assert!(
        manifest.contains(&format!("\"public.{table}\": 200000")),
        "{manifest}"
    );
}

// ---------------------------------------------------------------------------------------------
// migrate --backup
// ---------------------------------------------------------------------------------------------

#[test]
fn migrate_backup_into_an_unwritable_directory_migrates_nothing() {
    let dir = tempdir();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "not a directory").expect("write");
    let bad = file.join("sub").to_string_lossy().into_owned();

    // A fresh database stays at base, without even the tool's own tables.
    let db = TestDb::new();
    let out = run_db(
        dir.path(),
        &db,
        &["--backup-dir", &bad, "migrate", "--backup"],
    );
    let line = assert_one_error_line(&out);
    assert_eq!(out.code, FAILURE, "{out}");
    assert!(line.contains("file.txt"), "names the directory: {out}");
    assert_eq!(relations(&db), Vec::<String>::new(), "{out}");

    // A database part way stays where it was.
    let at_r1 = db_at(dir.path(), R1);
    let before = state(&at_r1);
    let out = run_db(
        dir.path(),
        &at_r1,
        &["--backup-dir", &bad, "migrate", "--backup"],
    );
    assert_one_error_line(&out);
    assert_eq!(state(&at_r1), before, "{out}");
    assert_eq!(version(&at_r1), Some(vec![R1.to_owned()]));

    // --dry-run --backup writes nothing, says a backup would be taken, and changes nothing.
    let bdir = dir.path().join("backups");
    std::fs::create_dir(&bdir).expect("create the backup dir");
    let b = bdir.to_string_lossy().into_owned();
    let out = run_db(
        dir.path(),
        &db,
        &["--backup-dir", &b, "migrate", "--dry-run", "--backup"],
    )
    .ok();
    assert!(
        out.stdout
            .contains("A verified backup would be taken first"),
        "{out}"
    );
    assert!(out.stdout.contains("none was taken now"), "{out}");
    assert_eq!(listing(&bdir), Vec::<String>::new());
    assert_eq!(listing(dir.path()), ["backups", "file.txt"]);
    assert_eq!(relations(&db), Vec::<String>::new());
}

#[test]
fn migrate_backup_takes_a_verified_backup_first() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    execute(
        &db,
        "INSERT INTO users_simple (id, email, password_hash, bio) \
         VALUES ('00000000-0000-4000-8000-0000000000aa', 'ä@example.com', 'h', E'x\\ty\\nz')",
    );
    let at_r1 = state(&db);
    let bdir = dir.path().join("backups");
    std::fs::create_dir(&bdir).expect("create the backup dir");
    let b = bdir.to_string_lossy().into_owned();
    let out = run_db_umask0(
        dir.path(),
        &db,
        &["--backup-dir", &b, "migrate", "--backup"],
    )
    .ok();
    let names = listing(&bdir);
    assert_eq!(names.len(), 2, "{names:?}");
    let archive = bdir.join(&names[0]);
    assert!(
        out.stdout.starts_with("backup   "),
        "the backup comes first: {out}"
    );
    assert!(out.stdout.contains(&names[0]), "{out}");
    assert_eq!(version(&db), Some(vec![head()]), "{out}");
    assert_private(&archive);
    assert_eq!(read_manifest(&archive).revisions, [R1]);
    let p = archive.to_string_lossy().into_owned();
    run(dir.path(), &["backup", "verify", &p]).ok();
    let check = TestDb::new();
    run_db(dir.path(), &check, &["restore", &p]).ok();
    assert_eq!(
        state(&check),
        at_r1,
        "the backup holds the database before the migration"
    );

    // Nothing to migrate: no backup either.
    let out = run_db(
        dir.path(),
        &db,
        &["--backup-dir", &b, "migrate", "--backup"],
    )
    .ok();
    assert_eq!(listing(&bdir).len(), 2, "{out}");
}

#[test]
fn migrate_backup_on_a_fresh_database_takes_a_backup() {
    let dir = tempdir();
    let db = TestDb::new();
    let bdir = dir.path().join("backups");
    std::fs::create_dir(&bdir).expect("create the backup dir");
    let b = bdir.to_string_lossy().into_owned();
    let out = run_db(
        dir.path(),
        &db,
        &["--backup-dir", &b, "migrate", "--backup"],
    );
    assert_eq!(out.code, 0, "{out}");
    let names = listing(&bdir);
    assert_eq!(names.len(), 2, "{names:?}");
    let archive = bdir.join(&names[0]);
    assert!(read_manifest(&archive).revisions.is_empty());
    let p = archive.to_string_lossy().into_owned();
    run(dir.path(), &["backup", "verify", &p]).ok();
    assert_eq!(version(&db), Some(vec![head()]));
}

// ---------------------------------------------------------------------------------------------
// Never overwrite, leave nothing behind
// ---------------------------------------------------------------------------------------------

#[test]
fn backup_never_overwrites_and_a_failure_leaves_nothing() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("create");

    // An existing file, an existing directory, an existing manifest alone: refused, untouched.
    let file = out_dir.join("taken.dump");
    std::fs::write(&file, "precious").expect("write");
    let taken_dir = out_dir.join("taken_dir");
    std::fs::create_dir(&taken_dir).expect("create");
    let lone = out_dir.join("lone.dump");
    std::fs::write(manifest_of(&lone), "{}").expect("write");
    for (path, format) in [
        (&file, "custom"),
        (&file, "plain"),
        (&taken_dir, "directory"),
        (&taken_dir, "custom"),
        (&lone, "custom"),
    ] {
        let p = path.to_string_lossy().into_owned();
        let out = run_db(
            dir.path(),
            &db,
            &["backup", "--format", format, "--output", &p],
        );
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains("already exists"), "{out}");
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
    assert_eq!(listing(&taken_dir), Vec::<String>::new());
    assert_eq!(
        listing(&out_dir),
        ["lone.dump.manifest.json", "taken.dump", "taken_dir"]
    );
    assert!(!lone.exists());

    // A wrong database name: nothing at all in the backup dir, not even a staging directory.
    let bdir = dir.path().join("backups");
    std::fs::create_dir(&bdir).expect("create");
    let b = bdir.to_string_lossy().into_owned();
    let wrong = db
        .url()
        .replace(db.name(), &format!("{}_nosuch", db.name()));
    for format in FORMATS {
        let out = output(common::command(dir.path()).args([
            "--database-url",
            &wrong,
            "--backup-dir",
            &b,
            "backup",
            "--format",
            format,
        ]));
        assert_one_error(&out, FAILURE);
        let o = out_dir.join(format!("wrong_{format}"));
        let op = o.to_string_lossy().into_owned();
        let out = output(common::command(dir.path()).args([
            "--database-url",
            &wrong,
            "backup",
            "--format",
            format,
            "--output",
            &op,
        ]));
        assert_one_error(&out, FAILURE);
    }
    assert_eq!(listing(&bdir), Vec::<String>::new());
    assert_eq!(
        listing(&out_dir),
        ["lone.dump.manifest.json", "taken.dump", "taken_dir"]
    );
}

/// A pg_dump killed halfway: the backup fails and leaves nothing, not even its staging
/// directory.
#[test]
fn a_backup_whose_pg_dump_dies_leaves_nothing() {
    let dir = tempdir();
    let db = db_at(dir.path(), R1);
    execute(
        &db,
        "CREATE TABLE big AS SELECT i AS id, md5(i::text) AS h, repeat('b', 60) AS pad \
         FROM generate_series(1, 300000) AS i",
    );
    let before = state(&db);
    for format in ["custom", "directory"] {
        let bdir = dir.path().join(format!("backups_{format}"));
        std::fs::create_dir(&bdir).expect("create");
        let mut child = common::command(dir.path())
            .args(["--database-url", &db.url(), "--backup-dir"])
            .arg(&bdir)
            .args(["backup", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a backup");
        let started = Instant::now();
        let mut killed = None;
        while killed.is_none() && child.try_wait().expect("wait").is_none() {
            for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                if is_dumping(&cmdline) && descends_from(pid, child.id()) {
                    let status = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status()
                        .expect("run kill");
                    assert!(
                        status.success(),
                        "{format}: pg_dump {pid} ended before the kill"
                    );
                    killed = Some(pid);
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no pg_dump seen"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let o = child.wait_with_output().expect("wait for the backup");
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert!(
            killed.is_some(),
            "{format}: the backup ended before pg_dump was seen: {out}"
        );
        let line = assert_one_error(&out, FAILURE);
        assert!(line.contains("pg_dump"), "{format}: {out}");
        assert_eq!(listing(&bdir), Vec::<String>::new(), "{format}: {out}");
    }
    assert_eq!(state(&db), before);
}

/// The identity graph's one head.
fn head() -> String {
    identity_schema::graph().heads()[0].to_owned()
}

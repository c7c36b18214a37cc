//! `migrate_backup::{backup, verify, restore}` against a real PostgreSQL server: round trips in
//! every format compared table by table, tampered archives refused by `verify` and by `restore`
//! without touching the target, corruption hidden by a rewritten manifest, never overwriting;
//! the restore's swap: what it carries over, connected sessions, roles without CREATEDB.

use migrate_backup::{
    manifest_path, read_manifest, verify_and_restore, Backup, BackupError, BackupRequest, Check,
    Manifest, Method, RestoreOptions, RestoreRequest, Restored, SnapshotRequest,
};
use migrate_postgres::backup::{find_tools, ClientTools, Format};
use migrate_postgres::backup_session::PostgresBackup;
use migrate_postgres::url::{self, ConnectionSettings};
use migrate_testkit::archive::{
    biggest_data_file, connect_to, content_of, copy_backup, databases_beside, find, listing,
    overwrite_keeping_lines, rewrite_hashes, size, truncate, DropDatabases,
};
use migrate_testkit::{describe_schema, TestDb};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FORMATS: [Format; 3] = [Format::Custom, Format::Directory, Format::Plain];

fn settings(db: &TestDb) -> ConnectionSettings {
    url::parse(&db.url(), &|_| None).expect("the test database's URL")
}

fn tools(db: &TestDb) -> ClientTools {
    let num: i32 = db
        .client()
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .expect("the server's version")
        .get(0);
    find_tools(u32::try_from(num / 10000).expect("a major version"))
        .expect("the client tools of the test server")
}

fn request(dir: &Path, output: Option<PathBuf>, format: Format) -> BackupRequest {
    BackupRequest {
        dir: dir.to_owned(),
        output,
        snapshot: SnapshotRequest {
            format: Some(format.as_str().to_owned()),
            one_file: false,
            jobs: 2,
            compress: None,
        },
        tool_version: "test".to_owned(),
    }
}

fn options(replace: bool) -> RestoreOptions {
    RestoreOptions {
        replace,
        request: RestoreRequest {
            in_place: false,
            jobs: 2,
            session_wait: Duration::from_secs(10),
        },
    }
}

/// The policy's backup through the PostgreSQL driver.
fn backup(
    settings: &ConnectionSettings,
    request: &BackupRequest,
    progress: &mut dyn FnMut(migrate_backup::Progress),
) -> Result<Backup, BackupError> {
    migrate_backup::backup(
        &mut PostgresBackup::new(settings.clone()),
        request,
        progress,
    )
}

/// The policy's verify with the server's tools.
fn verify(path: &Path, tools: &ClientTools, check: Check) -> Result<Manifest, BackupError> {
    migrate_backup::verify(path, tools, check).map(|v| v.manifest)
}

/// The policy's restore through the PostgreSQL driver, after the fast check.
fn restore(
    settings: &ConnectionSettings,
    path: &Path,
    options: &RestoreOptions,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(migrate_backup::Progress),
) -> Result<Restored, BackupError> {
    let mut driver = PostgresBackup::new(settings.clone());
    verify_and_restore(&mut driver, path, options, safety, progress)
}

/// A session on the server's `postgres` database, as the test server's superuser.
fn admin(db: &TestDb) -> postgres::Client {
    connect_to(db, "postgres")
}

fn take(db: &TestDb, path: &Path, format: Format) -> Backup {
    let dir = path.parent().expect("a parent");
    backup(
        &settings(db),
        &request(dir, Some(path.to_owned()), format),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("backup {}: {e}", path.display()))
}

/// A schema of the tool's shape (alembic_version and a history table with an identity column),
/// two schemas, foreign keys, indexes, a sequence, and text full of what COPY must escape.
const SEED: &str = r#"
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('68d314520251');
CREATE TABLE identity_migrate_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, revision varchar(32) NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now());
INSERT INTO identity_migrate_history (revision, finished_at)
VALUES ('974799e38366', '2024-01-01 00:00:00+00'), ('68d314520251', '2024-01-02 00:00:00+00');
CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL UNIQUE, settings json,
    description text);
CREATE TABLE users (id uuid PRIMARY KEY, org_id uuid REFERENCES organizations (id),
    email varchar(255) NOT NULL UNIQUE, bio text, tags text[], status varchar(30) NOT NULL,
    created_at timestamp NOT NULL);
CREATE INDEX ix_users_status ON users (status);
CREATE SCHEMA audit;
CREATE SEQUENCE audit.event_seq START 1000;
CREATE TABLE audit."Event Log" (id bigint PRIMARY KEY DEFAULT nextval('audit.event_seq'),
    user_id uuid REFERENCES public.users (id) ON DELETE CASCADE, payload jsonb, note text);
INSERT INTO organizations VALUES
  ('00000000-0000-4000-8000-000000000001', 'Zoë & Søn — 日本語 🚀', '{"k": "v\\t\\n", "e": "🎉"}',
   E'line one\nline two\ttab \\ backslash \\N and\n\\.\nend'),
  ('00000000-0000-4000-8000-000000000002', E'tab\there', NULL, NULL);
INSERT INTO users
SELECT md5('user' || i)::uuid,
       CASE WHEN i % 2 = 0 THEN '00000000-0000-4000-8000-000000000001'::uuid END,
       'user' || i || '@example.com',
       CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN E'multi\nline\r\n\tbio' WHEN 2 THEN E'\\N'
            WHEN 3 THEN E'\\.' WHEN 4 THEN E'a\n\\.\nb' ELSE '' END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE ARRAY['x', E'y\tz', NULL] END,
       CASE WHEN i % 10 = 0 THEN 'suspended' ELSE 'active' END,
       timestamp '2024-01-01' + i * interval '1 minute'
FROM generate_series(1, 4000) AS i;
INSERT INTO audit."Event Log" (user_id, payload, note)
SELECT md5('user' || (i % 4000 + 1))::uuid, jsonb_build_object('i', i, 's', E'ü\n'),
       CASE WHEN i % 2 = 0 THEN NULL ELSE E'\\x00 not a byte' END
FROM generate_series(1, 1000) AS i;
"#;

fn seeded() -> TestDb {
    let db = TestDb::new();
    db.client().batch_execute(SEED).expect("seed");
    db
}

/// Per table a row count and a checksum over all rows in a fixed order, per sequence its
/// position, and the schema of both schemas.
fn state(db: &TestDb) -> String {
    let mut client = db.client();
    let out = content_of(&mut client);
    let relations: Vec<String> = client
        .query(
            "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
            &[],
        )
        .expect("relations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let schema = describe_schema(&mut client, &["public", "audit"]);
    format!("{schema}\n{relations:#?}\n{out:#?}")
}

fn relation_count(db: &TestDb) -> i64 {
    db.client()
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .expect("count relations")
        .get(0)
}

fn write_manifest(archive: &Path, m: &Manifest) {
    std::fs::write(manifest_path(archive), m.to_json()).expect("write manifest");
}

// ---------------------------------------------------------------------------------------------

fn round_trip(format: Format) {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    let before = state(&source);
    assert!(before.contains("table public.users\": \"4000 "), "{before}");
    let path = dir.path().join(format!("b{}", format.extension()));
    let taken = take(&source, &path, format);
    assert_eq!(taken.path, path);
    let m = &taken.manifest;
    assert_eq!(m.format, format.as_str());
    assert_eq!(m.revisions, ["68d314520251"]);
    assert_eq!(m.tool, "identity-migrate");
    assert_eq!(m.tool_version, "test");
    assert!(m.pg_dump_version.contains("PostgreSQL"), "{m:?}");
    assert!(!m.files.is_empty());
    assert_eq!(
        m.tables,
        BTreeMap::from([
            ("audit.\"Event Log\"".to_owned(), 1000),
            ("public.alembic_version".to_owned(), 1),
            ("public.identity_migrate_history".to_owned(), 2),
            ("public.organizations".to_owned(), 2),
            ("public.users".to_owned(), 4000),
        ])
    );
    assert_eq!(read_manifest(&path).expect("manifest on disk"), *m);
    assert_eq!(
        verify(&path, &tools(&source), Check::Fast).expect("verify"),
        *m
    );
    assert_eq!(
        verify(&path, &tools(&source), Check::Full).expect("verify"),
        *m
    );
    // Nothing but the archive and its manifest: the staging directory is gone.
    let mut expected = vec![
        path.file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned(),
        manifest_path(&path)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned(),
    ];
    expected.sort();
    assert_eq!(listing(dir.path()), expected);

    let target = TestDb::new();
    let safety = request(dir.path(), None, Format::Custom);
    let restored = restore(
        &settings(&target),
        &path,
        &options(false),
        &safety,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("restore {}: {e}", format.as_str()));
    assert!(restored.safety_backup.is_none());
    assert_eq!(restored.method, Method::Swap);
    // The target was empty: the previous database is not kept, and no scratch is left.
    assert_eq!(restored.previous, None);
    assert_eq!(databases_beside(&target), Vec::<String>::new());
    assert_eq!(restored.revisions, ["68d314520251"]);
    assert_eq!(restored.tables, m.tables);
    assert_eq!(state(&target), before, "{} round trip", format.as_str());
    assert_eq!(state(&source), before);
}

#[test]
fn custom_round_trip_is_identical() {
    round_trip(Format::Custom);
}

#[test]
fn directory_round_trip_is_identical() {
    round_trip(Format::Directory);
}

#[test]
fn plain_round_trip_is_identical() {
    round_trip(Format::Plain);
}

/// Tampered copies, each refused by verify and by restore (fresh target stays empty; the
/// source, restored over with `replace`, stays as it was and gets no safety backup).
#[test]
fn tampered_archives_are_refused_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    let fresh = TestDb::new();
    let tools = tools(&source);
    let safety_dir = dir.path().join("safety");
    std::fs::create_dir(&safety_dir).expect("create");
    let safety = request(&safety_dir, None, Format::Custom);
    let mut n = 0;
    for format in FORMATS {
        let good = take(
            &source,
            &dir.path().join(format!("good_{}", format.as_str())),
            format,
        )
        .path;
        let before = state(&source);
        let data = |a: &Path| {
            if a.is_dir() {
                biggest_data_file(a)
            } else {
                a.to_owned()
            }
        };
        type Edit<'a> = Box<dyn Fn(&Path) + 'a>;
        let cases: Vec<(&str, Edit)> = vec![
            ("empty", Box::new(|a| truncate(&data(a), 0))),
            ("100 bytes", Box::new(|a| truncate(&data(a), 100))),
            ("half", Box::new(|a| truncate(&data(a), size(&data(a)) / 2))),
            (
                "size - 1",
                Box::new(|a| truncate(&data(a), size(&data(a)) - 1)),
            ),
            (
                "overwritten",
                Box::new(|a| overwrite_keeping_lines(&data(a), size(&data(a)) / 2, 64)),
            ),
            (
                "row count edited",
                Box::new(|a| {
                    let mut m = read_manifest(a).expect("manifest");
                    *m.tables.get_mut("public.users").expect("users") -= 1;
                    write_manifest(a, &m);
                }),
            ),
            (
                "sha256 edited",
                Box::new(|a| {
                    let mut m = read_manifest(a).expect("manifest");
                    let f = m.files.first_mut().expect("a file");
                    let c = if f.sha256.ends_with('a') { "b" } else { "a" };
                    f.sha256.replace_range(63..64, c);
                    write_manifest(a, &m);
                }),
            ),
            (
                "manifest missing",
                Box::new(|a| std::fs::remove_file(manifest_path(a)).expect("remove")),
            ),
            (
                "manifest of another format's backup",
                Box::new(|a| {
                    let other = dir.path().join("good_custom");
                    let other = if a.ends_with("good_custom") {
                        dir.path().join("good_plain")
                    } else {
                        other
                    };
                    if other.exists() {
                        std::fs::copy(manifest_path(&other), manifest_path(a)).expect("copy");
                    } else {
                        // The first format has no other backup yet: use a foreign manifest.
                        let mut m = read_manifest(a).expect("manifest");
                        m.tables.insert("public.other".to_owned(), 1);
                        write_manifest(a, &m);
                    }
                }),
            ),
        ];
        for (label, edit) in &cases {
            n += 1;
            let copy = copy_backup(&good, &dir.path().join(format!("case{n}")));
            edit(&copy);
            let what = format!("{} {label}", format.as_str());
            for check in [Check::Fast, Check::Full] {
                match verify(&copy, &tools, check) {
                    Err(BackupError::Corrupt(_) | BackupError::NoManifest(_)) => {}
                    Err(e) => panic!("{what}: verify failed with an unexpected error: {e}"),
                    // The fast check trusts the row counts the manifest says were decoded
                    // when the bytes it pins were written: an edited count needs a decode.
                    Ok(_) if check == Check::Fast && *label == "row count edited" => {}
                    Ok(_) => panic!("{what}: verify ({check:?}) accepted it"),
                }
            }
            // Refused as corrupt before anything is restored, into a fresh database or over the
            // source alike.
            let refused = |target: &TestDb, replace: bool, onto: &str| {
                let err = restore(
                    &settings(target),
                    &copy,
                    &options(replace),
                    &safety,
                    &mut |_| {},
                )
                .err()
                .unwrap_or_else(|| panic!("{what}: restored {onto}"));
                assert!(
                    matches!(err, BackupError::Corrupt(_) | BackupError::NoManifest(_)),
                    "{what}: {err}"
                );
            };
            refused(&fresh, false, "into a fresh database");
            assert_eq!(relation_count(&fresh), 0, "{what}");
            refused(&source, true, "over the source");
            assert_eq!(state(&source), before, "{what}");
            assert_eq!(listing(&safety_dir), Vec::<String>::new(), "{what}");
            assert_eq!(databases_beside(&source), Vec::<String>::new(), "{what}");
            assert_eq!(databases_beside(&fresh), Vec::<String>::new(), "{what}");
        }
        verify(&good, &tools, Check::Full).expect("the original is still good");
    }
}

/// A labelled edit of a copied archive.
type Case<'a> = (&'a str, &'a dyn Fn(&Path));

/// Corruption with a manifest rewritten to match the corrupted bytes: only the full read and
/// the row counts stand between it and a restore. Returns what was accepted.
fn accepted_with_matching_manifest(format: Format, edits: &[Case]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    let tools = tools(&source);
    let good = take(
        &source,
        &dir.path().join(format!("good{}", format.extension())),
        format,
    )
    .path;
    let fresh = TestDb::new();
    let safety = request(dir.path(), None, Format::Custom);
    let mut accepted = Vec::new();
    for (i, (label, edit)) in edits.iter().enumerate() {
        let copy = copy_backup(&good, &dir.path().join(format!("case{i}")));
        edit(&copy);
        rewrite_hashes(&copy);
        match verify(&copy, &tools, Check::Full) {
            Ok(_) => accepted.push(format!("{label}: verify --full accepted it")),
            Err(e) => eprintln!("{} {label}: {e}", format.as_str()),
        }
        match restore(
            &settings(&fresh),
            &copy,
            &options(false),
            &safety,
            &mut |_| {},
        ) {
            Ok(r) => {
                accepted.push(format!(
                    "{label}: restore accepted it ({} rows)",
                    r.tables.values().sum::<u64>()
                ));
                fresh
                    .client()
                    .batch_execute(
                        "DROP SCHEMA public CASCADE; DROP SCHEMA IF EXISTS audit CASCADE; \
                         CREATE SCHEMA public",
                    )
                    .expect("empty the database again");
            }
            Err(_) => {
                assert_eq!(relation_count(&fresh), 0, "{label}");
                assert_eq!(databases_beside(&fresh), Vec::<String>::new(), "{label}");
            }
        }
    }
    accepted
}

#[test]
fn corrupt_custom_and_directory_archives_with_a_matching_manifest_are_refused() {
    let mut accepted = accepted_with_matching_manifest(
        Format::Custom,
        &[
            ("truncated to half", &|a| truncate(a, size(a) / 2)),
            ("truncated by one byte", &|a| truncate(a, size(a) - 1)),
            ("overwritten at 3/4 (data)", &|a| {
                overwrite_keeping_lines(a, size(a) * 3 / 4, 64)
            }),
            ("overwritten in the middle", &|a| {
                overwrite_keeping_lines(a, size(a) / 2, 64)
            }),
        ],
    );
    accepted.extend(accepted_with_matching_manifest(
        Format::Directory,
        &[
            ("users' data truncated to half", &|a| {
                let f = biggest_data_file(a);
                truncate(&f, size(&f) / 2)
            }),
            ("users' data overwritten in the middle", &|a| {
                let f = biggest_data_file(a);
                overwrite_keeping_lines(&f, size(&f) / 2, 64)
            }),
        ],
    ));
    assert!(accepted.is_empty(), "{accepted:#?}");
}

#[test]
fn corrupt_plain_archive_cut_inside_its_data_with_a_matching_manifest_is_refused() {
    let accepted = accepted_with_matching_manifest(
        Format::Plain,
        &[("cut inside the users' data", &|a| {
            let start = find(a, "COPY public.users ", 0);
            let end = find(a, "\n\\.\n", start);
            truncate(a, ((start + end) / 2) as u64)
        })],
    );
    assert!(accepted.is_empty(), "{accepted:#?}");
}

#[test]
fn corrupt_plain_archive_with_a_matching_manifest_is_refused() {
    let accepted = accepted_with_matching_manifest(
        Format::Plain,
        &[
            // A cut between statements: the last foreign key and pg_dump's trailer are lost.
            ("cut before the last ALTER TABLE (a foreign key)", &|a| {
                let text = std::fs::read_to_string(a).expect("read");
                truncate(a, text.rfind("ALTER TABLE ONLY").expect("an ALTER") as u64)
            }),
            ("overwritten inside the users' data", &|a| {
                let start = find(a, "COPY public.users ", 0);
                let end = find(a, "\n\\.\n", start);
                overwrite_keeping_lines(a, ((start + end) / 2) as u64, 64)
            }),
        ],
    );
    assert!(accepted.is_empty(), "{accepted:#?}");
}

#[test]
fn backup_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = seeded();
    let file = dir.path().join("taken.dump");
    std::fs::write(&file, "precious").expect("write");
    let lone = dir.path().join("lone.dump");
    std::fs::write(manifest_path(&lone), "{}").expect("write");
    let taken_dir = dir.path().join("taken_dir");
    std::fs::create_dir(&taken_dir).expect("create");
    for (path, format) in [
        (&file, Format::Custom),
        (&lone, Format::Custom),
        (&taken_dir, Format::Directory),
        (&file, Format::Plain),
    ] {
        let err = backup(
            &settings(&db),
            &request(dir.path(), Some(path.clone()), format),
            &mut |_| {},
        )
        .expect_err("an existing destination");
        assert!(matches!(err, BackupError::Exists(_)), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
    assert_eq!(
        listing(dir.path()),
        ["lone.dump.manifest.json", "taken.dump", "taken_dir"]
    );
}

#[test]
fn a_database_without_alembic_version_can_be_backed_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDb::new();
    db.client()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .expect("seed");
    let path = dir.path().join("b.dump");
    let taken = take(&db, &path, Format::Custom);
    assert!(taken.manifest.revisions.is_empty());
    assert_eq!(taken.manifest.tables.get("public.t"), Some(&2));
    // An empty database too (what `migrate --backup` backs up on a first deployment).
    let empty = TestDb::new();
    take(&empty, &dir.path().join("empty.dump"), Format::Custom);
}

#[test]
fn unusual_table_names_and_column_less_tables_can_be_backed_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failed = Vec::new();
    for (i, sql) in [
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); \
         CREATE TABLE \"x (y\" (a int); INSERT INTO \"x (y\" VALUES (1)",
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); \
         CREATE TABLE nocols (); INSERT INTO nocols DEFAULT VALUES",
    ]
    .iter()
    .enumerate()
    {
        let db = TestDb::new();
        db.client().batch_execute(sql).expect("seed");
        let path = dir.path().join(format!("b{i}.dump"));
        if let Err(e) = backup(
            &settings(&db),
            &request(dir.path(), Some(path), Format::Custom),
            &mut |_| {},
        ) {
            failed.push(format!("{sql}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

// ---- the swap ------------------------------------------------------------------------------

/// What belongs to a database rather than to its content, as one comparable text.
fn database_properties(db: &TestDb) -> String {
    let row = admin(db)
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, d.datconnlimit, \
                    coalesce(d.datacl::text, 'default'), \
                    coalesce(shobj_description(d.oid, 'pg_database'), 'no comment'), \
                    coalesce((SELECT string_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0))::text, 'all') \
                                  || ': ' || s.setconfig::text, '; ' ORDER BY s.setrole) \
                              FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), 'no settings'), \
                    d.datcollate::text, d.datctype::text, pg_encoding_to_char(d.encoding)::text \
             FROM pg_database d WHERE d.datname = $1",
            &[&db.name()],
        )
        .expect("database properties");
    format!(
        "owner {}, limit {}, acl {}, comment {}, settings {}, collate {}, ctype {}, encoding {}",
        row.get::<_, String>(0),
        row.get::<_, i32>(1),
        row.get::<_, String>(2),
        row.get::<_, String>(3),
        row.get::<_, String>(4),
        row.get::<_, String>(5),
        row.get::<_, String>(6),
        row.get::<_, String>(7)
    )
}

/// A role for one test, dropped (with what it owns) at the end.
struct Role<'a> {
    name: String,
    db: &'a TestDb,
}

impl<'a> Role<'a> {
    fn new(db: &'a TestDb, label: &str, attributes: &str) -> Role<'a> {
        let name = format!("{}_{label}", db.name());
        admin(db)
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN {attributes}"
            ))
            .expect("create a role");
        Role { name, db }
    }
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        let n = &self.name;
        let _ = self.db.client().batch_execute(&format!(
            "REASSIGN OWNED BY {n} TO CURRENT_USER; DROP OWNED BY {n}"
        ));
        let mut admin = admin(self.db);
        let _ = admin.batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO CURRENT_USER; DROP ROLE IF EXISTS {n}",
            self.db.name()
        ));
    }
}

/// The swap gives the restored database the target's owner, settings (database-wide and per
/// role), grants, connection limit and comment; the previous database is kept when it held
/// tables, with its content, and dropped when it held none.
#[test]
fn the_swap_carries_the_database_properties_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    let before = state(&source);
    let path = dir.path().join("b.dump");
    take(&source, &path, Format::Custom);
    let target = TestDb::new();
    let role = Role::new(&target, "owner", "");
    let reader = Role::new(&target, "reader", "");
    let t = target.name();
    admin(&target)
        .batch_execute(&format!(
            "ALTER DATABASE \"{t}\" OWNER TO {owner}; \
             ALTER DATABASE \"{t}\" SET work_mem = '7MB'; \
             ALTER DATABASE \"{t}\" SET search_path = \"$user\", public, \"odd, name\"; \
             ALTER ROLE {reader} IN DATABASE \"{t}\" SET statement_timeout = '5s'; \
             ALTER DATABASE \"{t}\" CONNECTION LIMIT 40; \
             REVOKE ALL ON DATABASE \"{t}\" FROM PUBLIC; \
             GRANT CONNECT ON DATABASE \"{t}\" TO {reader} WITH GRANT OPTION; \
             COMMENT ON DATABASE \"{t}\" IS 'the identity service''s'",
            owner = role.name,
            reader = reader.name,
        ))
        .expect("set the target's properties");
    let properties = database_properties(&target);
    assert!(
        properties.contains("7MB") && properties.contains(&reader.name),
        "{properties}"
    );
    let safety = request(dir.path(), None, Format::Custom);

    let restored = restore(
        &settings(&target),
        &path,
        &options(false),
        &safety,
        &mut |_| {},
    )
    .expect("restore into the empty target");
    assert_eq!(restored.method, Method::Swap);
    assert_eq!(restored.previous, None, "the empty target is not kept");
    assert_eq!(database_properties(&target), properties);
    assert_eq!(state(&target), before);
    assert_eq!(databases_beside(&target), Vec::<String>::new());

    // Again over the restored content, which is now not empty: kept under another name.
    target
        .client()
        .batch_execute("DELETE FROM users WHERE status = 'suspended'")
        .expect("change the target");
    let changed = state(&target);
    let restored = restore(
        &settings(&target),
        &path,
        &options(true),
        &safety,
        &mut |_| {},
    )
    .expect("restore over the target");
    let previous = restored.previous.expect("the previous database is kept");
    let _cleanup = DropDatabases(&target, vec![previous.clone()]);
    assert!(previous.starts_with(&format!("{t}__before_")), "{previous}");
    assert_eq!(databases_beside(&target), std::slice::from_ref(&previous));
    assert_eq!(database_properties(&target), properties);
    assert_eq!(state(&target), before);
    let url = target.url();
    let kept = url.replace(t, &previous);
    let mut client = postgres::Client::connect(&kept, postgres::NoTls).expect("connect to it");
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .expect("count")
        .get(0);
    assert!(
        changed.contains(&format!("table public.users\": \"{users} ")),
        "{users}"
    );
    assert_eq!(users, 3600);
}

/// A session connected to the target: refused before anything is done; one that connects
/// during the restore and stays: refused at the swap, after waiting, and the scratch database
/// is dropped; one that leaves within the wait: waited for.
#[test]
fn connected_sessions_are_refused_or_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    source
        .client()
        .batch_execute(
            "CREATE TABLE bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 300000) i",
        )
        .expect("make the restore take a moment");
    let path = dir.path().join("b.dump");
    take(&source, &path, Format::Custom);
    let target = TestDb::new();
    let safety = request(dir.path(), None, Format::Custom);

    let held = target.client();
    let err = restore(
        &settings(&target),
        &path,
        &options(false),
        &safety,
        &mut |_| {},
    )
    .expect_err("a connected session");
    assert!(
        matches!(err, BackupError::SessionsConnected { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--in-place"), "{err}");
    drop(held);
    assert_eq!(relation_count(&target), 0);
    assert_eq!(databases_beside(&target), Vec::<String>::new());

    // Connects as soon as the scratch database appears, holds for `hold`.
    let intruder = |hold: Duration| {
        let (name, url) = (target.name().to_owned(), target.url());
        let admin_client = admin(&target);
        std::thread::spawn(move || {
            let mut admin_client = admin_client;
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let scratch: bool = admin_client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE starts_with(datname, $1))",
                        &[&format!("{name}__restore_")],
                    )
                    .expect("look for the scratch database")
                    .get(0);
                if scratch {
                    let client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                    std::thread::sleep(hold);
                    drop(client);
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    let mut short = options(false);
    short.request.session_wait = Duration::from_secs(1);
    let stays = intruder(Duration::from_secs(8));
    let err = restore(&settings(&target), &path, &short, &safety, &mut |_| {})
        .expect_err("a session that stays");
    assert!(
        stays.join().expect("intruder"),
        "the intruder never connected"
    );
    assert!(
        matches!(err, BackupError::SessionsConnected { .. }),
        "{err}"
    );
    assert_eq!(relation_count(&target), 0);
    assert_eq!(databases_beside(&target), Vec::<String>::new());

    let leaves = intruder(Duration::from_secs(1));
    let restored = restore(
        &settings(&target),
        &path,
        &options(false),
        &safety,
        &mut |_| {},
    )
    .expect("a session that leaves is waited for");
    assert!(
        leaves.join().expect("intruder"),
        "the intruder never connected"
    );
    assert_eq!(restored.tables.get("public.bulk"), Some(&300_000));
    assert_eq!(databases_beside(&target), Vec::<String>::new());
}

/// A role without CREATEDB that owns the target restores in place, in one transaction.
#[test]
fn without_createdb_the_restore_runs_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = seeded();
    let before = state(&source);
    let path = dir.path().join("b.dump");
    take(&source, &path, Format::Custom);
    let target = TestDb::new();
    let role = Role::new(&target, "nocreatedb", "NOCREATEDB");
    admin(&target)
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {}",
            target.name(),
            role.name
        ))
        .expect("give the target to the role");
    let mut as_role = settings(&target);
    as_role.user.clone_from(&role.name);
    let safety = request(dir.path(), None, Format::Custom);
    let restored = restore(&as_role, &path, &options(false), &safety, &mut |_| {})
        .expect("restore without CREATEDB");
    match &restored.method {
        Method::InPlace(why) => assert!(why.contains("CREATEDB"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(state(&target), before);
    assert_eq!(databases_beside(&target), Vec::<String>::new());
}

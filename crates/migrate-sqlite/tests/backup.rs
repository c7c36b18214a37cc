//! Online backup and atomic restore on real files: consistent while another connection
//! writes, private files, never overwritten, identical data after a restore.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::backup::BackupDriver;
use migrate_core::driver::{Driver, DriverError};
use migrate_sqlite::backup::file_table_stats;
use migrate_sqlite::{SqliteDriver, SqliteOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The identity schema at `094916cde150` (server defaults, CHECKs) with some rows, blobs, reals and odd text included.
fn populated() -> TestFile {
    let file = TestFile::new();
    let graph = identity_schema::graph();
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up("094916cde150")).unwrap();
    file.conn()
        .execute_batch(
            "CREATE TABLE extra (id INTEGER PRIMARY KEY, b BLOB, r REAL, t TEXT);
             INSERT INTO extra (b, r, t) VALUES (x'00ff10', 1.5, 'tab\there'), (NULL, -0.1, 'line\nbreak\\');
             CREATE TABLE keyed (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
             INSERT INTO keyed VALUES ('b', 2), ('a', 1);
             INSERT INTO organizations (id, name, slug) VALUES ('00000000-0000-4000-8000-000000000001', 'Acme', 'acme');",
        )
        .unwrap();
    file
}

#[test]
fn a_backup_is_private_complete_and_restores_to_identical_data() {
    let file = populated();
    let driver = file.driver();
    let backup = file.sibling("backup.db");
    let stats = driver.backup_to(&backup).unwrap();
    assert_eq!(mode(&backup), 0o600);
    // One self-contained file: no journal or WAL beside it, nothing left of the partial copy.
    let names: Vec<String> = std::fs::read_dir(file.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("backup") || n.starts_with(".backup"))
        .collect();
    assert_eq!(names, ["backup.db"]);
    assert_eq!(stats["extra"].rows, 2);
    assert_eq!(stats["keyed"].rows, 2);
    assert_eq!(stats["organizations"].rows, 1);
    assert_eq!(stats["alembic_version"].rows, 1);
    assert_eq!(stats, file_table_stats(&backup).unwrap());
    // What the live database holds now is what the backup holds.
    let mut driver = driver;
    assert_eq!(driver.table_stats().unwrap(), stats);

    // Restore into a fresh file.
    let fresh = TestFile::new();
    let mut target = fresh.driver();
    let restored = target.restore_from(&backup).unwrap();
    assert_eq!(restored, stats);
    assert_eq!(target.introspect().unwrap(), driver.introspect().unwrap());
    assert_eq!(target.read_heads().unwrap(), driver.read_heads().unwrap());
    // Still a WAL database, still usable by another connection.
    let conn = fresh.conn();
    assert_eq!(texts(&conn, "PRAGMA journal_mode"), ["wal"]);
    assert_eq!(
        texts(&conn, "SELECT t FROM extra ORDER BY id"),
        ["tab\there", "line\nbreak\\"]
    );
}

#[test]
fn a_backup_is_consistent_while_another_connection_writes() {
    let file = populated();
    file.conn()
        .execute_batch("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pair INTEGER NOT NULL)")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let path = file.path.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                // Two rows per transaction that cancel out: a torn copy would not sum to zero.
                conn.execute_batch(&format!(
                    "BEGIN; INSERT INTO ledger (amount, pair) VALUES (100, {n}); \
                     INSERT INTO ledger (amount, pair) VALUES (-100, {n}); COMMIT"
                ))
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let driver = file.driver();
    let mut backups = Vec::new();
    for i in 0..5 {
        let path = file.sibling(&format!("during-{i}.db"));
        let stats = driver.backup_to(&path).unwrap();
        backups.push((path, stats));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    for (path, stats) in &backups {
        let conn = rusqlite::Connection::open(path).unwrap();
        assert_eq!(
            count(&conn, "SELECT coalesce(sum(amount), 0) FROM ledger"),
            0
        );
        assert_eq!(stats["ledger"].rows % 2, 0);
        assert_eq!(mode(path), 0o600);
        // Each restores into a fresh file with identical per-table digests.
        let fresh = TestFile::new();
        let restored = fresh.driver().restore_from(path).unwrap();
        assert_eq!(&restored, stats);
        assert_eq!(&file_table_stats(&fresh.path).unwrap(), stats);
    }
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let file = populated();
    let path = file.sibling("taken.db");
    std::fs::write(&path, b"precious").unwrap();
    let error = file.driver().backup_to(&path).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn a_restore_replaces_a_database_in_use_atomically() {
    let file = populated();
    let backup = file.sibling("before.db");
    let mut driver = file.driver();
    let stats = driver.backup_to(&backup).unwrap();
    // Change it after the backup, with another connection open on it.
    let reader = file.conn();
    file.conn()
        .execute_batch("DELETE FROM extra; CREATE TABLE later (x INTEGER)")
        .unwrap();
    assert_eq!(count(&reader, "SELECT count(*) FROM extra"), 0);
    let restored = driver.restore_from(&backup).unwrap();
    assert_eq!(restored, stats);
    // The connection that was open sees the restored database.
    assert_eq!(count(&reader, "SELECT count(*) FROM extra"), 2);
    assert_eq!(
        count(
            &reader,
            "SELECT count(*) FROM sqlite_master WHERE name = 'later'"
        ),
        0
    );
    // The restore took the migration lock and gave it back.
    assert!(!driver.is_locked());
    assert!(file.driver().try_lock().unwrap());
}

#[test]
fn a_damaged_backup_is_refused_and_changes_nothing() {
    let file = populated();
    let backup = file.sibling("damaged.db");
    let mut driver = file.driver();
    let before = driver.table_stats().unwrap();
    driver.backup_to(&backup).unwrap();
    // Cut it in half.
    let bytes = std::fs::read(&backup).unwrap();
    std::fs::write(&backup, &bytes[..bytes.len() / 2]).unwrap();
    let error = driver.restore_from(&backup).unwrap_err();
    assert!(
        matches!(&error, DriverError::Io(m) if m.contains("not an intact")),
        "{error:?}"
    );
    let missing = driver.restore_from(&file.sibling("nope.db")).unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    assert_eq!(driver.table_stats().unwrap(), before);
}

#[test]
fn digests_change_with_any_value() {
    let file = populated();
    let mut driver = file.driver();
    let before = driver.table_stats().unwrap();
    file.conn()
        .execute_batch("UPDATE extra SET r = 1.5000001 WHERE id = 1")
        .unwrap();
    let after = driver.table_stats().unwrap();
    assert_ne!(before["extra"].sha256, after["extra"].sha256);
    assert_eq!(before["extra"].rows, after["extra"].rows);
    assert_eq!(before["keyed"], after["keyed"]);
}

#[test]
fn a_missing_file_reads_as_the_empty_database_and_is_not_created() {
    let file = TestFile::new();
    let mut driver =
        SqliteDriver::connect_or_empty(&file.target(), SqliteOptions::default()).unwrap();
    assert!(driver.read_heads().unwrap().is_empty());
    assert!(!file.path.exists(), "reading created the file");
}

/// The backup policy over this driver's backup half: the same manifest, checks and restore
/// decisions as PostgreSQL's.
#[test]
fn the_backup_policy_works_through_the_driver() {
    use migrate_backup::{
        backup, restore, verify, BackupError, BackupRequest, Check, Method, RestoreOptions,
        RestoreRequest, SnapshotRequest,
    };
    let file = populated();
    let dir = tempfile::tempdir().unwrap();
    let request = |output: Option<std::path::PathBuf>| BackupRequest {
        dir: dir.path().to_owned(),
        output,
        snapshot: SnapshotRequest {
            format: None,
            one_file: false,
            jobs: 1,
            compress: None,
        },
        tool_version: "test".to_owned(),
    };
    let mut source = file.driver();
    let taken = backup(&mut source, &request(None), &mut |_| {}).unwrap();
    assert_eq!(taken.manifest.format, "sqlite");
    assert_eq!(taken.manifest.revisions, ["094916cde150"]);
    assert_eq!(taken.manifest.tables.get("extra"), Some(&2));
    assert_eq!(taken.compression, None);

    // A PostgreSQL format is refused before anything is written.
    let mut custom = request(None);
    custom.snapshot.format = Some("custom".to_owned());
    let refused = backup(&mut source, &custom, &mut |_| {}).unwrap_err();
    assert!(matches!(refused, BackupError::Refused(_)), "{refused}");

    // Read whole even by the fast check: a SQLite file has no table of contents.
    let reader = source.archive_reader().unwrap();
    let verified = verify(&taken.path, reader.as_ref(), Check::Fast).unwrap();
    assert!(verified.decoded);

    let options = |replace| RestoreOptions {
        replace,
        request: RestoreRequest {
            in_place: false,
            jobs: 1,
            session_wait: Duration::from_secs(1),
        },
    };
    let target = TestFile::new();
    let mut fresh = target.driver();
    let restored = restore(
        &mut fresh,
        &verified,
        &options(false),
        &request(None),
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(restored.method, Method::InPlace(_)));
    assert!(restored.safety_backup.is_none());
    assert_eq!(restored.tables, taken.manifest.tables);

    // Now it holds tables: refused without `replace`, and a safety backup first with it.
    let not_empty = restore(
        &mut fresh,
        &verified,
        &options(false),
        &request(None),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(not_empty, BackupError::NotEmpty { .. }),
        "{not_empty}"
    );
    let again = restore(
        &mut fresh,
        &verified,
        &options(true),
        &request(None),
        &mut |_| {},
    )
    .unwrap();
    let safety = again.safety_backup.expect("a safety backup");
    assert!(safety.path.exists());
    assert_eq!(safety.manifest.tables, taken.manifest.tables);
}

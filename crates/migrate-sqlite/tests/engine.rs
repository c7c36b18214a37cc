//! The driver under the engine on real SQLite files: state tables, foreign keys, the lock
//! file. The scenarios both databases share (dry runs, failures, the lock's wait, drift) are
//! written once in `crates/migrate-engine/tests/scenarios.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::{Driver, DriverError, StateSql};
use migrate_core::wait::wait_for_lock;
use migrate_core::{Heads, RevisionGraph};
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteStateSql, SqliteTarget};
use std::time::{Duration, Instant};

#[test]
fn a_new_file_is_created_and_reads_as_base() {
    let file = TestFile::new();
    assert!(!file.path.exists());
    let mut driver = file.driver();
    assert!(file.path.exists());
    assert_eq!(driver.read_heads().unwrap(), Heads::new());
    assert!(driver.read_history().unwrap().is_empty());
    let tables = driver.state_tables().unwrap();
    assert!(!tables.version && !tables.history);
    assert!(driver.server_version().unwrap().starts_with("SQLite 3."));
    let conn = file.conn();
    assert_eq!(texts(&conn, "PRAGMA journal_mode"), ["wal"]);
    assert_eq!(count(driver.connection(), "PRAGMA foreign_keys"), 1);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let file = TestFile::new();
    let target = SqliteTarget::File(file.sibling("missing/identity.db"));
    let error = SqliteDriver::connect(&target, SqliteOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&error, DriverError::Unreachable(m) if m.contains("does not exist")),
        "{error:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let file = TestFile::new();
    std::fs::write(&file.path, vec![b'x'; 4096]).unwrap();
    let error = SqliteDriver::connect(&file.target(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&error, DriverError::Unreachable(m) if m.contains("not a SQLite database")),
        "{error:?}"
    );
}

#[test]
fn the_statement_index_names_the_failing_statement() {
    let file = TestFile::new();
    let mut driver = file.driver();
    let statements = vec![
        "CREATE TABLE t (id INTEGER PRIMARY KEY)".to_owned(),
        "INSERT INTO t (id) VALUES (1)".to_owned(),
        "INSERT INTO t (id) VALUES (1)".to_owned(),
    ];
    let error = driver.execute_in_transaction(&statements).unwrap_err();
    assert_eq!(error.statement, Some(2));
    assert!(matches!(error.error, DriverError::Statement { .. }));
    assert!(!driver.state_tables().unwrap().version);
    assert_eq!(
        count(
            driver.connection(),
            "SELECT count(*) FROM sqlite_master WHERE name = 't'"
        ),
        0
    );
}

#[test]
fn nothing_that_breaks_a_foreign_key_is_committed() {
    let file = TestFile::new();
    let mut driver = file.driver();
    driver
        .execute_in_transaction(&[
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)".to_owned(),
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE)".to_owned(),
            "INSERT INTO parent (id) VALUES (1)".to_owned(),
            "INSERT INTO child (id, parent_id) VALUES (10, 1)".to_owned(),
        ])
        .unwrap();
    // Foreign keys are off inside the transaction (a table rebuild needs it), so the cascade
    // does not run and the dangling child row is caught before COMMIT.
    let error = driver
        .execute_in_transaction(&["DELETE FROM parent WHERE id = 1".to_owned()])
        .unwrap_err();
    assert_eq!(error.statement, None);
    assert!(
        matches!(&error.error, DriverError::Statement { message, .. }
            if message.contains("FOREIGN KEY constraint failed") && message.contains("child rowid 10 -> parent")),
        "{:?}",
        error.error
    );
    let conn = file.conn();
    assert_eq!(count(&conn, "SELECT count(*) FROM parent"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM child"), 1);
    // Outside migrations, foreign keys are enforced as configured.
    assert_eq!(count(driver.connection(), "PRAGMA foreign_keys"), 1);
    let outside = driver
        .connection()
        .execute_batch("INSERT INTO child (id, parent_id) VALUES (11, 99)");
    assert!(outside.is_err());
}

#[test]
fn a_rebuild_of_a_referenced_table_keeps_the_referring_rows() {
    use migrate_core::{Column, ColumnChange, ColumnType, Op, ReferentialAction, Revision, Table};
    let file = TestFile::new();
    let parent = Table::new("parent")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("name", ColumnType::Text))
        .primary_key("parent_pkey", &["id"]);
    let child = Table::new("child")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("parent_id", ColumnType::Integer))
        .primary_key("child_pkey", &["id"])
        .foreign_key(
            "child_parent_id_fkey",
            &["parent_id"],
            "parent",
            &["id"],
            ReferentialAction::Cascade,
        );
    let graph = RevisionGraph::new(vec![
        Revision::new(&rev_id(1), &[], "tables")
            .upgrade(vec![Op::CreateTable(parent), Op::CreateTable(child)])
            .downgrade(vec![
                Op::DropTable {
                    table: "child".into(),
                },
                Op::DropTable {
                    table: "parent".into(),
                },
            ]),
        Revision::new(&rev_id(2), &[&rev_id(1)], "name not null")
            .upgrade(vec![Op::AlterColumn {
                table: "parent".into(),
                column: "name".into(),
                change: ColumnChange {
                    nullable: Some(false),
                    default: Some(Some(migrate_core::DefaultExpr::Text("?".into()))),
                    ..ColumnChange::default()
                },
            }])
            .downgrade(vec![Op::AlterColumn {
                table: "parent".into(),
                column: "name".into(),
                change: ColumnChange {
                    nullable: Some(true),
                    default: Some(None),
                    ..ColumnChange::default()
                },
            }]),
    ])
    .unwrap();
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up(&rev_id(1))).unwrap();
    let conn = file.conn();
    conn.execute_batch(
        "INSERT INTO parent (id, name) VALUES (1, 'p'); INSERT INTO child (id, parent_id) VALUES (1, 1)",
    )
    .unwrap();
    // The rebuild drops `parent`: with foreign keys on, that would cascade into `child`.
    run(&mut engine, &up("head")).unwrap();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM child WHERE parent_id = 1"),
        1
    );
    assert_live_matches(&mut file.driver(), &graph, "head");
    run(&mut engine, &down("base")).unwrap();
    assert_live_matches(&mut file.driver(), &graph, "base");
}

#[test]
fn the_lock_is_exclusive_bounded_and_released_on_unlock_and_drop() {
    let file = TestFile::new();
    let mut first = file.driver();
    let mut second = file.driver();
    assert!(first.try_lock().unwrap());
    assert!(first.lock_path().unwrap().exists());
    assert!(!second.try_lock().unwrap());
    let started = Instant::now();
    let error = wait_for_lock(&mut second, Duration::from_millis(300), &mut |_| {}).unwrap_err();
    assert!(matches!(error, DriverError::LockBusy(_)), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error
        .to_string()
        .contains("another migration holds the lock"));
    // Locking again is harmless; unlocking frees it for the other.
    assert!(first.try_lock().unwrap());
    first.unlock().unwrap();
    assert!(second.try_lock().unwrap());
    drop(second);
    assert!(first.try_lock().unwrap());
    first.unlock().unwrap();
    first.unlock().unwrap();
}

#[test]
fn a_waiting_migrator_gets_the_lock_when_it_is_released() {
    let file = TestFile::new();
    let mut holder = file.driver();
    assert!(holder.try_lock().unwrap());
    let path = file.path.clone();
    let waiter = std::thread::spawn(move || {
        let mut driver =
            SqliteDriver::connect(&SqliteTarget::File(path), SqliteOptions::default()).unwrap();
        wait_for_lock(&mut driver, Duration::from_secs(10), &mut |_| {})
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(holder);
    waiter.join().unwrap().unwrap();
}

#[test]
fn history_times_are_iso_utc_and_durations_come_from_the_database() {
    let file = TestFile::new();
    let graph = RevisionGraph::new(vec![sql_revision(
        &rev_id(1),
        &[],
        // A statement that takes a measurable while: a recursive count.
        "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT count(*) AS n FROM c",
        "DROP TABLE slow",
    )])
    .unwrap();
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up("head")).unwrap();
    let conn = file.conn();
    let (started, finished): (String, String) = conn
        .query_row(
            "SELECT started_at, finished_at FROM identity_migrate_history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    for t in [&started, &finished] {
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
    assert!(started < finished, "{started} < {finished}");
    let history = file.driver().read_history().unwrap();
    assert!(history[0].duration_ms > 0.0, "{}", history[0].duration_ms);
    assert_eq!(history[0].db_user, "");
}

#[test]
fn the_history_statement_runs_in_a_plain_session_too() {
    // A reviewed script is run with another client, where the driver's clock view is missing:
    // the statement must still run, timing the step as zero.
    let file = TestFile::new();
    let conn = file.conn();
    for sql in SqliteStateSql.bootstrap_statements() {
        conn.execute_batch(&sql).unwrap();
    }
    let entry = migrate_core::driver::HistoryEntry {
        revision: rev_id(1),
        direction: migrate_core::Direction::Up,
        checksum: "0".repeat(64),
        outcome: migrate_core::driver::Outcome::Applied,
        os_user: "o'brien".into(),
        host: "h".into(),
        tool_version: "1".into(),
    };
    conn.execute_batch(&SqliteStateSql.history_statement(&entry))
        .unwrap();
    let history = file.driver().read_history().unwrap();
    assert_eq!(history[0].ran_by, "o'brien@h");
    assert_eq!(history[0].duration_ms, 0.0);
}

#[test]
fn an_in_memory_database_migrates_privately() {
    let graph = graph(small_chain());
    let driver = SqliteDriver::connect(&SqliteTarget::Memory, SqliteOptions::default()).unwrap();
    let mut engine = migrate_engine::Engine::new(Box::new(driver), &graph, options());
    run(&mut engine, &up("head")).unwrap();
    assert!(engine.status().unwrap().at_head);
    assert_eq!(engine.history().unwrap().len(), 3);
    // The table came from raw SQL, which the model does not see: drift, and nothing else.
    let report = engine.check().unwrap();
    assert!(report.pending.is_empty() && report.changed.is_empty());
    let text: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(text[0].contains("items"), "{text:?}");
}

/// A revision whose SQL differs by dialect.
fn per_dialect_revision(sqlite_sql: &str) -> RevisionGraph {
    let revision = migrate_core::Revision::new(&rev_id(1), &[], "per dialect")
        .upgrade(vec![migrate_core::Op::Sql(migrate_core::RawSql {
            description: "a table".into(),
            postgres: Some("CREATE TABLE t (id integer)".into()),
            sqlite: Some(sqlite_sql.into()),
        })])
        .downgrade(vec![migrate_core::Op::Sql(migrate_core::RawSql {
            description: "no table".into(),
            postgres: Some("DROP TABLE t".into()),
            sqlite: Some("DROP TABLE t".into()),
        })]);
    RevisionGraph::new(vec![revision]).unwrap()
}

#[test]
fn an_edit_of_the_sqlite_sql_alone_is_a_changed_revision_on_sqlite() {
    let file = TestFile::new();
    let applied = per_dialect_revision("CREATE TABLE t (id INTEGER)");
    run(&mut engine(&file, &applied), &up("head")).unwrap();
    let recorded = file.driver().read_history().unwrap()[0].checksum.clone();
    assert_ne!(
        Some(&recorded),
        migrate_core::checksum::checksums(&applied)
            .unwrap()
            .get(&rev_id(1)),
        "a SQLite database records the checksum of the SQL it ran"
    );
    let report = engine(&file, &applied).check().unwrap();
    assert!(report.changed.is_empty(), "{report:?}");

    // Only the SQLite body changes: PostgreSQL's checksum stays, SQLite's does not.
    let edited = per_dialect_revision("CREATE TABLE t (id INTEGER, note TEXT)");
    assert_eq!(
        migrate_core::checksum::checksums(&applied).unwrap(),
        migrate_core::checksum::checksums(&edited).unwrap()
    );
    let report = engine(&file, &edited).check().unwrap();
    assert_eq!(report.changed, [rev_id(1)]);
}

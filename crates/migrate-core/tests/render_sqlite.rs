//! SQLite rendering: one snapshot per op and per case that needs care, each also run on a real
//! SQLite (the `sqlite3` command line) against a fixture holding rows, and the identity service's
//! real revisions run up to head and back down to base.
//!
//! Without `/usr/bin/sqlite3` the snapshots are still checked; the runs are skipped with a note.

#![allow(missing_docs)]

use migrate_core::render::{cleanup, render, render_ops};
use migrate_core::{
    Column, ColumnChange, ColumnType, Constraint, ConstraintKind, DefaultExpr, Dialect, Direction,
    ForeignKey, Function, Index, IndexKey, Op, RawSql, ReferentialAction, RenderError, Schema,
    Statement, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const SQLITE3: &str = "/usr/bin/sqlite3";

/// The identity service's `updated_at` trigger function, as a revision writes it.
const STAMP: &str = "BEGIN\n    NEW.updated_at = now();\n    RETURN NEW;\nEND;";

const ORG: &str = "0b6f1d2e-8c4a-4f7e-9a1b-2c3d4e5f6a7b";
const ADA: &str = "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d";
const BOB: &str = "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e";

fn name(table: &str) -> TableName {
    TableName::from(table)
}

fn stamp_trigger(name: &str) -> Trigger {
    Trigger {
        name: name.into(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: "set_updated_at".into(),
    }
}

fn organizations() -> Table {
    Table::new("organizations")
        .column(
            Column::new("id", ColumnType::Uuid)
                .not_null()
                .default(DefaultExpr::RandomUuid),
        )
        .column(Column::new("slug", ColumnType::varchar(64)).not_null())
        .column(Column::new("name", ColumnType::Text))
        .column(
            Column::new("created_at", ColumnType::TimestampTz)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .primary_key("organizations_pkey", &["id"])
        .unique("uq_organizations_slug", &["slug"])
}

/// Every model type and default, a self-reference, a CHECK, a partial expression index and the
/// `updated_at` trigger: what a rebuild must carry over.
fn users() -> Table {
    Table::new("users")
        .column(
            Column::new("id", ColumnType::Uuid)
                .not_null()
                .default(DefaultExpr::RandomUuid),
        )
        .column(Column::new("organization_id", ColumnType::Uuid))
        .column(Column::new("manager_id", ColumnType::Uuid))
        .column(Column::new("email", ColumnType::varchar(320)).not_null())
        .column(
            Column::new("status", ColumnType::Text)
                .not_null()
                .default(DefaultExpr::Text("active".into())),
        )
        .column(
            Column::new("is_admin", ColumnType::Boolean)
                .not_null()
                .default(DefaultExpr::Bool(false)),
        )
        .column(
            Column::new("login_count", ColumnType::BigInt)
                .not_null()
                .default(DefaultExpr::Int(0)),
        )
        .column(
            Column::new("settings", ColumnType::Jsonb)
                .not_null()
                .default(DefaultExpr::Json("{}".into())),
        )
        .column(Column::new("profile", ColumnType::Json))
        .column(Column::new("last_ip", ColumnType::Inet))
        .column(
            Column::new("nickname", ColumnType::Text).default(DefaultExpr::Text("it's me".into())),
        )
        .column(Column::new("balance", ColumnType::Numeric(Some((12, 2)))))
        .column(Column::new("ratio", ColumnType::Numeric(None)))
        .column(Column::new("score", ColumnType::Double))
        .column(Column::new("rank", ColumnType::SmallInt))
        .column(Column::new("age", ColumnType::Integer))
        .column(Column::new("birthday", ColumnType::Date))
        .column(Column::new("avatar", ColumnType::Bytea))
        .column(Column::new("bio", ColumnType::Varchar(None)))
        .column(Column::new("timestamp", ColumnType::Timestamp))
        .column(
            Column::new("created_at", ColumnType::Timestamp)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .column(
            Column::new("updated_at", ColumnType::Timestamp)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .column(Column::new("deleted_at", ColumnType::Timestamp))
        .column(
            Column::new("expires_at", ColumnType::TimestampTz)
                .default(DefaultExpr::Sql("datetime('now', '+30 days')".into())),
        )
        .primary_key("users_pkey", &["id"])
        .foreign_key(
            "users_organization_id_fkey",
            &["organization_id"],
            "organizations",
            &["id"],
            ReferentialAction::SetNull,
        )
        .constraint(
            "users_manager_id_fkey",
            ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["manager_id".into()],
                ref_table: name("users"),
                ref_columns: vec!["id".into()],
                on_delete: ReferentialAction::SetNull,
                on_update: ReferentialAction::Restrict,
            }),
        )
        .check("ck_users_login_count", "login_count >= 0")
        .index(Index::new("ix_users_organization_id", &["organization_id"]))
        .index(live_email_index())
        .trigger(stamp_trigger("users_set_updated_at"))
}

/// `CREATE UNIQUE INDEX ... ON users (lower(email)) WHERE deleted_at IS NULL`.
fn live_email_index() -> Index {
    Index::on_keys(
        "uq_users_lower_email_live",
        vec![IndexKey::Expr("lower(email)".into())],
    )
    .unique()
    .filtered("deleted_at IS NULL")
}

/// References `users` with ON DELETE CASCADE: a rebuild of `users` must not touch its rows.
fn sessions() -> Table {
    Table::new("sessions")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("user_id", ColumnType::Uuid).not_null())
        .column(Column::new("token", ColumnType::Text).not_null())
        .primary_key("sessions_pkey", &["id"])
        .foreign_key(
            "sessions_user_id_fkey",
            &["user_id"],
            "users",
            &["id"],
            ReferentialAction::Cascade,
        )
        .index(Index::new("ix_sessions_user_id", &["user_id"]))
}

/// A table that a revision moves to the `legacy` schema; `action` is a SQLite keyword.
fn user_activities() -> Table {
    Table::new("user_activities")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("user_id", ColumnType::Uuid))
        .column(Column::new("action", ColumnType::varchar(50)))
        .column(Column::new("updated_at", ColumnType::Timestamp))
        .primary_key("user_activities_pkey", &["id"])
        .index(Index::new("ix_user_activities_user_id", &["user_id"]))
        .trigger(stamp_trigger("user_activities_set_updated_at"))
}

fn users_simple() -> Table {
    Table::new("legacy.users_simple")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("email", ColumnType::Text))
        .column(Column::new("user_id", ColumnType::Uuid))
        .primary_key("users_simple_pkey", &["id"])
        .index(Index::new("ix_users_simple_email", &["email"]))
}

/// The ops that build the fixture, from an empty schema.
fn fixture_ops() -> Vec<Op> {
    vec![
        Op::CreateSchema {
            name: "legacy".into(),
        },
        Op::CreateFunction(Function {
            name: "set_updated_at".into(),
            body: STAMP.into(),
        }),
        Op::CreateTable(organizations()),
        Op::CreateTable(users()),
        Op::CreateTable(sessions()),
        Op::CreateTable(user_activities()),
        Op::CreateTable(users_simple()),
    ]
}

/// The rows every run starts from, and how many each table holds.
const SEED: &str = "\
INSERT INTO organizations (id, slug, name) VALUES ('0b6f1d2e-8c4a-4f7e-9a1b-2c3d4e5f6a7b', 'acme', 'Acme');
INSERT INTO users (id, organization_id, email, profile, last_ip, balance, \"timestamp\", created_at, updated_at)
VALUES ('1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', '0b6f1d2e-8c4a-4f7e-9a1b-2c3d4e5f6a7b', 'Ada@example.com',
        '{\"a\": 1}', '10.0.0.1', 12.5, '2024-01-02 03:04:05', '2024-01-02 03:04:05', '2000-01-01 00:00:00');
INSERT INTO users (id, organization_id, manager_id, email, created_at, updated_at)
VALUES ('2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e', '0b6f1d2e-8c4a-4f7e-9a1b-2c3d4e5f6a7b',
        '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', 'bob@example.com', '2024-02-03 04:05:06', '2000-01-01 00:00:00');
INSERT INTO sessions (id, user_id, token) VALUES
    ('3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f', '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', 'ada-token'),
    ('4d5e6f7a-8b9c-4d4e-9f5a-6b7c8d9e0f1a', '2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e', 'bob-token');
INSERT INTO user_activities (id, user_id, \"action\") VALUES (1, '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', 'login');
INSERT INTO \"legacy.users_simple\" (id, email) VALUES (1, 'old@example.com');
";

const SEEDED: [(&str, usize); 5] = [
    ("organizations", 1),
    ("users", 2),
    ("sessions", 2),
    ("user_activities", 1),
    ("legacy.users_simple", 1),
];

fn apply(schema: &mut Schema, op: &Op) {
    op.apply(schema)
        .unwrap_or_else(|e| panic!("{op:?} applies to the fixture: {e}"));
}

/// The schema every op below is rendered against.
fn fixture() -> Schema {
    let mut schema = Schema::new();
    for op in fixture_ops() {
        apply(&mut schema, &op);
    }
    schema
}

fn sqlite(op: &Op, before: &Schema) -> Result<Vec<Statement>, RenderError> {
    render(op, before, Dialect::Sqlite)
}

/// The statements as a script, one per line group.
fn script(statements: &[Statement]) -> String {
    statements.iter().map(|s| format!("{};\n", s.sql)).collect()
}

/// The statements in one transaction, as the engine runs a revision.
fn transaction(statements: &[Statement]) -> String {
    assert!(
        statements.iter().all(|s| s.transactional),
        "every SQLite statement is transactional"
    );
    format!("BEGIN;\n{}COMMIT;\n", script(statements))
}

/// Renders `op` against the fixture (checking that the model accepts it) as a SQL script.
fn rendered(op: &Op) -> String {
    let before = fixture();
    let statements = sqlite(op, &before).expect("SQLite renders this op");
    apply(&mut before.clone(), op);
    assert!(cleanup(op, Dialect::Sqlite).is_empty());
    script(&statements)
}

/// A database file that is removed when dropped.
struct Db {
    path: PathBuf,
}

impl Db {
    /// A fresh database, or `None` (with a note) when the machine has no `sqlite3`.
    fn new() -> Option<Db> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        if !Path::new(SQLITE3).exists() {
            eprintln!("note: {SQLITE3} is absent; the SQL is not run on SQLite");
            return None;
        }
        let path = std::env::temp_dir().join(format!(
            "identity-migrate-render-sqlite-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        Some(Db { path })
    }

    /// Runs `script` in a new connection, stopping at the first error: stdout, or stderr.
    fn run(&self, script: &str) -> Result<String, String> {
        let mut child = Command::new(SQLITE3)
            .args(["-batch", "-bail", "-init", "/dev/null"])
            .arg(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sqlite3 starts");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())
            .expect("sqlite3 reads the script");
        let output = child.wait_with_output().expect("sqlite3 ends");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Runs `script`, panicking with SQLite's message and the script when it fails.
    fn ok(&self, script: &str) -> String {
        self.run(script)
            .unwrap_or_else(|e| panic!("SQLite refused:\n{e}\n--- script ---\n{script}"))
    }

    /// The fixture, built by its own rendering, holding the seed rows.
    fn with_fixture() -> Option<Db> {
        let db = Db::new()?;
        let mut schema = Schema::new();
        let statements = render_ops(
            "fixture",
            Direction::Up,
            &fixture_ops(),
            &mut schema,
            Dialect::Sqlite,
        )
        .expect("the fixture renders");
        db.ok(&format!("{}{SEED}", transaction(&statements)));
        Some(db)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `op` in a transaction on the fixture with its rows, with foreign keys off as the driver
/// runs migrations; `None` without `sqlite3`.
fn run_on_fixture(op: &Op) -> Option<(Db, Result<String, String>)> {
    let db = Db::with_fixture()?;
    let statements = sqlite(op, &fixture()).expect("SQLite renders this op");
    let outcome = db.run(&format!(
        "PRAGMA foreign_keys = OFF;\n{}",
        transaction(&statements)
    ));
    Some((db, outcome))
}

/// Runs `op` on the fixture and checks that it succeeded, kept every row of every table still
/// there, and left no foreign key broken and the file sound.
fn runs_and_keeps_rows(op: &Op) {
    let Some((db, outcome)) = run_on_fixture(op) else {
        return;
    };
    if let Err(e) = outcome {
        panic!("SQLite refused {op:?}:\n{e}");
    }
    let mut after = fixture();
    apply(&mut after, op);
    for (table, rows) in SEEDED {
        if after.table(&name(table)).is_some() {
            let count = db.ok(&format!("SELECT count(*) FROM \"{table}\";"));
            assert_eq!(
                count.trim(),
                rows.to_string(),
                "rows of {table} after {op:?}"
            );
        }
    }
    assert_eq!(db.ok("PRAGMA foreign_key_check;"), "", "after {op:?}");
    assert_eq!(db.ok("PRAGMA integrity_check;").trim(), "ok");
}

fn alter(table: &str, column: &str, change: ColumnChange) -> Op {
    Op::AlterColumn {
        table: name(table),
        column: column.into(),
        change,
    }
}

fn add_constraint(table: &str, constraint: &str, kind: ConstraintKind, not_valid: bool) -> Op {
    Op::AddConstraint {
        table: name(table),
        constraint: Constraint {
            name: constraint.into(),
            kind,
        },
        not_valid,
    }
}

fn unsupported(result: Result<Vec<Statement>, RenderError>) -> String {
    match result {
        Err(RenderError::Unsupported {
            dialect: Dialect::Sqlite,
            what,
        }) => what,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// --- Tables ---

#[test]
fn create_table_users_maps_every_type_default_constraint_index_and_trigger() {
    let op = Op::CreateTable(users());
    let mut before = fixture();
    apply(
        &mut before,
        &Op::DropTable {
            table: name("sessions"),
        },
    );
    apply(
        &mut before,
        &Op::DropTable {
            table: name("users"),
        },
    );
    let statements = sqlite(&op, &before).expect("renders");
    insta::assert_snapshot!(script(&statements));
}

#[test]
fn create_table_in_the_legacy_schema_prefixes_the_table_and_its_indexes() {
    let table = Table::new("legacy.user_sessions_simple")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("user_id", ColumnType::Uuid))
        .primary_key("user_sessions_simple_pkey", &["id"])
        .foreign_key(
            "user_sessions_simple_user_id_fkey",
            &["user_id"],
            "legacy.users_simple",
            &["id"],
            ReferentialAction::NoAction,
        )
        .index(Index::new("ix_user_sessions_simple_user_id", &["user_id"]).unique());
    let op = Op::CreateTable(table);
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn drop_table() {
    let op = Op::DropTable {
        table: name("sessions"),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn rename_table_recreates_its_triggers_under_the_new_name() {
    let op = Op::RenameTable {
        table: name("users"),
        to: "accounts".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
    if let Some((db, outcome)) = run_on_fixture(&op) {
        outcome.expect("runs");
        // SQLite rewrote the foreign key of `sessions` to the new name.
        let sessions = db.ok("SELECT sql FROM sqlite_master WHERE name = 'sessions';");
        assert!(sessions.contains("REFERENCES \"accounts\""), "{sessions}");
    }
}

#[test]
fn set_table_schema_to_legacy_renames_the_table_its_indexes_and_triggers() {
    let op = Op::SetTableSchema {
        table: name("user_activities"),
        schema: Some("legacy".into()),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
    if let Some((db, outcome)) = run_on_fixture(&op) {
        outcome.expect("runs");
        let names = db.ok("SELECT type || ' ' || name FROM sqlite_master \
             WHERE tbl_name = 'legacy.user_activities' ORDER BY 1;");
        insta::assert_snapshot!("set_table_schema_objects_in_sqlite_master", names);
    }
}

#[test]
fn set_table_schema_back_to_the_default_schema() {
    let op = Op::SetTableSchema {
        table: name("legacy.users_simple"),
        schema: None,
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn create_and_drop_schema_render_nothing() {
    let before = fixture();
    let create = Op::CreateSchema {
        name: "archive".into(),
    };
    assert_eq!(sqlite(&create, &before), Ok(Vec::new()));
    let mut empty = Schema::new();
    apply(&mut empty, &create);
    let drop = Op::DropSchema {
        name: "archive".into(),
    };
    assert_eq!(sqlite(&drop, &empty), Ok(Vec::new()));
}

// --- Columns ---

#[test]
fn add_not_null_column_with_a_constant_default_uses_alter_table() {
    let op = Op::AddColumn {
        table: name("users"),
        column: Column::new("locale", ColumnType::varchar(10))
            .not_null()
            .default(DefaultExpr::Text("en".into())),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn add_column_with_a_current_timestamp_default_rebuilds_the_table() {
    let op = Op::AddColumn {
        table: name("sessions"),
        column: Column::new("created_at", ColumnType::TimestampTz)
            .not_null()
            .default(DefaultExpr::Now),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
    if let Some((db, outcome)) = run_on_fixture(&op) {
        outcome.expect("runs");
        // Each existing row got the default, as PostgreSQL gives it.
        let filled =
            db.ok("SELECT count(*) FROM sessions WHERE created_at LIKE '20__-__-__ __:__:__';");
        assert_eq!(filled.trim(), "2");
    }
}

#[test]
fn add_not_null_column_without_default_rebuilds_and_fails_on_existing_rows_like_postgres() {
    let op = Op::AddColumn {
        table: name("sessions"),
        column: Column::new("device", ColumnType::Text).not_null(),
    };
    insta::assert_snapshot!(rendered(&op));
    if let Some((db, outcome)) = run_on_fixture(&op) {
        let error = outcome.expect_err("the existing rows have no value for it");
        assert!(error.contains("NOT NULL constraint failed"), "{error}");
        // The transaction rolled back whole.
        assert_eq!(db.ok("SELECT count(*) FROM sessions;").trim(), "2");
        assert!(!db
            .ok("SELECT sql FROM sqlite_master WHERE name = 'sessions';")
            .contains("device"));
    }
}

#[test]
fn drop_column_that_nothing_names_uses_alter_table() {
    let op = Op::DropColumn {
        table: name("legacy.users_simple"),
        column: "user_id".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn drop_column_named_by_an_index_and_a_foreign_key_rebuilds_the_table() {
    let op = Op::DropColumn {
        table: name("sessions"),
        column: "user_id".into(),
    };
    let dropped_with_index = Op::DropColumn {
        table: name("users"),
        column: "organization_id".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    insta::assert_snapshot!(rendered(&dropped_with_index));
    runs_and_keeps_rows(&op);
    runs_and_keeps_rows(&dropped_with_index);
}

#[test]
fn rename_column_quotes_a_sqlite_keyword() {
    let op = Op::RenameColumn {
        table: name("user_activities"),
        from: "action".into(),
        to: "kind".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn alter_column_type_rebuilds_copying_every_column_and_recreating_indexes_and_triggers() {
    let op = alter(
        "users",
        "created_at",
        ColumnChange {
            ty: Some((
                ColumnType::TimestampTz,
                Some("created_at AT TIME ZONE 'UTC'".into()),
            )),
            ..ColumnChange::default()
        },
    );
    let script = rendered(&op);
    insta::assert_snapshot!(script);
    let table = users();
    let columns: Vec<&str> = table
        .columns
        .iter()
        .map(|c| match c.name.as_str() {
            "timestamp" => "\"timestamp\"",
            other => other,
        })
        .collect();
    let list = columns.join(", ");
    assert!(
        script.contains(&format!(
            "INSERT INTO _new_users ({list}) SELECT {list} FROM users"
        )),
        "the copy lists every column:\n{script}"
    );
    for index in users().indexes.keys() {
        assert!(
            script.contains(&format!("INDEX {index} ON users")),
            "{index}"
        );
    }
    assert!(script.contains("CREATE TRIGGER \"users.users_set_updated_at\""));
    runs_and_keeps_rows(&op);
}

#[test]
fn alter_column_nullability_and_default_rebuild() {
    let op = alter(
        "sessions",
        "token",
        ColumnChange {
            nullable: Some(true),
            default: Some(Some(DefaultExpr::Text("none".into()))),
            ..ColumnChange::default()
        },
    );
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn alter_column_that_changes_nothing_renders_nothing() {
    let op = alter("users", "email", ColumnChange::default());
    assert_eq!(rendered(&op), "");
}

#[test]
fn alter_column_with_a_computing_using_expression_is_unsupported() {
    let op = alter(
        "users",
        "balance",
        ColumnChange {
            ty: Some((ColumnType::BigInt, Some("(balance * 100)::bigint".into()))),
            ..ColumnChange::default()
        },
    );
    let what = unsupported(sqlite(&op, &fixture()));
    insta::assert_snapshot!(what);
}

// --- Indexes ---

#[test]
fn create_unique_partial_index_on_an_expression() {
    let op = Op::CreateIndex {
        table: name("users"),
        index: Index::on_keys(
            "uq_users_org_lower_email_live",
            vec![
                IndexKey::Column("organization_id".into()),
                IndexKey::Expr("lower(email)".into()),
            ],
        )
        .unique()
        .filtered("deleted_at IS NULL"),
        concurrently: false,
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn create_index_concurrently_is_a_plain_transactional_index() {
    let op = Op::CreateIndex {
        table: name("legacy.users_simple"),
        index: Index::new("ix_users_simple_user_id", &["user_id"]),
        concurrently: true,
    };
    let statements = sqlite(&op, &fixture()).expect("renders");
    assert!(statements.iter().all(|s| s.transactional));
    insta::assert_snapshot!(script(&statements));
    runs_and_keeps_rows(&op);
}

#[test]
fn drop_index_in_the_legacy_schema() {
    let op = Op::DropIndex {
        table: name("legacy.users_simple"),
        name: "ix_users_simple_email".into(),
        concurrently: true,
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

// --- Constraints ---

#[test]
fn add_check_constraint_rebuilds_and_validates_at_once_even_not_valid() {
    let op = add_constraint(
        "users",
        "ck_users_status",
        ConstraintKind::Check {
            expr: "status IN ('active', 'suspended')".into(),
            sqlite: None,
        },
        true,
    );
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn add_check_constraint_that_rows_break_fails_the_revision() {
    let op = add_constraint(
        "users",
        "ck_users_status",
        ConstraintKind::Check {
            expr: "status = 'suspended'".into(),
            sqlite: None,
        },
        false,
    );
    if let Some((db, outcome)) = run_on_fixture(&op) {
        let error = outcome.expect_err("both users are active");
        assert!(error.contains("CHECK constraint failed"), "{error}");
        assert_eq!(db.ok("SELECT count(*) FROM users;").trim(), "2");
    }
}

#[test]
fn a_check_with_a_sqlite_spelling_is_rendered_in_it_and_a_postgres_only_one_is_refused() {
    let regex = "email ~ '^[^@]+@[^@]+$'";
    let spelled = add_constraint(
        "users",
        "ck_users_email",
        ConstraintKind::Check {
            expr: regex.into(),
            sqlite: Some("email GLOB '*?@?*'".into()),
        },
        false,
    );
    let sql = rendered(&spelled);
    assert!(sql.contains("CHECK (email GLOB '*?@?*')"), "{sql}");
    assert!(!sql.contains('~'), "{sql}");
    runs_and_keeps_rows(&spelled);

    let postgres_only = add_constraint(
        "users",
        "ck_users_email",
        ConstraintKind::Check {
            expr: regex.into(),
            sqlite: None,
        },
        false,
    );
    let error = unsupported(sqlite(&postgres_only, &fixture()));
    assert!(error.contains("regular expression"), "{error}");
}

#[test]
fn add_foreign_key_on_delete_set_null_checks_the_rows() {
    let op = add_constraint(
        "user_activities",
        "user_activities_user_id_fkey",
        ConstraintKind::ForeignKey(ForeignKey {
            columns: vec!["user_id".into()],
            ref_table: name("users"),
            ref_columns: vec!["id".into()],
            on_delete: ReferentialAction::SetNull,
            on_update: ReferentialAction::NoAction,
        }),
        false,
    );
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn add_foreign_key_that_rows_break_is_refused_with_foreign_keys_off() {
    let op = add_constraint(
        "legacy.users_simple",
        "users_simple_user_id_fkey",
        ConstraintKind::ForeignKey(ForeignKey {
            columns: vec!["user_id".into()],
            ref_table: name("users"),
            ref_columns: vec!["id".into()],
            on_delete: ReferentialAction::NoAction,
            on_update: ReferentialAction::NoAction,
        }),
        false,
    );
    let Some(db) = Db::with_fixture() else {
        return;
    };
    db.ok("UPDATE \"legacy.users_simple\" SET user_id = '99999999-9999-4999-8999-999999999999';");
    let statements = sqlite(&op, &fixture()).expect("renders");
    let error = db
        .run(&format!(
            "PRAGMA foreign_keys = OFF;\n{}",
            transaction(&statements)
        ))
        .expect_err("the row points at no user");
    assert!(
        error.contains("rows of legacy.users_simple break a foreign key"),
        "{error}"
    );
    assert!(!db
        .ok("SELECT sql FROM sqlite_master WHERE name = 'legacy.users_simple';")
        .contains("users_simple_user_id_fkey"));
}

#[test]
fn add_primary_key_and_unique_constraints() {
    let before = fixture();
    let mut without_pk = before.clone();
    apply(
        &mut without_pk,
        &Op::DropConstraint {
            table: name("legacy.users_simple"),
            name: "users_simple_pkey".into(),
        },
    );
    let pk = add_constraint(
        "legacy.users_simple",
        "users_simple_pkey",
        ConstraintKind::PrimaryKey {
            columns: vec!["id".into()],
        },
        false,
    );
    insta::assert_snapshot!(script(&sqlite(&pk, &without_pk).expect("renders")));
    let unique = add_constraint(
        "users",
        "uq_users_org_email",
        ConstraintKind::Unique {
            columns: vec!["organization_id".into(), "email".into()],
        },
        false,
    );
    insta::assert_snapshot!(rendered(&unique));
    runs_and_keeps_rows(&unique);
}

#[test]
fn drop_constraint_rebuilds_without_it() {
    let op = Op::DropConstraint {
        table: name("users"),
        name: "ck_users_login_count".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn validate_foreign_key_checks_the_rows_and_validate_check_renders_nothing() {
    let fk = Op::ValidateConstraint {
        table: name("sessions"),
        name: "sessions_user_id_fkey".into(),
    };
    insta::assert_snapshot!(rendered(&fk));
    runs_and_keeps_rows(&fk);
    let check = Op::ValidateConstraint {
        table: name("users"),
        name: "ck_users_login_count".into(),
    };
    assert_eq!(rendered(&check), "");
}

// --- Functions and triggers ---

#[test]
fn create_and_drop_function_render_nothing() {
    let create = Op::CreateFunction(Function {
        name: "touch".into(),
        body: "BEGIN RETURN NULL; END;".into(),
    });
    assert_eq!(rendered(&create), "");
    let mut before = fixture();
    apply(&mut before, &create);
    let drop = Op::DropFunction {
        name: "touch".into(),
    };
    assert_eq!(sqlite(&drop, &before), Ok(Vec::new()));
}

#[test]
fn create_trigger_for_the_updated_at_function_stamps_the_row_after_update() {
    let op = Op::CreateTrigger {
        table: name("sessions"),
        trigger: stamp_trigger("sessions_set_updated_at"),
    };
    let mut before = fixture();
    apply(
        &mut before,
        &Op::AddColumn {
            table: name("sessions"),
            column: Column::new("updated_at", ColumnType::TimestampTz),
        },
    );
    insta::assert_snapshot!(script(&sqlite(&op, &before).expect("renders")));
}

#[test]
fn the_updated_at_trigger_overwrites_the_time_like_postgres_does() {
    let Some(db) = Db::with_fixture() else {
        return;
    };
    // The fixture's users trigger: an UPDATE that does not name updated_at gets it stamped, and
    // so does one that writes an old time, as PostgreSQL's BEFORE trigger would.
    db.ok(&format!(
        "PRAGMA recursive_triggers = ON;\n\
         UPDATE users SET status = 'suspended' WHERE id = '{ADA}';\n\
         UPDATE users SET updated_at = '1999-12-31 00:00:00' WHERE id = '{BOB}';"
    ));
    let stamped =
        db.ok("SELECT count(*) FROM users WHERE updated_at >= datetime('now', '-1 minute');");
    assert_eq!(stamped.trim(), "2");
}

#[test]
fn drop_trigger() {
    let op = Op::DropTrigger {
        table: name("users"),
        name: "users_set_updated_at".into(),
    };
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
}

#[test]
fn a_trigger_function_other_than_the_updated_at_stamp_is_unsupported() {
    let mut before = fixture();
    apply(
        &mut before,
        &Op::CreateFunction(Function {
            name: "bump_version".into(),
            body: "BEGIN NEW.version = OLD.version + 1; RETURN NEW; END;".into(),
        }),
    );
    let op = Op::CreateTrigger {
        table: name("users"),
        trigger: Trigger {
            name: "users_bump_version".into(),
            timing: TriggerTiming::Before,
            events: vec![TriggerEvent::Update],
            function: "bump_version".into(),
        },
    };
    insta::assert_snapshot!(unsupported(sqlite(&op, &before)));
    // The stamp called on INSERT too is not what the SQLite form does either.
    let on_insert = Op::CreateTrigger {
        table: name("users"),
        trigger: Trigger {
            events: vec![TriggerEvent::Insert, TriggerEvent::Update],
            ..stamp_trigger("users_stamp_on_insert")
        },
    };
    insta::assert_snapshot!(
        "stamp_on_insert_is_unsupported",
        unsupported(sqlite(&on_insert, &before))
    );
    // A rebuild recreating an inexpressible trigger refuses as well, rather than dropping it.
    let mut with_trigger = before.clone();
    apply(&mut with_trigger, &op);
    let rebuild = Op::DropConstraint {
        table: name("users"),
        name: "ck_users_login_count".into(),
    };
    assert!(unsupported(sqlite(&rebuild, &with_trigger)).contains("bump_version"));
}

// --- Raw SQL ---

#[test]
fn raw_sql_renders_its_sqlite_body_and_nothing_when_it_has_none() {
    let op = Op::Sql(RawSql {
        description: "backfill the nickname".into(),
        postgres: Some("UPDATE users SET nickname = split_part(email, '@', 1)".into()),
        sqlite: Some(
            "UPDATE users SET nickname = substr(email, 1, instr(email, '@') - 1);\n".into(),
        ),
    });
    insta::assert_snapshot!(rendered(&op));
    runs_and_keeps_rows(&op);
    let postgres_only = Op::Sql(RawSql {
        description: "a PostgreSQL-only check".into(),
        postgres: Some("DO $$ BEGIN END $$".into()),
        sqlite: None,
    });
    assert_eq!(rendered(&postgres_only), "");
}

// --- On a real SQLite ---

#[test]
fn defaults_evaluate_to_what_the_model_says() {
    let Some(db) = Db::with_fixture() else {
        return;
    };
    db.ok("INSERT INTO organizations (slug) VALUES ('one'), ('two');");
    let out = db.ok(
        "SELECT count(DISTINCT id) FROM organizations WHERE slug IN ('one', 'two') \
           AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*' \
           AND length(id) = 36 AND substr(id, 15, 1) = '4' AND substr(id, 20, 1) IN ('8', '9', 'a', 'b') \
           AND id = lower(id) AND created_at LIKE '20__-__-__ __:__:__';\n\
         INSERT INTO users (email) VALUES ('new@example.com');\n\
         SELECT status, is_admin, typeof(is_admin), login_count, settings, nickname, \
           expires_at > CURRENT_TIMESTAMP FROM users WHERE email = 'new@example.com';\n\
         SELECT typeof(id), typeof(settings), typeof(last_ip), typeof(created_at) FROM users \
           WHERE id = '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d';",
    );
    assert_eq!(
        out,
        "2\nactive|0|integer|0|{}|it's me|1\ntext|text|text|text\n"
    );
}

#[test]
fn a_uuid_of_decimal_digits_stays_text() {
    // What NUMERIC affinity (a column declared `UUID`) would turn into a REAL.
    let Some(db) = Db::with_fixture() else {
        return;
    };
    let out = db.ok(
        "INSERT INTO organizations (id, slug) VALUES ('12345678901234567890123456789012', 'digits'), \
           ('1234e678901234567890123456789012', 'exponent');\n\
         SELECT id, typeof(id) FROM organizations WHERE slug IN ('digits', 'exponent') ORDER BY slug;",
    );
    assert_eq!(
        out,
        "12345678901234567890123456789012|text\n1234e678901234567890123456789012|text\n"
    );
}

#[test]
fn a_rebuild_keeps_every_value_index_and_trigger() {
    let Some(db) = Db::with_fixture() else {
        return;
    };
    let dump = "SELECT * FROM users ORDER BY id;";
    let before_rows = db.ok(dump);
    let op = alter(
        "users",
        "last_ip",
        ColumnChange {
            ty: Some((ColumnType::varchar(45), Some("abbrev(last_ip)".into()))),
            nullable: Some(true),
            ..ColumnChange::default()
        },
    );
    let statements = sqlite(&op, &fixture()).expect("renders");
    db.ok(&format!(
        "PRAGMA foreign_keys = OFF;\n{}",
        transaction(&statements)
    ));
    assert_eq!(db.ok(dump), before_rows, "every value is kept");
    let objects =
        db.ok("SELECT type || ' ' || name FROM sqlite_master WHERE tbl_name = 'users' ORDER BY 1;");
    insta::assert_snapshot!(objects);
    // The sessions of both users are still there, their keys intact.
    assert_eq!(
        db.ok("SELECT count(*) FROM sessions JOIN users ON users.id = sessions.user_id;")
            .trim(),
        "2"
    );
    // The partial unique index still holds for live users, up to case.
    let duplicate = db
        .run("INSERT INTO users (email) VALUES ('ADA@example.com');")
        .expect_err("a live user has that email up to case");
    assert!(
        duplicate.contains("UNIQUE constraint failed"),
        "{duplicate}"
    );
    db.ok("UPDATE users SET email = 'ada@example.com' WHERE id = '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d';");
    assert_eq!(
        db.ok(
            "SELECT updated_at > '2000-01-01 00:00:00' FROM users WHERE email = 'ada@example.com';"
        )
        .trim(),
        "1",
        "the trigger was recreated"
    );
    assert_eq!(db.ok("PRAGMA foreign_key_check;"), "");
}

#[test]
fn a_rebuild_of_a_referenced_table_refuses_to_run_with_foreign_keys_on() {
    // With foreign keys on, dropping the old `users` would delete every session (ON DELETE
    // CASCADE), and PRAGMA foreign_keys cannot be turned off inside the transaction: refused.
    let Some(db) = Db::with_fixture() else {
        return;
    };
    let op = alter(
        "users",
        "email",
        ColumnChange {
            nullable: Some(true),
            ..ColumnChange::default()
        },
    );
    let statements = sqlite(&op, &fixture()).expect("renders");
    let error = db
        .run(&format!(
            "PRAGMA foreign_keys = ON;\n{}",
            transaction(&statements)
        ))
        .expect_err("refused");
    assert!(
        error.contains("rebuilding users needs PRAGMA foreign_keys = OFF"),
        "{error}"
    );
    assert_eq!(db.ok("SELECT count(*) FROM sessions;").trim(), "2");
}

#[test]
fn a_rebuild_of_a_self_referencing_table_keeps_its_references_with_foreign_keys_on() {
    let Some(db) = Db::new() else {
        return;
    };
    let units = Table::new("units")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("parent_id", ColumnType::Integer))
        .column(Column::new("label", ColumnType::Text))
        .primary_key("units_pkey", &["id"])
        .foreign_key(
            "units_parent_id_fkey",
            &["parent_id"],
            "units",
            &["id"],
            ReferentialAction::SetNull,
        );
    let mut schema = Schema::new();
    let create = render_ops(
        "units",
        Direction::Up,
        &[Op::CreateTable(units)],
        &mut schema,
        Dialect::Sqlite,
    )
    .expect("renders");
    db.ok(&format!(
        "{}INSERT INTO units VALUES (2, 1, 'child'), (1, NULL, 'root');",
        transaction(&create)
    ));
    let op = alter(
        "units",
        "label",
        ColumnChange {
            ty: Some((ColumnType::varchar(100), None)),
            ..ColumnChange::default()
        },
    );
    let statements = sqlite(&op, &schema).expect("renders");
    db.ok(&format!(
        "PRAGMA foreign_keys = ON;\n{}",
        transaction(&statements)
    ));
    assert_eq!(
        db.ok("SELECT id, parent_id FROM units ORDER BY id;"),
        "1|\n2|1\n"
    );
    let sql = db.ok("SELECT sql FROM sqlite_master WHERE name = 'units';");
    assert!(sql.contains("REFERENCES \"units\""), "{sql}");
}

/// The identity service's revisions, each upgraded in its own transaction up to the newest one
/// that renders for SQLite, then downgraded back to base, with rows in the tables.
#[test]
fn identity_revisions_upgrade_and_downgrade_on_sqlite() {
    let graph = identity_schema::graph();
    let mut schema = Schema::new();
    let mut steps = Vec::new();
    for r in graph.revisions() {
        let mut up = schema.clone();
        let rendered_up = render_ops(&r.id, Direction::Up, &r.upgrade, &mut up, Dialect::Sqlite);
        let rendered_down = rendered_up.as_ref().ok().map(|_| {
            let mut down = up.clone();
            render_ops(
                &r.id,
                Direction::Down,
                &r.downgrade,
                &mut down,
                Dialect::Sqlite,
            )
        });
        match (rendered_up, rendered_down) {
            (Ok(upgrade), Some(Ok(downgrade))) => {
                steps.push((r.id.clone(), upgrade, downgrade));
                schema = up;
            }
            (Err(e), _) | (_, Some(Err(e))) => {
                eprintln!("note: SQLite stops before revision {}: {e}", r.id);
                break;
            }
            (Ok(_), None) => unreachable!("a rendered upgrade has its downgrade rendered"),
        }
    }
    assert!(!steps.is_empty(), "the first revision renders for SQLite");
    let Some(db) = Db::new() else {
        return;
    };
    let run = |id: &str, direction: &str, statements: &[Statement]| {
        db.run(&format!(
            "PRAGMA foreign_keys = OFF;\n{}",
            transaction(statements)
        ))
        .unwrap_or_else(|e| panic!("revision {id} {direction} failed on SQLite:\n{e}"));
    };
    let has = |table: &str| {
        db.ok(&format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}';"
        ))
        .trim()
            == "1"
    };
    for (id, upgrade, _) in &steps {
        run(id, "upgrade", upgrade);
        if id == "974799e38366" {
            db.ok(&format!(
                "INSERT INTO users_simple (id, email, password_hash, status, created_at) \
                 VALUES ('{ADA}', 'ada@example.com', 'hash', 'active', '2024-01-02 03:04:05');\n\
                 INSERT INTO email_verifications_simple (id, user_id, email, token_hash, expires_at) \
                 VALUES ('{ORG}', '{ADA}', 'ada@example.com', 'token', '2024-01-03 00:00:00');"
            ));
        }
    }
    if has("users") {
        assert_eq!(db.ok("SELECT email FROM users;"), "ada@example.com\n");
    }
    assert_eq!(db.ok("PRAGMA foreign_key_check;"), "");
    assert_eq!(db.ok("PRAGMA integrity_check;").trim(), "ok");
    for (id, _, downgrade) in steps.iter().rev() {
        run(id, "downgrade", downgrade);
        if id == "68d314520251" {
            assert_eq!(
                db.ok("SELECT email, status FROM users_simple;"),
                "ada@example.com|active\n",
                "the downgrade copies the users back"
            );
        }
    }
    assert_eq!(
        db.ok("SELECT count(*) FROM sqlite_master;").trim(),
        "0",
        "base holds nothing"
    );
}

// --- Several column changes in a row ---

#[test]
fn column_changes_in_a_row_rebuild_each_table_once_and_keep_the_rows() {
    let ops = [
        alter(
            "users",
            "created_at",
            ColumnChange {
                ty: Some((
                    ColumnType::TimestampTz,
                    Some("created_at AT TIME ZONE 'UTC'".into()),
                )),
                ..ColumnChange::default()
            },
        ),
        alter(
            "organizations",
            "name",
            ColumnChange {
                default: Some(Some(DefaultExpr::Text("unnamed".into()))),
                ..ColumnChange::default()
            },
        ),
        alter(
            "users",
            "bio",
            ColumnChange {
                ty: Some((ColumnType::Text, None)),
                nullable: Some(false),
                ..ColumnChange::default()
            },
        ),
        alter(
            "users",
            "bio",
            ColumnChange {
                nullable: Some(true),
                ..ColumnChange::default()
            },
        ),
    ];
    let mut after = fixture();
    let statements = render_ops("grouped", Direction::Up, &ops, &mut after, Dialect::Sqlite)
        .expect("SQLite renders the run");
    let copies: Vec<&str> = statements
        .iter()
        .filter_map(|s| s.sql.strip_prefix("INSERT INTO _new_"))
        .collect();
    assert_eq!(
        copies.len(),
        2,
        "users and organizations copied once each: {copies:?}"
    );
    // The one rebuild of users lands on the definition after all three of its changes.
    let created = statements
        .iter()
        .find(|s| s.sql.starts_with("CREATE TABLE _new_users ("))
        .expect("the new users table");
    assert!(
        created.sql.contains("created_at TIMESTAMPTZ"),
        "{}",
        created.sql
    );
    assert!(
        !created.sql.contains("bio TEXT NOT NULL"),
        "{}",
        created.sql
    );
    if let Some(db) = Db::with_fixture() {
        let outcome = db.run(&format!(
            "PRAGMA foreign_keys = OFF;\n{}",
            transaction(&statements)
        ));
        outcome.unwrap_or_else(|e| panic!("SQLite refused the run:\n{e}"));
        assert_eq!(db.ok("SELECT count(*) FROM users;").trim(), "2");
        assert_eq!(db.ok("SELECT count(*) FROM organizations;").trim(), "1");
        assert_eq!(db.ok("PRAGMA integrity_check;").trim(), "ok");
    }
}

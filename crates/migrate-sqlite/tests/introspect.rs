//! Introspection and canonicalization: the renderer's conventions read back into the model.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::driver::Driver;
use migrate_core::{
    Column, ColumnType, DefaultExpr, Function, Index, IndexKey, ReferentialAction, Schema, Table,
    TableName, Trigger, TriggerEvent, TriggerTiming,
};
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteTarget};

fn memory() -> SqliteDriver {
    SqliteDriver::connect(&SqliteTarget::Memory, SqliteOptions::default()).unwrap()
}

/// A schema that uses every type, every default kind, every constraint kind, indexes of every
/// shape, a stamp trigger, and a table of another schema.
fn rich_schema() -> Schema {
    let stamp = Function {
        name: TableName::new("set_updated_at"),
        body: "BEGIN\n    NEW.updated_at := now() AT TIME ZONE 'utc';\n    RETURN NEW;\nEND"
            .to_owned(),
    };
    let org = Table::new("organizations")
        .column(
            Column::new("id", ColumnType::Uuid)
                .not_null()
                .default(DefaultExpr::RandomUuid),
        )
        .column(Column::new("public_id", ColumnType::Uuid).default(DefaultExpr::RandomUuidHex))
        .column(Column::new("name", ColumnType::varchar(100)).not_null())
        .column(Column::new("note", ColumnType::Text).default(DefaultExpr::Text("it's".into())))
        .column(Column::new("flag", ColumnType::Boolean).default(DefaultExpr::Bool(false)))
        .column(Column::new("small", ColumnType::SmallInt).default(DefaultExpr::Int(-3)))
        .column(Column::new("big", ColumnType::BigInt))
        .column(Column::new("price", ColumnType::Numeric(Some((10, 2)))))
        .column(Column::new("ratio", ColumnType::Double))
        .column(Column::new("born", ColumnType::Date))
        .column(Column::new("seen", ColumnType::Timestamp))
        .column(Column::new("doc", ColumnType::Json).default(DefaultExpr::Json("[]".into())))
        .column(Column::new("docb", ColumnType::Jsonb).default(DefaultExpr::Json("{}".into())))
        .column(Column::new("ip", ColumnType::Inet))
        .column(Column::new("raw", ColumnType::Bytea))
        .column(Column::new("custom", ColumnType::Other("DATETIME".into())))
        .column(
            Column::new("expires", ColumnType::Text)
                .default(DefaultExpr::Sql("datetime('now', '+1 day')".into())),
        )
        .column(
            Column::new("updated_at", ColumnType::TimestampTz)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .primary_key("organizations_pkey", &["id"])
        .unique("organizations_name_key", &["name"])
        .check(
            "organizations_small_check",
            "small >= -10 AND \"small\" < 10",
        )
        .index(Index::new("ix_organizations_big", &["big", "ratio"]))
        .index(
            Index::on_keys(
                "uq_organizations_lower_name",
                vec![IndexKey::Expr("lower(name)".into())],
            )
            .unique()
            .filtered("flag = FALSE"),
        )
        .trigger(Trigger {
            name: "set_updated_at".into(),
            timing: TriggerTiming::Before,
            events: vec![TriggerEvent::Update],
            function: stamp.name.clone(),
        });
    let member = Table::new(TableName::qualified("legacy", "members"))
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("org_id", ColumnType::Uuid))
        .column(Column::new("parent_id", ColumnType::Integer))
        .column(Column::new("order", ColumnType::Integer))
        .primary_key("members_pkey", &["id"])
        .foreign_key(
            "members_org_id_fkey",
            &["org_id"],
            "organizations",
            &["id"],
            ReferentialAction::Cascade,
        )
        .foreign_key(
            "members_parent_id_fkey",
            &["parent_id"],
            TableName::qualified("legacy", "members"),
            &["id"],
            ReferentialAction::SetNull,
        )
        .index(Index::new("ix_members_order", &["order"]));
    let mut schema = Schema::new();
    schema.schemas.insert("legacy".into());
    schema.functions.insert(stamp.name.clone(), stamp);
    for table in [org, member] {
        schema.tables.insert(table.name.clone(), table);
    }
    schema
}

#[test]
fn the_model_reads_back_as_written() {
    let schema = rich_schema();
    let canonical = memory().canonicalize(&schema).unwrap();
    let differences = migrate_core::diff::differences(&schema, &canonical);
    assert!(differences.is_empty(), "{differences:?}");
    assert_eq!(canonical, schema);
}

#[test]
fn a_database_created_by_another_tool_gets_postgresql_constraint_names() {
    let file = TestFile::new();
    file.conn()
        .execute_batch(
            "CREATE TABLE organizations (id VARCHAR(36) NOT NULL, name VARCHAR(100), PRIMARY KEY (id), UNIQUE (name));
             CREATE TABLE users (
                id INTEGER PRIMARY KEY,
                org_id VARCHAR(36) REFERENCES organizations ON DELETE CASCADE,
                email TEXT UNIQUE CHECK (length(email) > 3),
                age INTEGER CONSTRAINT age_positive CHECK (age > 0),
                CHECK (email <> ''),
                FOREIGN KEY (email) REFERENCES organizations (name)
             );
             CREATE INDEX ix_users_email ON users (email DESC);",
        )
        .unwrap();
    let live = file.driver().introspect().unwrap();
    let users = &live.tables[&TableName::new("users")];
    let names: Vec<&str> = users.constraints.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "age_positive",
            "users_check",
            "users_email_check",
            "users_email_fkey",
            "users_email_key",
            "users_org_id_fkey",
            "users_pkey"
        ]
    );
    match &users.constraints["users_org_id_fkey"].kind {
        migrate_core::ConstraintKind::ForeignKey(fk) => {
            // No referenced column written: the other table's primary key.
            assert_eq!(fk.ref_columns, ["id"]);
            assert_eq!(fk.on_delete, ReferentialAction::Cascade);
        }
        other => panic!("{other:?}"),
    }
    let organizations = &live.tables[&TableName::new("organizations")];
    assert!(organizations.constraints.contains_key("organizations_pkey"));
    assert!(organizations
        .constraints
        .contains_key("organizations_name_key"));
    // The automatic indexes behind PRIMARY KEY and UNIQUE are the constraints'.
    assert!(organizations.indexes.is_empty());
    assert_eq!(
        users.indexes["ix_users_email"].keys,
        [IndexKey::Expr("email DESC".into())]
    );
    assert_eq!(organizations.columns[0].ty, ColumnType::Varchar(Some(36)));
}

#[test]
fn the_tools_tables_and_sqlites_own_are_left_out() {
    let file = TestFile::new();
    let graph = identity_schema::graph();
    let mut engine = engine(&file, &graph);
    run(&mut engine, &up("974799e38366")).unwrap();
    file.conn()
        .execute_batch("CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT); ANALYZE")
        .unwrap();
    let live = file.driver().introspect().unwrap();
    for name in live.tables.keys() {
        assert!(
            !["alembic_version", "identity_migrate_history"].contains(&name.name.as_str())
                && !name.name.starts_with("sqlite_"),
            "{name}"
        );
    }
    assert!(live.tables.contains_key(&TableName::new("seq")));
}

#[test]
fn a_trigger_the_renderer_did_not_write_is_drift() {
    let file = TestFile::new();
    let schema = rich_schema();
    let mut driver = file.driver();
    let canonical = driver.canonicalize(&schema).unwrap();
    // Create exactly the schema, then change its trigger by hand.
    let statements: Vec<String> = schema
        .tables
        .values()
        .flat_map(|t| {
            migrate_core::render::render(
                &migrate_core::Op::CreateTable(t.clone()),
                &schema,
                migrate_core::Dialect::Sqlite,
            )
            .unwrap()
        })
        .map(|s| s.sql)
        .collect();
    driver.execute_in_transaction(&statements).unwrap();
    assert_eq!(driver.introspect().unwrap(), canonical);
    file.conn()
        .execute_batch(
            "DROP TRIGGER \"organizations.set_updated_at\";
             CREATE TRIGGER \"organizations.set_updated_at\" AFTER UPDATE ON organizations FOR EACH ROW
             BEGIN UPDATE organizations SET updated_at = '2000-01-01' WHERE rowid = NEW.rowid; END",
        )
        .unwrap();
    let live = driver.introspect().unwrap();
    let differences = migrate_core::diff::differences(&canonical, &live);
    assert!(!differences.is_empty());
    let trigger = &live.tables[&TableName::new("organizations")].triggers["set_updated_at"];
    assert_eq!(
        trigger.function,
        TableName::new("sqlite_trigger:organizations.set_updated_at")
    );
    assert_eq!(trigger.timing, TriggerTiming::After);
    assert_eq!(trigger.events, [TriggerEvent::Update]);
}

#[test]
fn canonicalize_refuses_what_sqlite_cannot_express() {
    let mut schema = Schema::new();
    let table = Table::new("t")
        .column(Column::new("code", ColumnType::Text))
        .check("t_code_check", "code ~ '^[A-Z]{2}$'");
    schema.tables.insert(table.name.clone(), table);
    let error = memory().canonicalize(&schema).unwrap_err();
    assert!(
        matches!(&error, migrate_core::driver::DriverError::Unsupported(m) if m.contains("t_code_check")),
        "{error:?}"
    );
}

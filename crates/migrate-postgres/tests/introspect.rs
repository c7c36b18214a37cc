//! Introspection and canonicalization against a real PostgreSQL server, one database per test.
//!
//! The property under test: a database built from a model value introspects as
//! `canonicalize(value)`, and, where the value is already spelled the way the server spells it,
//! as the value itself.

use migrate_core::driver::{Driver, DriverError, StateSql};
use migrate_core::render::{render, render_ops, schema_at};
use migrate_core::{
    Column, ColumnType, ConstraintKind, DefaultExpr, Dialect, Direction, ForeignKey, Function,
    Heads, Index, IndexKey, Op, ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent,
    TriggerTiming,
};
use migrate_postgres::{PostgresDriver, PostgresStateSql, SessionSettings};
use migrate_testkit::TestDb;
use std::collections::BTreeMap;

/// The two revisions of the original tooling: no CHECKs, expressions or defaults, so the
/// model's spelling must survive the database unchanged.
const LEGACY: [&str; 2] = ["974799e38366", "68d314520251"];

fn driver(db: &TestDb) -> PostgresDriver {
    driver_with(db, SessionSettings::default())
}

fn driver_with(db: &TestDb, session: SessionSettings) -> PostgresDriver {
    let settings =
        migrate_postgres::url::parse_with_process_env(&db.url()).expect("test URL parses");
    PostgresDriver::connect(&settings, session).expect("connect to the test database")
}

/// The statements that create `schema` from nothing: schemas, functions, tables without their
/// foreign keys (with indexes and triggers), then the foreign keys.
fn create_statements(schema: &Schema) -> Vec<String> {
    let mut ops: Vec<Op> = schema
        .schemas
        .iter()
        .map(|name| Op::CreateSchema { name: name.clone() })
        .collect();
    ops.extend(schema.functions.values().cloned().map(Op::CreateFunction));
    let mut fks = Vec::new();
    for table in schema.tables.values() {
        let mut bare = table.clone();
        bare.constraints.retain(|_, c| {
            let fk = matches!(c.kind, ConstraintKind::ForeignKey(_));
            if fk {
                fks.push(Op::AddConstraint {
                    table: table.name.clone(),
                    constraint: c.clone(),
                    not_valid: false,
                });
            }
            !fk
        });
        ops.push(Op::CreateTable(bare));
    }
    ops.extend(fks);
    let mut folded = Schema::new();
    let mut out = Vec::new();
    for op in &ops {
        out.extend(
            render(op, &folded, Dialect::Postgres)
                .expect("renders")
                .into_iter()
                .map(|s| s.sql),
        );
        op.apply(&mut folded)
            .expect("the test schema is consistent");
    }
    out
}

/// Creates `schema` in the test database with a plain client, in one transaction.
fn load(db: &TestDb, schema: &Schema) {
    let mut client = db.client();
    let mut tx = client.transaction().expect("begin");
    for sql in create_statements(schema) {
        tx.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
    }
    tx.commit().expect("commit");
}

/// Loads `schema` into a fresh database; returns (introspected, canonicalized), asserting that
/// they are equal.
fn round_trip(schema: &Schema) -> Schema {
    let db = TestDb::new();
    load(&db, schema);
    let mut driver = driver(&db);
    let live = driver.introspect().expect("introspect");
    let canonical = driver.canonicalize(schema).expect("canonicalize");
    assert_eq!(live, canonical, "introspect() != canonicalize(expected)");
    live
}

fn one_table(table: Table) -> Schema {
    let mut schema = Schema::new();
    schema.tables.insert(table.name.clone(), table);
    schema
}

fn uuid_pk(table: &str) -> Table {
    Table::new(table)
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .primary_key(format!("{table}_pkey"), &["id"])
}

fn scratch_schemas(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'im\\_canon\\_%'",
            &[],
        )
        .expect("list schemas")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn every_identity_revision_introspects_as_its_canonical_schema() {
    let graph = identity_schema::graph();
    for revision in graph.revisions() {
        let db = TestDb::new();
        let applied = graph
            .applied(&Heads::from([revision.id.clone()]))
            .expect("known revision");
        let mut client = db.client();
        let mut folded = Schema::new();
        for r in graph.revisions().iter().filter(|r| applied.contains(&r.id)) {
            let statements = render_ops(
                &r.id,
                Direction::Up,
                &r.upgrade,
                &mut folded,
                Dialect::Postgres,
            )
            .expect("the revision renders");
            for s in statements {
                client
                    .batch_execute(&s.sql)
                    .unwrap_or_else(|e| panic!("{}: {}\nfailed: {e}", r.id, s.sql));
            }
        }
        let expected = schema_at(&graph, &applied).expect("schema_at");
        let mut driver = driver(&db);
        let live = driver.introspect().expect("introspect");
        let canonical = driver.canonicalize(&expected).expect("canonicalize");
        assert_eq!(live, canonical, "revision {}", revision.id);
        if LEGACY.contains(&revision.id.as_str()) {
            assert_eq!(live, expected, "revision {}: model spelling", revision.id);
        }
    }
}

#[test]
fn defaults_of_each_kind_keep_the_model_spelling() {
    let table = uuid_pk("defaults")
        .column(Column::new("flag", ColumnType::Boolean).default(DefaultExpr::Bool(true)))
        .column(Column::new("off", ColumnType::Boolean).default(DefaultExpr::Bool(false)))
        .column(Column::new("count", ColumnType::Integer).default(DefaultExpr::Int(5)))
        .column(Column::new("below", ColumnType::Integer).default(DefaultExpr::Int(-1)))
        .column(Column::new("big", ColumnType::BigInt).default(DefaultExpr::Int(-7)))
        .column(Column::new("small", ColumnType::SmallInt).default(DefaultExpr::Int(3)))
        .column(
            Column::new("status", ColumnType::varchar(20))
                .default(DefaultExpr::Text("it's".to_owned())),
        )
        .column(Column::new("note", ColumnType::Text).default(DefaultExpr::Text("x".to_owned())))
        .column(Column::new("doc", ColumnType::Jsonb).default(DefaultExpr::Json("{}".to_owned())))
        .column(
            Column::new("list", ColumnType::Json).default(DefaultExpr::Json("[1, 2]".to_owned())),
        )
        .column(Column::new("at", ColumnType::TimestampTz).default(DefaultExpr::Now))
        .column(Column::new("local_at", ColumnType::Timestamp).default(DefaultExpr::Now))
        .column(Column::new("token", ColumnType::Uuid).default(DefaultExpr::RandomUuid))
        .column(
            Column::new("since", ColumnType::Date)
                .default(DefaultExpr::Sql("'2020-01-01'::date".to_owned())),
        );
    let schema = one_table(table);
    assert_eq!(round_trip(&schema), schema);
}

#[test]
fn server_respelled_defaults_compare_through_canonicalize() {
    // jsonb normalises its text and CURRENT_TIMESTAMP is `now()` to the model.
    let schema = one_table(uuid_pk("respelled").column(
        Column::new("doc", ColumnType::Jsonb).default(DefaultExpr::Json(r#"{"a":1}"#.to_owned())),
    ));
    let db = TestDb::new();
    load(&db, &schema);
    db.client()
        .batch_execute("ALTER TABLE respelled ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP")
        .expect("add column");
    let mut driver = driver(&db);
    let live = driver.introspect().expect("introspect");
    let columns = &live.tables[&TableName::new("respelled")].columns;
    assert_eq!(
        columns[1].default,
        Some(DefaultExpr::Json(r#"{"a": 1}"#.to_owned()))
    );
    assert_eq!(columns[2].default, Some(DefaultExpr::Now));
    assert_eq!(
        driver.canonicalize(&schema).expect("canonicalize").tables[&TableName::new("respelled")]
            .columns[1],
        columns[1]
    );
}

#[test]
fn check_constraints_compare_in_the_server_spelling() {
    let schema = one_table(
        uuid_pk("accounts")
            .column(Column::new("status", ColumnType::varchar(10)).not_null())
            .check("ck_accounts_status", "status IN ('a','b')"),
    );
    let live = round_trip(&schema);
    assert_ne!(
        live, schema,
        "PostgreSQL rewrites IN (...) as = ANY (ARRAY[...])"
    );
    let ConstraintKind::Check { expr, .. } =
        &live.tables[&TableName::new("accounts")].constraints["ck_accounts_status"].kind
    else {
        panic!("not a check")
    };
    assert!(expr.contains("ANY"), "{expr}");
    assert!(!expr.starts_with("CHECK"), "{expr}");
}

#[test]
fn not_valid_checks_introspect_like_valid_ones() {
    let unchecked = one_table(uuid_pk("scores").column(Column::new("score", ColumnType::Integer)));
    let mut schema = unchecked.clone();
    let table = schema
        .tables
        .remove(&TableName::new("scores"))
        .expect("table");
    let table = table.check("ck_scores_positive", "score > 0");
    schema.tables.insert(table.name.clone(), table);
    let db = TestDb::new();
    load(&db, &unchecked);
    db.client()
        .batch_execute(
            "ALTER TABLE scores ADD CONSTRAINT ck_scores_positive CHECK (score > 0) NOT VALID",
        )
        .expect("add constraint");
    let mut driver = driver(&db);
    assert_eq!(
        driver.introspect().expect("introspect"),
        driver.canonicalize(&schema).expect("canonicalize")
    );
}

#[test]
fn partial_expression_index_compares_through_canonicalize() {
    let schema = one_table(
        uuid_pk("users")
            .column(Column::new("email", ColumnType::varchar(255)).not_null())
            .column(Column::new("deleted_at", ColumnType::TimestampTz))
            .index(
                Index::on_keys(
                    "ux_users_email_live",
                    vec![IndexKey::Expr("lower(email)".to_owned())],
                )
                .unique()
                .filtered("deleted_at IS NULL"),
            )
            .index(Index::on_keys(
                "ix_users_mixed",
                vec![
                    IndexKey::Column("deleted_at".to_owned()),
                    IndexKey::Expr("lower(email)".to_owned()),
                ],
            )),
    );
    let live = round_trip(&schema);
    let users = &live.tables[&TableName::new("users")];
    let live_index = &users.indexes["ux_users_email_live"];
    assert!(live_index.unique);
    assert_eq!(live_index.predicate.as_deref(), Some("deleted_at IS NULL"));
    assert!(
        matches!(&live_index.keys[..], [IndexKey::Expr(e)] if e.starts_with("lower(")),
        "{:?}",
        live_index.keys
    );
    let mixed = &users.indexes["ix_users_mixed"];
    assert_eq!(mixed.keys[0], IndexKey::Column("deleted_at".to_owned()));
    assert!(matches!(mixed.keys[1], IndexKey::Expr(_)));
    // The primary key's index belongs to the constraint, not to the index list.
    assert_eq!(users.indexes.len(), 2);
}

fn touch_function(name: TableName) -> Function {
    Function {
        name,
        body: "\nBEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND;\n".to_owned(),
    }
}

#[test]
fn triggers_and_their_functions_keep_the_model_spelling() {
    let mut schema = one_table(
        uuid_pk("documents")
            .column(Column::new("updated_at", ColumnType::TimestampTz))
            .trigger(Trigger {
                name: "trg_documents_touch".to_owned(),
                timing: TriggerTiming::Before,
                events: vec![TriggerEvent::Update],
                function: TableName::new("touch_updated_at"),
            })
            .trigger(Trigger {
                name: "trg_documents_audit".to_owned(),
                timing: TriggerTiming::After,
                events: vec![
                    TriggerEvent::Insert,
                    TriggerEvent::Update,
                    TriggerEvent::Delete,
                ],
                function: TableName::new("audit_noop"),
            }),
    );
    for f in [
        touch_function(TableName::new("touch_updated_at")),
        Function {
            name: TableName::new("audit_noop"),
            body: "BEGIN RETURN NULL; END".to_owned(),
        },
    ] {
        schema.functions.insert(f.name.clone(), f);
    }
    assert_eq!(round_trip(&schema), schema);
}

#[test]
fn statement_level_and_internal_triggers_are_left_out() {
    let mut schema = one_table(uuid_pk("parents"));
    let child = uuid_pk("children")
        .column(Column::new("parent_id", ColumnType::Uuid))
        .foreign_key(
            "children_parent_id_fkey",
            &["parent_id"],
            "parents",
            &["id"],
            ReferentialAction::Cascade,
        );
    schema.tables.insert(child.name.clone(), child);
    let f = Function {
        name: TableName::new("noop"),
        body: "BEGIN RETURN NULL; END".to_owned(),
    };
    schema.functions.insert(f.name.clone(), f);
    let db = TestDb::new();
    load(&db, &schema);
    db.client()
        .batch_execute("CREATE TRIGGER trg_stmt AFTER INSERT ON parents EXECUTE FUNCTION noop()")
        .expect("statement trigger");
    assert_eq!(driver(&db).introspect().expect("introspect"), schema);
}

#[test]
fn tables_of_another_schema_keep_their_namespace() {
    let legacy_users = TableName::qualified("legacy", "users_simple");
    let mut schema = Schema::new();
    schema.schemas.insert("legacy".to_owned());
    schema.schemas.insert("archive".to_owned());
    let legacy = Table::new(legacy_users.clone())
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("manager_id", ColumnType::Uuid))
        .column(Column::new("email", ColumnType::varchar(255)).not_null())
        .column(Column::new("updated_at", ColumnType::Timestamp))
        .primary_key("users_simple_pkey", &["id"])
        .foreign_key(
            "users_simple_manager_id_fkey",
            &["manager_id"],
            legacy_users.clone(),
            &["id"],
            ReferentialAction::SetNull,
        )
        .index(Index::new("ix_users_simple_email", &["email"]).unique())
        .trigger(Trigger {
            name: "trg_touch".to_owned(),
            timing: TriggerTiming::Before,
            events: vec![TriggerEvent::Insert, TriggerEvent::Update],
            function: TableName::qualified("legacy", "touch"),
        });
    // A default-namespace table with a same-named index and a foreign key into `legacy`.
    let accounts = uuid_pk("accounts")
        .column(Column::new("owner_id", ColumnType::Uuid).not_null())
        .column(Column::new("email", ColumnType::varchar(255)))
        .foreign_key(
            "accounts_owner_id_fkey",
            &["owner_id"],
            legacy_users.clone(),
            &["id"],
            ReferentialAction::Cascade,
        )
        .index(Index::new("ix_users_simple_email", &["email"]));
    schema.tables.insert(legacy.name.clone(), legacy);
    schema.tables.insert(accounts.name.clone(), accounts);
    let f = touch_function(TableName::qualified("legacy", "touch"));
    schema.functions.insert(f.name.clone(), f);
    assert_eq!(round_trip(&schema), schema);
}

#[test]
fn scratch_names_never_reach_the_result() {
    // Expressions, defaults and checks of a table outside the default namespace: whatever the
    // server prints for them in canonicalize must name the real schema, never a scratch one.
    let mut schema = Schema::new();
    schema.schemas.insert("legacy".to_owned());
    let table = Table::new(TableName::qualified("legacy", "counters"))
        .column(
            Column::new("n", ColumnType::BigInt)
                .not_null()
                .default(DefaultExpr::Sql("(7 * 6)".to_owned())),
        )
        .column(Column::new("label", ColumnType::Text))
        .check("ck_counters_label", "label <> 'x'")
        .index(Index::on_keys(
            "ix_counters_label",
            vec![IndexKey::Expr("upper(label)".to_owned())],
        ));
    schema.tables.insert(table.name.clone(), table);
    let live = round_trip(&schema);
    let debug = format!("{live:?}");
    assert!(!debug.contains("im_canon"), "{debug}");
}

#[test]
fn foreign_keys_keep_actions_and_column_order() {
    let parent = Table::new("parents")
        .column(Column::new("x", ColumnType::Integer).not_null())
        .column(Column::new("y", ColumnType::Integer).not_null())
        .unique("uq_parents_y_x", &["y", "x"]);
    let child = uuid_pk("children")
        .column(Column::new("a", ColumnType::Integer))
        .column(Column::new("b", ColumnType::Integer))
        .column(Column::new("parent_x", ColumnType::Integer))
        .constraint(
            "fk_children_parent",
            ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["b".to_owned(), "a".to_owned()],
                ref_table: TableName::new("parents"),
                ref_columns: vec!["y".to_owned(), "x".to_owned()],
                on_delete: ReferentialAction::SetNull,
                on_update: ReferentialAction::Cascade,
            }),
        );
    // A cycle: parents points back at children, which only works because the keys come last.
    let parent = parent
        .column(Column::new("favourite_child", ColumnType::Uuid))
        .foreign_key(
            "fk_parents_favourite",
            &["favourite_child"],
            "children",
            &["id"],
            ReferentialAction::Restrict,
        );
    let mut schema = Schema::new();
    schema.tables.insert(parent.name.clone(), parent);
    schema.tables.insert(child.name.clone(), child);
    assert_eq!(round_trip(&schema), schema);
}

#[test]
fn column_types_keep_the_model_spelling() {
    let types = [
        ColumnType::Uuid,
        ColumnType::varchar(40),
        ColumnType::Varchar(None),
        ColumnType::Text,
        ColumnType::Boolean,
        ColumnType::SmallInt,
        ColumnType::Integer,
        ColumnType::BigInt,
        ColumnType::Numeric(Some((10, 2))),
        ColumnType::Numeric(None),
        ColumnType::Double,
        ColumnType::Timestamp,
        ColumnType::TimestampTz,
        ColumnType::Date,
        ColumnType::Json,
        ColumnType::Jsonb,
        ColumnType::Inet,
        ColumnType::Bytea,
        ColumnType::Other("text[]".to_owned()),
        ColumnType::Other("character(3)".to_owned()),
    ];
    let table = types
        .into_iter()
        .enumerate()
        .fold(uuid_pk("typed"), |t, (i, ty)| {
            t.column(Column::new(format!("c{i}"), ty))
        });
    let schema = one_table(table);
    assert_eq!(round_trip(&schema), schema);
}

#[test]
fn the_tools_own_tables_are_left_out() {
    let db = TestDb::new();
    let mut schema = one_table(uuid_pk("users"));
    schema.schemas.insert("legacy".to_owned());
    // Only the session schema's state tables are the tool's; one elsewhere is a user table.
    let elsewhere = Table::new(TableName::qualified("legacy", "alembic_version"))
        .column(Column::new("version_num", ColumnType::varchar(32)).not_null());
    schema.tables.insert(elsewhere.name.clone(), elsewhere);
    load(&db, &schema);
    let mut client = db.client();
    for sql in PostgresStateSql.bootstrap_statements() {
        client.batch_execute(&sql).expect("bootstrap");
    }
    let mut driver = driver(&db);
    assert_eq!(driver.introspect().expect("introspect"), schema);
    assert_eq!(driver.canonicalize(&schema).expect("canonicalize"), schema);
}

#[test]
fn a_non_public_session_schema_is_the_default_namespace() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE SCHEMA identity; \
             CREATE TABLE identity.users (id uuid PRIMARY KEY, email varchar(20) DEFAULT 'x'); \
             CREATE TABLE public.leftover (id integer)",
        )
        .expect("setup");
    let mut driver = driver_with(
        &db,
        SessionSettings {
            schema: "identity".to_owned(),
            ..SessionSettings::default()
        },
    );
    let live = driver.introspect().expect("introspect");
    assert!(live.tables.contains_key(&TableName::new("users")));
    assert!(live
        .tables
        .contains_key(&TableName::qualified("public", "leftover")));
    assert!(live.schemas.contains("public"));
    assert!(!live.schemas.contains("identity"));
    assert_eq!(driver.canonicalize(&live).expect("canonicalize"), live);
}

#[test]
fn canonicalize_changes_nothing_and_leaves_the_session_usable() {
    let db = TestDb::new();
    let mut schema = one_table(uuid_pk("users"));
    schema.schemas.insert("legacy".to_owned());
    let legacy = uuid_pk("things");
    let legacy = Table {
        name: TableName::qualified("legacy", "things"),
        ..legacy
    };
    schema.tables.insert(legacy.name.clone(), legacy);
    let mut driver = driver(&db);
    let before = driver.introspect().expect("introspect");
    assert_eq!(before, Schema::new());

    let canonical = driver.canonicalize(&schema).expect("canonicalize");
    assert_eq!(canonical, schema);
    assert_eq!(driver.introspect().expect("introspect"), before);
    assert!(scratch_schemas(driver.client()).is_empty());
    assert!(scratch_schemas(&mut db.client()).is_empty());
    let search_path: String = driver
        .client()
        .query_one("SHOW search_path", &[])
        .expect("show")
        .get(0);
    assert_eq!(search_path, "public");

    // A model the server rejects: an error, and still nothing left behind.
    let broken = one_table(uuid_pk("broken").check("ck_broken", "no_such_column > 0"));
    match driver.canonicalize(&broken) {
        Err(DriverError::Statement { code, .. }) => assert_eq!(code.as_deref(), Some("42703")),
        other => panic!("expected an undefined-column error, got {other:?}"),
    }
    assert!(scratch_schemas(driver.client()).is_empty());
    driver
        .execute_in_transaction(&["CREATE TABLE after_all (id integer)".to_owned()])
        .expect("the session still works");
    let after = driver.introspect().expect("introspect");
    assert_eq!(
        after.tables.keys().cloned().collect::<Vec<_>>(),
        vec![TableName::new("after_all")]
    );
}

#[test]
fn invalid_indexes_finds_a_failed_concurrent_build() {
    let db = TestDb::new();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE SCHEMA legacy; \
             CREATE TABLE t (v integer); INSERT INTO t VALUES (1), (1); \
             CREATE INDEX ix_t_v ON t (v); \
             CREATE TABLE legacy.\"Mixed\" (v integer); INSERT INTO legacy.\"Mixed\" VALUES (2), (2)",
        )
        .expect("setup");
    let mut driver = driver(&db);
    assert_eq!(
        driver.invalid_indexes().expect("query"),
        Vec::<String>::new()
    );
    for sql in [
        "CREATE UNIQUE INDEX CONCURRENTLY ux_t_v ON t (v)",
        "CREATE UNIQUE INDEX CONCURRENTLY \"Ux\" ON legacy.\"Mixed\" (v)",
    ] {
        let error = client.batch_execute(sql).expect_err("duplicate values");
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("23505"),
            "{sql}: {error}"
        );
    }
    // The server reports the error before the failed build's backend has finished aborting,
    // and until then its progress row makes the index look like a build still running (which
    // `invalid_indexes` rightly skips): give the abort a moment.
    let expected = vec!["legacy.\"Ux\"".to_owned(), "public.ux_t_v".to_owned()];
    let mut found = Vec::new();
    for _ in 0..100 {
        found = driver.invalid_indexes().expect("query");
        if found == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(found, expected);
    // The half-built index is drift, so introspection shows it.
    let live = driver.introspect().expect("introspect");
    let indexes: BTreeMap<_, _> = live.tables[&TableName::new("t")].indexes.clone();
    assert!(indexes.contains_key("ux_t_v"));
}

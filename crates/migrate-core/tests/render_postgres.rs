//! PostgreSQL rendering: one snapshot per op, rendered against the schema it applies to.

#![allow(missing_docs)]

use migrate_core::render::{quote_ident, quote_literal, render};
use migrate_core::{
    Column, ColumnChange, ColumnType, Constraint, ConstraintKind, DefaultExpr, Dialect, ForeignKey,
    Function, Index, IndexKey, Op, RawSql, ReferentialAction, Schema, Statement, Table, TableName,
    Trigger, TriggerEvent, TriggerTiming,
};

fn name(table: &str) -> TableName {
    TableName::from(table)
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

fn users() -> Table {
    Table::new("users")
        .column(
            Column::new("id", ColumnType::Uuid)
                .not_null()
                .default(DefaultExpr::RandomUuid),
        )
        .column(Column::new("organization_id", ColumnType::Uuid).not_null())
        .column(Column::new("email", ColumnType::varchar(320)).not_null())
        .column(
            Column::new("status", ColumnType::Text)
                .not_null()
                .default(DefaultExpr::Text("active".into())),
        )
        .column(Column::new("timestamp", ColumnType::Timestamp))
        .column(Column::new("UserId", ColumnType::Integer))
        .column(Column::new("manager_id", ColumnType::Uuid))
        .column(
            Column::new("login_count", ColumnType::BigInt)
                .not_null()
                .default(DefaultExpr::Int(0)),
        )
        .column(
            Column::new("is_admin", ColumnType::Boolean)
                .not_null()
                .default(DefaultExpr::Bool(false)),
        )
        .column(
            Column::new("settings", ColumnType::Jsonb)
                .not_null()
                .default(DefaultExpr::Json("{}".into())),
        )
        .column(Column::new("profile", ColumnType::Json))
        .column(
            Column::new("nickname", ColumnType::Text).default(DefaultExpr::Text("it's me".into())),
        )
        .column(Column::new("balance", ColumnType::Numeric(Some((12, 2)))))
        .column(Column::new("score", ColumnType::Double))
        .column(Column::new("rank", ColumnType::SmallInt))
        .column(Column::new("birthday", ColumnType::Date))
        .column(Column::new("last_ip", ColumnType::Inet))
        .column(Column::new("avatar", ColumnType::Bytea))
        .column(Column::new("bio", ColumnType::Varchar(None)))
        .column(Column::new("ratio", ColumnType::Numeric(None)))
        .column(
            Column::new("expires_at", ColumnType::TimestampTz)
                .default(DefaultExpr::Sql("now() + interval '30 days'".into())),
        )
        .primary_key("users_pkey", &["id"])
        .foreign_key(
            "fk_users_organization",
            &["organization_id"],
            "organizations",
            &["id"],
            ReferentialAction::Cascade,
        )
        .constraint(
            "fk_users_manager",
            ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["manager_id".into()],
                ref_table: name("users"),
                ref_columns: vec!["id".into()],
                on_delete: ReferentialAction::SetNull,
                on_update: ReferentialAction::Restrict,
            }),
        )
        .check("ck_users_login_count", "login_count >= 0")
}

fn users_simple() -> Table {
    Table::new("legacy.users_simple")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("email", ColumnType::Text))
        .column(Column::new("user_id", ColumnType::Uuid))
        .index(Index::new("ix_users_simple_email", &["email"]))
}

fn apply(schema: &mut Schema, op: &Op) {
    op.apply(schema)
        .unwrap_or_else(|e| panic!("{op:?} applies to the fixture: {e}"));
}

/// The schema every op below is rendered against.
fn fixture() -> Schema {
    let mut schema = Schema::new();
    for op in [
        Op::CreateSchema {
            name: "legacy".into(),
        },
        Op::CreateTable(organizations()),
        Op::CreateTable(users()),
        Op::CreateTable(users_simple()),
        Op::CreateIndex {
            table: name("users"),
            index: Index::new("ix_users_organization_id", &["organization_id"]),
            concurrently: false,
        },
        Op::AddConstraint {
            table: name("users"),
            constraint: Constraint {
                name: "uq_users_org_email".into(),
                kind: ConstraintKind::Unique {
                    columns: vec!["organization_id".into(), "email".into()],
                },
            },
            not_valid: false,
        },
    ] {
        apply(&mut schema, &op);
    }
    schema
}

/// Renders `op` against `before` (checking that the model accepts it) as a SQL script.
fn rendered(op: &Op, before: &Schema) -> (String, Vec<Statement>) {
    let statements = render(op, before, Dialect::Postgres).expect("PostgreSQL renders every op");
    apply(&mut before.clone(), op);
    let script = statements.iter().map(|s| format!("{};\n", s.sql)).collect();
    (script, statements)
}

fn sql(op: &Op) -> String {
    let (script, statements) = rendered(op, &fixture());
    assert!(
        statements.iter().all(|s| s.transactional),
        "{op:?} runs in a transaction"
    );
    script
}

#[test]
fn create_schema() {
    insta::assert_snapshot!(sql(&Op::CreateSchema {
        name: "archive".into()
    }));
}

#[test]
fn drop_schema() {
    let mut schema = fixture();
    apply(
        &mut schema,
        &Op::CreateSchema {
            name: "archive".into(),
        },
    );
    let (script, _) = rendered(
        &Op::DropSchema {
            name: "archive".into(),
        },
        &schema,
    );
    insta::assert_snapshot!(script);
}

#[test]
fn create_table_with_every_column_type_default_and_constraint_kind() {
    let mut schema = Schema::new();
    apply(&mut schema, &Op::CreateTable(organizations()));
    insta::assert_snapshot!(
        "create_table_organizations",
        rendered(&Op::CreateTable(organizations()), &Schema::new()).0
    );
    insta::assert_snapshot!(
        "create_table_users",
        rendered(&Op::CreateTable(users()), &schema).0
    );
}

#[test]
fn create_table_in_a_schema_creates_the_indexes_it_carries() {
    let mut schema = Schema::new();
    apply(
        &mut schema,
        &Op::CreateSchema {
            name: "legacy".into(),
        },
    );
    let (script, statements) = rendered(&Op::CreateTable(users_simple()), &schema);
    assert_eq!(statements.len(), 2);
    insta::assert_snapshot!(script);
}

#[test]
fn drop_table() {
    insta::assert_snapshot!(sql(&Op::DropTable {
        table: name("legacy.users_simple")
    }));
}

#[test]
fn set_table_schema_to_a_named_schema() {
    insta::assert_snapshot!(sql(&Op::SetTableSchema {
        table: name("organizations"),
        schema: Some("legacy".into())
    }));
}

#[test]
fn set_table_schema_to_the_default_schema_names_public() {
    insta::assert_snapshot!(sql(&Op::SetTableSchema {
        table: name("legacy.users_simple"),
        schema: None
    }));
}

#[test]
fn rename_table() {
    insta::assert_snapshot!(sql(&Op::RenameTable {
        table: name("legacy.users_simple"),
        to: "users_legacy".into()
    }));
}

#[test]
fn add_column_with_default_and_not_null() {
    let column = Column::new("locale", ColumnType::varchar(8))
        .not_null()
        .default(DefaultExpr::Text("en".into()));
    insta::assert_snapshot!(sql(&Op::AddColumn {
        table: name("users"),
        column
    }));
}

#[test]
fn drop_column() {
    insta::assert_snapshot!(sql(&Op::DropColumn {
        table: name("users"),
        column: "nickname".into()
    }));
}

#[test]
fn rename_column_quotes_a_mixed_case_name() {
    insta::assert_snapshot!(sql(&Op::RenameColumn {
        table: name("users"),
        from: "UserId".into(),
        to: "legacy_user_id".into()
    }));
}

#[test]
fn rename_column_quotes_a_reserved_word() {
    insta::assert_snapshot!(sql(&Op::RenameColumn {
        table: name("users"),
        from: "timestamp".into(),
        to: "seen_at".into()
    }));
}

#[test]
fn alter_column_type_using_nullability_and_default_at_once_drops_the_old_default_first() {
    insta::assert_snapshot!(sql(&Op::AlterColumn {
        table: name("users"),
        column: "status".into(),
        change: ColumnChange {
            ty: Some((ColumnType::Boolean, Some("(status = 'active')".into()))),
            nullable: Some(false),
            default: Some(Some(DefaultExpr::Bool(true))),
        },
    }));
}

#[test]
fn alter_column_drops_default_and_not_null() {
    insta::assert_snapshot!(sql(&Op::AlterColumn {
        table: name("users"),
        column: "status".into(),
        change: ColumnChange {
            ty: None,
            nullable: Some(true),
            default: Some(None)
        },
    }));
}

#[test]
fn alter_column_type_of_a_reserved_word_column() {
    insta::assert_snapshot!(sql(&Op::AlterColumn {
        table: name("users"),
        column: "timestamp".into(),
        change: ColumnChange {
            ty: Some((
                ColumnType::TimestampTz,
                Some("\"timestamp\" AT TIME ZONE 'UTC'".into())
            )),
            ..ColumnChange::default()
        },
    }));
}

#[test]
fn alter_column_that_changes_nothing_renders_nothing() {
    let op = Op::AlterColumn {
        table: name("users"),
        column: "status".into(),
        change: ColumnChange::default(),
    };
    assert_eq!(rendered(&op, &fixture()).1, Vec::new());
}

#[test]
fn create_unique_partial_index() {
    insta::assert_snapshot!(sql(&Op::CreateIndex {
        table: name("users"),
        index: Index::new("ix_users_email_active", &["email"])
            .unique()
            .filtered("status = 'active'"),
        concurrently: false,
    }));
}

#[test]
fn create_index_on_an_expression_and_a_column() {
    insta::assert_snapshot!(sql(&Op::CreateIndex {
        table: name("users"),
        index: Index::on_keys(
            "ix_users_email_lower",
            vec![
                IndexKey::Expr("lower(email)".into()),
                IndexKey::Column("UserId".into())
            ],
        ),
        concurrently: false,
    }));
}

#[test]
fn create_index_concurrently_runs_outside_a_transaction() {
    let op = Op::CreateIndex {
        table: name("legacy.users_simple"),
        index: Index::new("ix_users_simple_id", &["id"]).unique(),
        concurrently: true,
    };
    let (script, statements) = rendered(&op, &fixture());
    assert!(!op.transactional());
    assert_eq!(
        statements
            .iter()
            .map(|s| s.transactional)
            .collect::<Vec<_>>(),
        vec![false, false]
    );
    assert!(
        statements[0]
            .sql
            .starts_with("DROP INDEX CONCURRENTLY IF EXISTS"),
        "a rerun must replace an INVALID index left by a failed build: {}",
        statements[0].sql
    );
    insta::assert_snapshot!(script);
}

#[test]
fn drop_index() {
    insta::assert_snapshot!(sql(&Op::DropIndex {
        table: name("users"),
        name: "ix_users_organization_id".into(),
        concurrently: false,
    }));
}

#[test]
fn drop_index_concurrently_in_a_schema_runs_outside_a_transaction() {
    let op = Op::DropIndex {
        table: name("legacy.users_simple"),
        name: "ix_users_simple_email".into(),
        concurrently: true,
    };
    let (script, statements) = rendered(&op, &fixture());
    assert!(!op.transactional());
    assert_eq!(
        statements
            .iter()
            .map(|s| s.transactional)
            .collect::<Vec<_>>(),
        vec![false]
    );
    insta::assert_snapshot!(script);
}

fn add(table: &str, constraint: &str, kind: ConstraintKind, not_valid: bool) -> Op {
    Op::AddConstraint {
        table: name(table),
        constraint: Constraint {
            name: constraint.into(),
            kind,
        },
        not_valid,
    }
}

#[test]
fn add_check_constraint() {
    insta::assert_snapshot!(sql(&add(
        "users",
        "ck_users_email",
        ConstraintKind::Check {
            expr: "email <> ''".into(),
            sqlite: None,
        },
        false
    )));
}

#[test]
fn add_foreign_key_on_delete_set_null_not_valid() {
    let fk = ConstraintKind::ForeignKey(ForeignKey {
        columns: vec!["user_id".into()],
        ref_table: name("users"),
        ref_columns: vec!["id".into()],
        on_delete: ReferentialAction::SetNull,
        on_update: ReferentialAction::NoAction,
    });
    insta::assert_snapshot!(sql(&add(
        "legacy.users_simple",
        "fk_users_simple_user",
        fk,
        true
    )));
}

#[test]
fn add_check_constraint_not_valid() {
    insta::assert_snapshot!(sql(&add(
        "users",
        "ck_users_score",
        ConstraintKind::Check {
            expr: "score >= 0".into(),
            sqlite: None,
        },
        true
    )));
}

#[test]
fn add_unique_constraint() {
    insta::assert_snapshot!(sql(&add(
        "users",
        "uq_users_email",
        ConstraintKind::Unique {
            columns: vec!["email".into()]
        },
        false
    )));
}

#[test]
fn add_primary_key_constraint() {
    insta::assert_snapshot!(sql(&add(
        "legacy.users_simple",
        "users_simple_pkey",
        ConstraintKind::PrimaryKey {
            columns: vec!["id".into()]
        },
        false
    )));
}

#[test]
fn validate_constraint() {
    insta::assert_snapshot!(sql(&Op::ValidateConstraint {
        table: name("users"),
        name: "fk_users_manager".into()
    }));
}

#[test]
fn drop_constraint() {
    insta::assert_snapshot!(sql(&Op::DropConstraint {
        table: name("users"),
        name: "uq_users_org_email".into()
    }));
}

#[test]
fn raw_sql_renders_its_postgres_body_without_the_trailing_semicolon() {
    insta::assert_snapshot!(sql(&Op::Sql(RawSql {
        description: "lower-case emails".into(),
        postgres: Some("\n  UPDATE users SET email = lower(email);\n".into()),
        sqlite: Some("UPDATE users SET email = lower(email)".into()),
    })));
}

#[test]
fn raw_sql_without_a_postgres_body_renders_nothing() {
    let op = Op::Sql(RawSql {
        description: "sqlite only".into(),
        postgres: None,
        sqlite: Some("VACUUM".into()),
    });
    assert_eq!(rendered(&op, &fixture()).1, Vec::new());
}

#[test]
fn identifiers_are_quoted_only_when_postgres_needs_it() {
    let cases = [
        ("users", "users"),
        ("_x1", "_x1"),
        ("timestamp", "\"timestamp\""),
        ("user", "\"user\""),
        ("UserId", "\"UserId\""),
        ("1st", "\"1st\""),
        ("display name", "\"display name\""),
        ("we\"ird", "\"we\"\"ird\""),
    ];
    for (ident, quoted) in cases {
        assert_eq!(quote_ident(ident), quoted, "{ident}");
    }
    assert_eq!(quote_literal("it's"), "'it''s'");
}

fn set_updated_at() -> Function {
    Function {
        name: name("set_updated_at"),
        body: "\nBEGIN\n    NEW.updated_at = now();\n    RETURN NEW;\nEND;\n".into(),
    }
}

fn with_function() -> Schema {
    let mut schema = fixture();
    apply(&mut schema, &Op::CreateFunction(set_updated_at()));
    schema
}

fn users_trigger() -> Trigger {
    Trigger {
        name: "set_updated_at".into(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: name("set_updated_at"),
    }
}

#[test]
fn create_function_keeps_its_body_verbatim_between_dollar_quotes() {
    insta::assert_snapshot!(sql(&Op::CreateFunction(set_updated_at())));
}

#[test]
fn drop_function() {
    let (script, _) = rendered(
        &Op::DropFunction {
            name: name("set_updated_at"),
        },
        &with_function(),
    );
    insta::assert_snapshot!(script);
}

#[test]
fn create_and_drop_trigger() {
    let schema = with_function();
    let create = Op::CreateTrigger {
        table: name("users"),
        trigger: users_trigger(),
    };
    let (created, _) = rendered(&create, &schema);
    let mut after = schema.clone();
    apply(&mut after, &create);
    let (dropped, _) = rendered(
        &Op::DropTrigger {
            table: name("users"),
            name: "set_updated_at".into(),
        },
        &after,
    );
    insta::assert_snapshot!(format!("{created}{dropped}"));
}

#[test]
fn a_table_given_with_indexes_and_triggers_creates_them_with_it() {
    let table = Table::new("teams")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(
            Column::new("updated_at", ColumnType::TimestampTz)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .primary_key("teams_pkey", &["id"])
        .index(Index::new("ix_teams_updated_at", &["updated_at"]))
        .trigger(users_trigger());
    let (script, _) = rendered(&Op::CreateTable(table), &with_function());
    insta::assert_snapshot!(script);
}

// --- Several column changes in a row ---

fn alter(table: &str, column: &str, change: ColumnChange) -> Op {
    Op::AlterColumn {
        table: name(table),
        column: column.into(),
        change,
    }
}

fn run_sql(ops: &[Op]) -> Vec<String> {
    let mut schema = fixture();
    migrate_core::render::render_ops(
        "aaaaaaaaaaaa",
        migrate_core::Direction::Up,
        ops,
        &mut schema,
        Dialect::Postgres,
    )
    .expect("renders")
    .into_iter()
    .map(|s| s.sql)
    .collect()
}

fn retype(ty: ColumnType) -> ColumnChange {
    ColumnChange {
        ty: Some((ty, None)),
        ..ColumnChange::default()
    }
}

fn default_to(value: Option<&str>) -> ColumnChange {
    ColumnChange {
        default: Some(value.map(|v| DefaultExpr::Text(v.into()))),
        ..ColumnChange::default()
    }
}

#[test]
fn column_changes_in_a_row_are_one_alter_table_per_table() {
    let statements = run_sql(&[
        alter("users", "timestamp", retype(ColumnType::TimestampTz)),
        alter("organizations", "name", default_to(Some("unnamed"))),
        alter(
            "users",
            "status",
            ColumnChange {
                nullable: Some(true),
                ..ColumnChange::default()
            },
        ),
    ]);
    insta::assert_snapshot!(statements.join(";\n"));
    assert_eq!(statements.len(), 2, "users is rewritten once");
}

#[test]
fn a_second_change_of_one_column_keeps_its_order() {
    let statements = run_sql(&[
        alter("users", "status", default_to(Some("a"))),
        alter("users", "email", retype(ColumnType::Text)),
        alter("users", "status", default_to(None)),
    ]);
    assert_eq!(
        statements,
        [
            "ALTER TABLE users\n    ALTER COLUMN status SET DEFAULT 'a',\n    ALTER COLUMN email TYPE text",
            "ALTER TABLE users ALTER COLUMN status DROP DEFAULT",
        ]
    );
}

#[test]
fn a_type_change_of_a_key_column_is_not_grouped() {
    // users.organization_id references organizations.id: its order among changes must hold.
    let statements = run_sql(&[
        alter("users", "organization_id", retype(ColumnType::Text)),
        alter("organizations", "name", default_to(Some("x"))),
        alter("users", "status", default_to(Some("a"))),
    ]);
    assert_eq!(statements.len(), 3, "{statements:?}");
}

//! Codegen: the Rust that `rust_ops` writes compiles and rebuilds the very ops it was made from.
//!
//! `generated_code_rebuilds_the_sample` holds the snapshot's code pasted verbatim. When codegen
//! changes, the snapshot test fails; accept the new snapshot and paste its code again.

#![allow(missing_docs)]

// The generated code's prelude, `migrate_core::codegen::PRELUDE`.
use migrate_core::*;

use migrate_core::codegen::{rust_ops, PRELUDE};

/// One op of every variant, and every type, default, action and awkward string codegen meets.
fn sample() -> Vec<Op> {
    let all_types = Table::new(TableName::qualified("legacy", "every_type"))
        .column(
            Column::new("a", ColumnType::Uuid)
                .not_null()
                .default(DefaultExpr::RandomUuid),
        )
        .column(
            Column::new("b", ColumnType::varchar(255))
                .default(DefaultExpr::Text("it's \"quoted\"".into())),
        )
        .column(Column::new("c", ColumnType::Varchar(None)))
        .column(Column::new("d", ColumnType::Text).default(DefaultExpr::Text("back\\slash".into())))
        .column(Column::new("e", ColumnType::Boolean).default(DefaultExpr::Bool(false)))
        .column(Column::new("f", ColumnType::SmallInt).default(DefaultExpr::Int(i64::MIN)))
        .column(Column::new("g", ColumnType::Integer).default(DefaultExpr::Int(-1)))
        .column(Column::new("h", ColumnType::BigInt))
        .column(Column::new("i", ColumnType::Numeric(Some((10, 2)))))
        .column(Column::new("j", ColumnType::Numeric(None)))
        .column(Column::new("k", ColumnType::Double))
        .column(Column::new("l", ColumnType::Timestamp))
        .column(
            Column::new("m", ColumnType::TimestampTz)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .column(Column::new("n", ColumnType::Date))
        .column(Column::new("o", ColumnType::Json).default(DefaultExpr::Json("{}".into())))
        .column(Column::new("p", ColumnType::Jsonb).default(DefaultExpr::Json("[\"x\"]".into())))
        .column(Column::new("q", ColumnType::Inet))
        .column(Column::new("r", ColumnType::Bytea))
        .column(Column::new("s", ColumnType::Other("tsvector".into())))
        .column(
            Column::new("t", ColumnType::Text)
                .default(DefaultExpr::Sql("'tab\tand\u{7}bell'::text".into())),
        )
        .primary_key("every_type_pkey", &["a"])
        .unique("every_type_b_key", &["b", "c"])
        .check("ck_every_type_g", "g > 0\n    AND b <> 'x' AND c <> \"y\"")
        .foreign_key(
            "fk_every_type_self",
            &["h"],
            TableName::qualified("legacy", "every_type"),
            &["a"],
            ReferentialAction::Restrict,
        )
        .constraint(
            "fk_every_type_users",
            ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["a".into()],
                ref_table: TableName::new("users"),
                ref_columns: vec!["id".into()],
                on_delete: ReferentialAction::SetDefault,
                on_update: ReferentialAction::Cascade,
            }),
        )
        .index(Index::new("ix_every_type_b", &["b"]))
        .index(
            Index::on_keys(
                "ix_every_type_lower_b",
                vec![
                    IndexKey::Expr("lower(b)".into()),
                    IndexKey::Column("c".into()),
                ],
            )
            .unique()
            .filtered("b IS NOT NULL"),
        )
        .trigger(Trigger {
            name: "trg_every_type".into(),
            timing: TriggerTiming::After,
            events: vec![
                TriggerEvent::Insert,
                TriggerEvent::Update,
                TriggerEvent::Delete,
            ],
            function: TableName::qualified("legacy", "audit"),
        });
    let users = TableName::new("users");
    vec![
        Op::CreateSchema {
            name: "legacy".into(),
        },
        Op::CreateFunction(Function {
            name: TableName::qualified("legacy", "audit"),
            body: "BEGIN\n  RAISE NOTICE 'changed \"%\"', TG_OP; -- \"# stays inside\n  RETURN NEW;\nEND"
                .into(),
        }),
        Op::CreateTable(
            Table::new("users")
                .column(Column::new("id", ColumnType::Uuid).not_null())
                .column(Column::new("email", ColumnType::varchar(255)).not_null())
                .primary_key("users_pkey", &["id"]),
        ),
        Op::CreateTable(all_types),
        Op::CreateTable(Table::new(TableName::new("odd.name"))),
        Op::SetTableSchema {
            table: TableName::qualified("legacy", "every_type"),
            schema: None,
        },
        Op::SetTableSchema {
            table: TableName::new("every_type"),
            schema: Some("legacy".into()),
        },
        Op::RenameTable {
            table: TableName::new("odd.name"),
            to: "odd_name".into(),
        },
        Op::AddColumn {
            table: users.clone(),
            column: Column::new("locale", ColumnType::varchar(8)).default(DefaultExpr::Text("en".into())),
        },
        Op::RenameColumn {
            table: users.clone(),
            from: "locale".into(),
            to: "language".into(),
        },
        Op::AlterColumn {
            table: users.clone(),
            column: "email".into(),
            change: ColumnChange {
                ty: Some((ColumnType::Text, Some("email::text".into()))),
                nullable: Some(true),
                default: Some(None),
            },
        },
        Op::AlterColumn {
            table: users.clone(),
            column: "language".into(),
            change: ColumnChange {
                default: Some(Some(DefaultExpr::Text("fr".into()))),
                ..Default::default()
            },
        },
        Op::AlterColumn {
            table: users.clone(),
            column: "language".into(),
            change: ColumnChange::default(),
        },
        Op::CreateIndex {
            table: users.clone(),
            index: Index::on_keys("ix_users_email", vec![IndexKey::Expr("lower(email)".into())]).unique(),
            concurrently: true,
        },
        Op::AddConstraint {
            table: users.clone(),
            constraint: Constraint {
                name: "ck_users_email".into(),
                kind: ConstraintKind::Check {
                    expr: "email LIKE '%@%'".into(),
                    sqlite: None,
                },
            },
            not_valid: true,
        },
        Op::AddConstraint {
            table: users.clone(),
            constraint: Constraint {
                name: "users_email_key".into(),
                kind: ConstraintKind::Unique {
                    columns: vec!["email".into()],
                },
            },
            not_valid: false,
        },
        Op::ValidateConstraint {
            table: users.clone(),
            name: "ck_users_email".into(),
        },
        Op::CreateIndex {
            table: users.clone(),
            index: Index::new("users_language_key", &["language"]).unique(),
            concurrently: true,
        },
        Op::AddConstraintUsingIndex {
            table: users.clone(),
            name: "users_language_key".into(),
            index: "users_language_key".into(),
            primary_key: false,
        },
        Op::Backfill(
            Backfill::new("users", "language", "'en'")
                .set("email", "lower(email)")
                .filtered("language IS NULL")
                .batching(Batching {
                    rows: 500,
                    rows_per_second: Some(2000),
                }),
        ),
        Op::Backfill(Backfill::new(TableName::qualified("legacy", "every_type"), "d", "'x'")),
        Op::AlterColumnTypeOnline {
            table: TableName::qualified("legacy", "every_type"),
            column: "n".into(),
            ty: ColumnType::Timestamp,
            using: Some("n::timestamp".into()),
            batching: Batching::default(),
        },
        Op::CreateTrigger {
            table: users.clone(),
            trigger: Trigger {
                name: "trg_users_audit".into(),
                timing: TriggerTiming::Before,
                events: vec![TriggerEvent::Update],
                function: TableName::qualified("legacy", "audit"),
            },
        },
        Op::Sql(RawSql {
            description: "backfill the language".into(),
            postgres: Some("UPDATE users\n   SET language = 'en'\n WHERE language IS NULL;".into()),
            sqlite: None,
        }),
        Op::DropTrigger {
            table: users.clone(),
            name: "trg_users_audit".into(),
        },
        Op::DropConstraint {
            table: users.clone(),
            name: "ck_users_email".into(),
        },
        Op::DropConstraint {
            table: users.clone(),
            name: "users_language_key".into(),
        },
        Op::DropIndex {
            table: users.clone(),
            name: "ix_users_email".into(),
            concurrently: false,
        },
        Op::DropColumn {
            table: users.clone(),
            column: "language".into(),
        },
        Op::DropTable {
            table: TableName::qualified("legacy", "every_type"),
        },
        Op::DropFunction {
            name: TableName::qualified("legacy", "audit"),
        },
        Op::DropTable { table: users },
        Op::DropTable {
            table: TableName::new("odd_name"),
        },
        Op::DropSchema {
            name: "legacy".into(),
        },
    ]
}

#[test]
fn sample_holds_every_op_variant_and_is_a_valid_revision() {
    let variants: std::collections::HashSet<_> =
        sample().iter().map(std::mem::discriminant).collect();
    // Op has 23 variants; when one is added, add it to the sample and raise this number.
    assert_eq!(variants.len(), 23);
    let mut schema = Schema::new();
    op::apply_all(&mut schema, &sample()).expect("the sample applies");
    assert_eq!(schema, Schema::new());
}

#[test]
fn generated_code_is_snapshotted() {
    assert_eq!(PRELUDE, "use migrate_core::*;");
    insta::assert_snapshot!(rust_ops(&sample()));
}

#[test]
fn no_ops_is_an_empty_vec() {
    let empty: Vec<Op> = vec![];
    assert_eq!(rust_ops(&[]), "vec![]");
    assert_eq!(empty, vec![]);
}

#[test]
fn generated_code_rebuilds_the_sample() {
    assert_eq!(generated(), sample());
}

/// The snapshot's code, pasted verbatim: at the first column, because indenting it would change
/// the raw strings, and skipped by rustfmt so that it stays as codegen wrote it.
#[rustfmt::skip]
fn generated() -> Vec<Op> {
vec![
    Op::CreateSchema {
        name: "legacy".into(),
    },
    Op::CreateFunction(Function {
        name: TableName::qualified("legacy", "audit"),
        body: r##"BEGIN
  RAISE NOTICE 'changed "%"', TG_OP; -- "# stays inside
  RETURN NEW;
END"##.into(),
    }),
    Op::CreateTable(
        Table::new("users")
            .column(Column::new("id", ColumnType::Uuid).not_null())
            .column(Column::new("email", ColumnType::varchar(255)).not_null())
            .primary_key("users_pkey", &["id"]),
    ),
    Op::CreateTable(
        Table::new(TableName::qualified("legacy", "every_type"))
            .column(Column::new("a", ColumnType::Uuid).not_null().default(DefaultExpr::RandomUuid))
            .column(Column::new("b", ColumnType::varchar(255)).default(DefaultExpr::Text(r#"it's "quoted""#.into())))
            .column(Column::new("c", ColumnType::Varchar(None)))
            .column(Column::new("d", ColumnType::Text).default(DefaultExpr::Text(r#"back\slash"#.into())))
            .column(Column::new("e", ColumnType::Boolean).default(DefaultExpr::Bool(false)))
            .column(Column::new("f", ColumnType::SmallInt).default(DefaultExpr::Int(i64::MIN)))
            .column(Column::new("g", ColumnType::Integer).default(DefaultExpr::Int(-1)))
            .column(Column::new("h", ColumnType::BigInt))
            .column(Column::new("i", ColumnType::Numeric(Some((10, 2)))))
            .column(Column::new("j", ColumnType::Numeric(None)))
            .column(Column::new("k", ColumnType::Double))
            .column(Column::new("l", ColumnType::Timestamp))
            .column(Column::new("m", ColumnType::TimestampTz).not_null().default(DefaultExpr::Now))
            .column(Column::new("n", ColumnType::Date))
            .column(Column::new("o", ColumnType::Json).default(DefaultExpr::Json("{}".into())))
            .column(Column::new("p", ColumnType::Jsonb).default(DefaultExpr::Json(r#"["x"]"#.into())))
            .column(Column::new("q", ColumnType::Inet))
            .column(Column::new("r", ColumnType::Bytea))
            .column(Column::new("s", ColumnType::Other("tsvector".into())))
            .column(Column::new("t", ColumnType::Text).default(DefaultExpr::Sql("'tab\tand\u{7}bell'::text".into())))
            .check("ck_every_type_g", r#"g > 0
    AND b <> 'x' AND c <> "y""#)
            .unique("every_type_b_key", &["b", "c"])
            .primary_key("every_type_pkey", &["a"])
            .foreign_key("fk_every_type_self", &["h"], TableName::qualified("legacy", "every_type"), &["a"], ReferentialAction::Restrict)
            .constraint("fk_every_type_users", ConstraintKind::ForeignKey(ForeignKey {
                columns: vec!["a".into()],
                ref_table: TableName::new("users"),
                ref_columns: vec!["id".into()],
                on_delete: ReferentialAction::SetDefault,
                on_update: ReferentialAction::Cascade,
            }))
            .index(Index::new("ix_every_type_b", &["b"]))
            .index(Index::on_keys("ix_every_type_lower_b", vec![IndexKey::Expr("lower(b)".into()), IndexKey::Column("c".into())]).unique().filtered("b IS NOT NULL"))
            .trigger(Trigger {
                name: "trg_every_type".into(),
                timing: TriggerTiming::After,
                events: vec![TriggerEvent::Insert, TriggerEvent::Update, TriggerEvent::Delete],
                function: TableName::qualified("legacy", "audit"),
            }),
    ),
    Op::CreateTable(
        Table::new(TableName::new("odd.name")),
    ),
    Op::SetTableSchema {
        table: TableName::qualified("legacy", "every_type"),
        schema: None,
    },
    Op::SetTableSchema {
        table: TableName::new("every_type"),
        schema: Some("legacy".into()),
    },
    Op::RenameTable {
        table: TableName::new("odd.name"),
        to: "odd_name".into(),
    },
    Op::AddColumn {
        table: TableName::new("users"),
        column: Column::new("locale", ColumnType::varchar(8)).default(DefaultExpr::Text("en".into())),
    },
    Op::RenameColumn {
        table: TableName::new("users"),
        from: "locale".into(),
        to: "language".into(),
    },
    Op::AlterColumn {
        table: TableName::new("users"),
        column: "email".into(),
        change: ColumnChange {
            ty: Some((ColumnType::Text, Some("email::text".into()))),
            nullable: Some(true),
            default: Some(None),
        },
    },
    Op::AlterColumn {
        table: TableName::new("users"),
        column: "language".into(),
        change: ColumnChange {
            default: Some(Some(DefaultExpr::Text("fr".into()))),
            ..Default::default()
        },
    },
    Op::AlterColumn {
        table: TableName::new("users"),
        column: "language".into(),
        change: ColumnChange {
            ..Default::default()
        },
    },
    Op::CreateIndex {
        table: TableName::new("users"),
        index: Index::on_keys("ix_users_email", vec![IndexKey::Expr("lower(email)".into())]).unique(),
        concurrently: true,
    },
    Op::AddConstraint {
        table: TableName::new("users"),
        constraint: Constraint {
            name: "ck_users_email".into(),
            kind: ConstraintKind::Check {
                expr: "email LIKE '%@%'".into(),
                sqlite: None,
            },
        },
        not_valid: true,
    },
    Op::AddConstraint {
        table: TableName::new("users"),
        constraint: Constraint {
            name: "users_email_key".into(),
            kind: ConstraintKind::Unique {
                columns: vec!["email".into()],
            },
        },
        not_valid: false,
    },
    Op::ValidateConstraint {
        table: TableName::new("users"),
        name: "ck_users_email".into(),
    },
    Op::CreateIndex {
        table: TableName::new("users"),
        index: Index::new("users_language_key", &["language"]).unique(),
        concurrently: true,
    },
    Op::AddConstraintUsingIndex {
        table: TableName::new("users"),
        name: "users_language_key".into(),
        index: "users_language_key".into(),
        primary_key: false,
    },
    Op::Backfill(Backfill::new("users", "language", "'en'")
        .set("email", "lower(email)")
        .filtered("language IS NULL")
        .batching(Batching { rows: 500, rows_per_second: Some(2000) })),
    Op::Backfill(Backfill::new(TableName::qualified("legacy", "every_type"), "d", "'x'")),
    Op::AlterColumnTypeOnline {
        table: TableName::qualified("legacy", "every_type"),
        column: "n".into(),
        ty: ColumnType::Timestamp,
        using: Some("n::timestamp".into()),
        batching: Batching::default(),
    },
    Op::CreateTrigger {
        table: TableName::new("users"),
        trigger: Trigger {
            name: "trg_users_audit".into(),
            timing: TriggerTiming::Before,
            events: vec![TriggerEvent::Update],
            function: TableName::qualified("legacy", "audit"),
        },
    },
    Op::Sql(RawSql {
        description: "backfill the language".into(),
        postgres: Some(r#"UPDATE users
   SET language = 'en'
 WHERE language IS NULL;"#.into()),
        sqlite: None,
    }),
    Op::DropTrigger {
        table: TableName::new("users"),
        name: "trg_users_audit".into(),
    },
    Op::DropConstraint {
        table: TableName::new("users"),
        name: "ck_users_email".into(),
    },
    Op::DropConstraint {
        table: TableName::new("users"),
        name: "users_language_key".into(),
    },
    Op::DropIndex {
        table: TableName::new("users"),
        name: "ix_users_email".into(),
        concurrently: false,
    },
    Op::DropColumn {
        table: TableName::new("users"),
        column: "language".into(),
    },
    Op::DropTable {
        table: TableName::qualified("legacy", "every_type"),
    },
    Op::DropFunction {
        name: TableName::qualified("legacy", "audit"),
    },
    Op::DropTable {
        table: TableName::new("users"),
    },
    Op::DropTable {
        table: TableName::new("odd_name"),
    },
    Op::DropSchema {
        name: "legacy".into(),
    },
]
}

#[test]
fn allowances_are_written_as_allow_calls_that_rebuild_them() {
    let revision = Revision::new("aaaaaaaaaaaa", &[], "drop the archive")
        .allow("drop-loses-data", "copied \"aside\" in 2.3")
        .allow("drop-breaks-release", "unused since 2.1");
    let code = codegen::rust_allowances(&revision.allowances);
    assert_eq!(
        code,
        "\n    .allow(\"drop-loses-data\", r#\"copied \"aside\" in 2.3\"#)\n    .allow(\"drop-breaks-release\", \"unused since 2.1\")"
    );
    // The code above, pasted after `Revision::new(..)`.
    let rebuilt = Revision::new("aaaaaaaaaaaa", &[], "drop the archive")
        .allow("drop-loses-data", r#"copied "aside" in 2.3"#)
        .allow("drop-breaks-release", "unused since 2.1");
    assert_eq!(rebuilt, revision);
    assert_eq!(codegen::rust_allowances(&[]), "");
}

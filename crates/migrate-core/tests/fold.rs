//! The fold: what `Op::apply` refuses, what it carries along, and that a refusal changes nothing.

#![allow(missing_docs)]

use migrate_core::op::apply_all;
use migrate_core::{
    Column, ColumnType, Constraint, ConstraintKind, ForeignKey, Index, IndexKey, ModelError, Op,
    RawSql, ReferentialAction, Schema, Table, TableName,
};
use proptest::prelude::*;

fn name(table: &str) -> TableName {
    TableName::from(table)
}

fn organizations() -> Table {
    Table::new("organizations")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("slug", ColumnType::varchar(64)).not_null())
        .column(Column::new("name", ColumnType::Text))
        .primary_key("organizations_pkey", &["id"])
}

fn users() -> Table {
    Table::new("users")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("organization_id", ColumnType::Uuid))
        .column(Column::new("email", ColumnType::Text).not_null())
        .column(Column::new("manager_id", ColumnType::Uuid))
        .primary_key("users_pkey", &["id"])
        .foreign_key(
            "fk_users_organization",
            &["organization_id"],
            "organizations",
            &["id"],
            ReferentialAction::Cascade,
        )
        .foreign_key(
            "fk_users_manager",
            &["manager_id"],
            "users",
            &["id"],
            ReferentialAction::SetNull,
        )
}

fn index(table: &str, index: Index) -> Op {
    Op::CreateIndex {
        table: name(table),
        index,
        concurrently: false,
    }
}

fn constraint(table: &str, constraint_name: &str, kind: ConstraintKind) -> Op {
    Op::AddConstraint {
        table: name(table),
        constraint: Constraint {
            name: constraint_name.into(),
            kind,
        },
        not_valid: false,
    }
}

fn unique(columns: &[&str]) -> ConstraintKind {
    ConstraintKind::Unique {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// Organizations and users, users referring to organizations and to themselves.
fn base() -> Schema {
    let mut schema = Schema::new();
    apply_all(
        &mut schema,
        &[Op::CreateTable(organizations()), Op::CreateTable(users())],
    )
    .expect("the fixture applies");
    schema
}

fn applied(mut schema: Schema, ops: &[Op]) -> Schema {
    apply_all(&mut schema, ops).expect("the setup ops apply");
    schema
}

/// Applies `op`, expects it refused, and checks the schema did not move.
fn refused(schema: &Schema, op: &Op) -> ModelError {
    let mut after = schema.clone();
    let error = op.apply(&mut after).expect_err("the op is refused");
    assert_eq!(&after, schema, "a refused {op:?} changed the schema");
    error
}

fn table<'s>(schema: &'s Schema, t: &str) -> &'s Table {
    schema.table(&name(t)).expect("the table exists")
}

fn fk<'s>(schema: &'s Schema, t: &str, constraint: &str) -> &'s ForeignKey {
    match &table(schema, t).constraints[constraint].kind {
        ConstraintKind::ForeignKey(fk) => fk,
        other => panic!("{constraint} is {other:?}"),
    }
}

#[test]
fn index_named_like_another_tables_index_is_refused() {
    let schema = applied(
        base(),
        &[index(
            "organizations",
            Index::new("ix_organizations_slug", &["slug"]).unique(),
        )],
    );
    assert_eq!(
        refused(
            &schema,
            &index("users", Index::new("ix_organizations_slug", &["email"]))
        ),
        ModelError::RelationExists {
            name: "ix_organizations_slug".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn index_created_twice_on_one_table_is_refused() {
    let slug = index(
        "organizations",
        Index::new("ix_organizations_slug", &["slug"]),
    );
    let schema = applied(base(), std::slice::from_ref(&slug));
    assert_eq!(
        refused(&schema, &slug),
        ModelError::RelationExists {
            name: "ix_organizations_slug".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn unique_constraint_named_like_an_existing_index_is_refused() {
    let schema = applied(
        base(),
        &[index(
            "organizations",
            Index::new("ix_organizations_slug", &["slug"]),
        )],
    );
    assert_eq!(
        refused(
            &schema,
            &constraint("organizations", "ix_organizations_slug", unique(&["slug"]))
        ),
        ModelError::RelationExists {
            name: "ix_organizations_slug".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn index_named_like_a_primary_key_or_a_table_is_refused() {
    let schema = base();
    assert_eq!(
        refused(
            &schema,
            &index("users", Index::new("organizations_pkey", &["email"]))
        ),
        ModelError::RelationExists {
            name: "organizations_pkey".into(),
            owner: name("organizations")
        }
    );
    assert_eq!(
        refused(
            &schema,
            &index("users", Index::new("organizations", &["email"]))
        ),
        ModelError::RelationExists {
            name: "organizations".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn table_whose_unique_constraint_clashes_with_an_existing_index_is_refused() {
    let schema = applied(
        base(),
        &[index(
            "organizations",
            Index::new("ix_organizations_slug", &["slug"]),
        )],
    );
    let clashing = Table::new("teams")
        .column(Column::new("slug", ColumnType::Text))
        .unique("ix_organizations_slug", &["slug"]);
    assert_eq!(
        refused(&schema, &Op::CreateTable(clashing)),
        ModelError::RelationExists {
            name: "ix_organizations_slug".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn table_whose_constraint_is_named_like_the_table_itself_is_refused() {
    let clashing = Table::new("teams")
        .column(Column::new("id", ColumnType::Uuid))
        .primary_key("teams", &["id"]);
    assert_eq!(
        refused(&Schema::new(), &Op::CreateTable(clashing)),
        ModelError::RelationExists {
            name: "teams".into(),
            owner: name("teams")
        }
    );
}

#[test]
fn same_index_name_in_two_database_schemas_is_accepted() {
    let schema = applied(
        base(),
        &[
            Op::CreateSchema {
                name: "legacy".into(),
            },
            Op::CreateTable(
                Table::new("legacy.organizations").column(Column::new("slug", ColumnType::Text)),
            ),
            index(
                "organizations",
                Index::new("ix_organizations_slug", &["slug"]),
            ),
        ],
    );
    applied(
        schema,
        &[index(
            "legacy.organizations",
            Index::new("ix_organizations_slug", &["slug"]),
        )],
    );
}

#[test]
fn table_created_twice_is_refused() {
    assert_eq!(
        refused(&base(), &Op::CreateTable(organizations())),
        ModelError::TableExists(name("organizations"))
    );
}

#[test]
fn renaming_onto_an_existing_table_is_refused() {
    let op = Op::RenameTable {
        table: name("users"),
        to: "organizations".into(),
    };
    assert_eq!(
        refused(&base(), &op),
        ModelError::TableExists(name("organizations"))
    );
}

#[test]
fn renaming_a_table_onto_one_of_its_own_index_names_is_refused() {
    let op = Op::RenameTable {
        table: name("users"),
        to: "users_pkey".into(),
    };
    assert_eq!(
        refused(&base(), &op),
        ModelError::RelationExists {
            name: "users_pkey".into(),
            owner: name("users")
        }
    );
}

#[test]
fn renaming_a_table_onto_another_tables_index_name_is_refused() {
    let op = Op::RenameTable {
        table: name("users"),
        to: "organizations_pkey".into(),
    };
    assert_eq!(
        refused(&base(), &op),
        ModelError::RelationExists {
            name: "organizations_pkey".into(),
            owner: name("organizations")
        }
    );
}

#[test]
fn ops_on_a_missing_table_are_refused() {
    let schema = base();
    let missing = name("teams");
    for op in [
        Op::DropTable {
            table: missing.clone(),
        },
        Op::RenameTable {
            table: missing.clone(),
            to: "squads".into(),
        },
        Op::SetTableSchema {
            table: missing.clone(),
            schema: None,
        },
        Op::AddColumn {
            table: missing.clone(),
            column: Column::new("id", ColumnType::Uuid),
        },
        Op::DropColumn {
            table: missing.clone(),
            column: "id".into(),
        },
        Op::DropIndex {
            table: missing.clone(),
            name: "ix".into(),
            concurrently: false,
        },
        Op::DropConstraint {
            table: missing.clone(),
            name: "pk".into(),
        },
        Op::ValidateConstraint {
            table: missing.clone(),
            name: "pk".into(),
        },
    ] {
        assert_eq!(
            refused(&schema, &op),
            ModelError::NoSuchTable(missing.clone()),
            "{op:?}"
        );
    }
}

#[test]
fn foreign_key_to_a_missing_table_is_refused() {
    let orphan = Table::new("teams")
        .column(Column::new("league_id", ColumnType::Uuid))
        .foreign_key(
            "fk_teams_league",
            &["league_id"],
            "leagues",
            &["id"],
            ReferentialAction::NoAction,
        );
    assert_eq!(
        refused(&base(), &Op::CreateTable(orphan)),
        ModelError::NoSuchTable(name("leagues"))
    );
}

#[test]
fn ops_on_a_missing_column_are_refused() {
    let schema = base();
    let missing = ModelError::NoSuchColumn(name("users"), "phone".into());
    for op in [
        Op::DropColumn {
            table: name("users"),
            column: "phone".into(),
        },
        Op::RenameColumn {
            table: name("users"),
            from: "phone".into(),
            to: "mobile".into(),
        },
        Op::AlterColumn {
            table: name("users"),
            column: "phone".into(),
            change: Default::default(),
        },
        index("users", Index::new("ix_users_phone", &["phone"])),
        constraint("users", "uq_users_phone", unique(&["phone"])),
    ] {
        assert_eq!(refused(&schema, &op), missing, "{op:?}");
    }
}

#[test]
fn foreign_key_to_a_missing_column_is_refused() {
    let op = constraint(
        "users",
        "fk_users_org_slug",
        ConstraintKind::ForeignKey(ForeignKey {
            columns: vec!["email".into()],
            ref_table: name("organizations"),
            ref_columns: vec!["handle".into()],
            on_delete: ReferentialAction::NoAction,
            on_update: ReferentialAction::NoAction,
        }),
    );
    assert_eq!(
        refused(&base(), &op),
        ModelError::NoSuchColumn(name("organizations"), "handle".into())
    );
}

#[test]
fn table_with_an_index_on_a_missing_column_is_refused() {
    let broken = Table::new("teams")
        .column(Column::new("id", ColumnType::Uuid))
        .index(Index::new("ix_teams_slug", &["slug"]));
    assert_eq!(
        refused(&Schema::new(), &Op::CreateTable(broken)),
        ModelError::NoSuchColumn(name("teams"), "slug".into())
    );
}

#[test]
fn columns_added_or_renamed_onto_an_existing_name_are_refused() {
    let schema = base();
    let exists = ModelError::ColumnExists(name("users"), "email".into());
    let add = Op::AddColumn {
        table: name("users"),
        column: Column::new("email", ColumnType::Text),
    };
    assert_eq!(refused(&schema, &add), exists);
    let rename = Op::RenameColumn {
        table: name("users"),
        from: "manager_id".into(),
        to: "email".into(),
    };
    assert_eq!(refused(&schema, &rename), exists);
    let twice = Table::new("teams")
        .column(Column::new("id", ColumnType::Uuid))
        .column(Column::new("id", ColumnType::Text));
    assert_eq!(
        refused(&schema, &Op::CreateTable(twice)),
        ModelError::ColumnExists(name("teams"), "id".into())
    );
}

#[test]
fn dropping_a_missing_index_is_refused() {
    let op = Op::DropIndex {
        table: name("users"),
        name: "ix_users_email".into(),
        concurrently: true,
    };
    assert_eq!(
        refused(&base(), &op),
        ModelError::NoSuchIndex(name("users"), "ix_users_email".into())
    );
}

#[test]
fn dropping_or_validating_a_missing_constraint_is_refused() {
    let schema = base();
    let missing = ModelError::NoSuchConstraint(name("users"), "ck_users_email".into());
    let drop = Op::DropConstraint {
        table: name("users"),
        name: "ck_users_email".into(),
    };
    assert_eq!(refused(&schema, &drop), missing);
    let validate = Op::ValidateConstraint {
        table: name("users"),
        name: "ck_users_email".into(),
    };
    assert_eq!(refused(&schema, &validate), missing);
}

#[test]
fn constraint_added_twice_is_refused() {
    let check = constraint(
        "users",
        "ck_users_email",
        ConstraintKind::Check {
            expr: "email <> ''".into(),
            sqlite: None,
        },
    );
    let schema = applied(base(), std::slice::from_ref(&check));
    assert_eq!(
        refused(&schema, &check),
        ModelError::ConstraintExists(name("users"), "ck_users_email".into())
    );
}

#[test]
fn only_foreign_keys_and_checks_can_be_added_not_valid() {
    let not_valid = |constraint_name: &str, kind: ConstraintKind| Op::AddConstraint {
        table: name("users"),
        constraint: Constraint {
            name: constraint_name.into(),
            kind,
        },
        not_valid: true,
    };
    let schema = base();
    assert_eq!(
        refused(&schema, &not_valid("uq_users_email", unique(&["email"]))),
        ModelError::CannotBeNotValid(name("users"), "uq_users_email".into())
    );
    // The self-referencing foreign key rests on users_pkey: it must go first.
    let schema = applied(
        schema,
        &[
            Op::DropConstraint {
                table: name("users"),
                name: "fk_users_manager".into(),
            },
            Op::DropConstraint {
                table: name("users"),
                name: "users_pkey".into(),
            },
        ],
    );
    let primary_key = ConstraintKind::PrimaryKey {
        columns: vec!["email".into()],
    };
    assert_eq!(
        refused(&schema, &not_valid("users_email_pkey", primary_key)),
        ModelError::CannotBeNotValid(name("users"), "users_email_pkey".into())
    );
    applied(
        schema,
        &[not_valid(
            "ck_users_email",
            ConstraintKind::Check {
                expr: "email <> ''".into(),
                sqlite: None,
            },
        )],
    );
}

#[test]
fn second_primary_key_is_refused() {
    let op = constraint(
        "users",
        "users_email_pkey",
        ConstraintKind::PrimaryKey {
            columns: vec!["email".into()],
        },
    );
    assert_eq!(
        refused(&base(), &op),
        ModelError::SecondPrimaryKey(name("users"))
    );
}

#[test]
fn dropping_a_referenced_table_is_refused() {
    assert_eq!(
        refused(
            &base(),
            &Op::DropTable {
                table: name("organizations")
            }
        ),
        ModelError::StillReferenced {
            table: name("organizations"),
            by: name("users"),
            constraint: "fk_users_organization".into(),
        }
    );
}

#[test]
fn dropping_a_table_that_only_refers_to_itself_is_accepted() {
    let schema = applied(
        base(),
        &[Op::DropTable {
            table: name("users"),
        }],
    );
    assert!(schema.table(&name("users")).is_none());
    applied(
        schema,
        &[Op::DropTable {
            table: name("organizations"),
        }],
    );
}

#[test]
fn dropping_a_referenced_column_is_refused() {
    assert_eq!(
        refused(
            &base(),
            &Op::DropColumn {
                table: name("organizations"),
                column: "id".into()
            }
        ),
        ModelError::StillReferenced {
            table: name("organizations"),
            by: name("users"),
            constraint: "fk_users_organization".into(),
        }
    );
    assert_eq!(
        refused(
            &base(),
            &Op::DropColumn {
                table: name("users"),
                column: "id".into()
            }
        ),
        ModelError::StillReferenced {
            table: name("users"),
            by: name("users"),
            constraint: "fk_users_manager".into()
        }
    );
}

#[test]
fn dropping_a_column_drops_the_indexes_and_constraints_over_it() {
    let schema = applied(
        base(),
        &[
            index("users", Index::new("ix_users_email", &["email"])),
            index(
                "users",
                Index::new("ix_users_org_email", &["organization_id", "email"]),
            ),
            index("users", Index::new("ix_users_org", &["organization_id"])),
            constraint("users", "uq_users_email", unique(&["email"])),
            constraint(
                "users",
                "uq_users_org_email",
                unique(&["organization_id", "email"]),
            ),
            Op::DropColumn {
                table: name("users"),
                column: "email".into(),
            },
        ],
    );
    let users = table(&schema, "users");
    assert!(users.find_column("email").is_none());
    assert_eq!(
        users.indexes.keys().collect::<Vec<_>>(),
        vec!["ix_users_org"]
    );
    assert_eq!(
        users.constraints.keys().collect::<Vec<_>>(),
        vec!["fk_users_manager", "fk_users_organization", "users_pkey"]
    );
    let again = applied(
        schema,
        &[index("users", Index::new("ix_users_email", &["id"]))],
    );
    assert!(table(&again, "users")
        .indexes
        .contains_key("ix_users_email"));
}

#[test]
fn dropping_a_foreign_key_column_drops_the_foreign_key() {
    let schema = applied(
        base(),
        &[Op::DropColumn {
            table: name("users"),
            column: "organization_id".into(),
        }],
    );
    assert!(!table(&schema, "users")
        .constraints
        .contains_key("fk_users_organization"));
    applied(
        schema,
        &[Op::DropTable {
            table: name("organizations"),
        }],
    );
}

#[test]
fn renaming_a_table_rewrites_the_foreign_keys_pointing_at_it() {
    let schema = applied(
        base(),
        &[
            index(
                "organizations",
                Index::new("ix_organizations_slug", &["slug"]),
            ),
            Op::RenameTable {
                table: name("organizations"),
                to: "tenants".into(),
            },
            Op::RenameTable {
                table: name("users"),
                to: "members".into(),
            },
        ],
    );
    assert!(schema.table(&name("organizations")).is_none());
    assert_eq!(table(&schema, "tenants").name, name("tenants"));
    assert!(table(&schema, "tenants")
        .indexes
        .contains_key("ix_organizations_slug"));
    assert_eq!(
        fk(&schema, "members", "fk_users_organization").ref_table,
        name("tenants")
    );
    assert_eq!(
        fk(&schema, "members", "fk_users_manager").ref_table,
        name("members")
    );
    assert_eq!(
        schema.relation_owner(None, "ix_organizations_slug"),
        Some(&name("tenants"))
    );
    assert_eq!(
        refused(&schema, &Op::CreateTable(organizations())),
        ModelError::RelationExists {
            name: "organizations_pkey".into(),
            owner: name("tenants")
        }
    );
}

#[test]
fn renaming_a_column_rewrites_index_keys_and_foreign_key_columns() {
    let schema = applied(
        base(),
        &[
            index(
                "organizations",
                Index::new("ix_organizations_slug", &["slug"]).unique(),
            ),
            index(
                "organizations",
                Index::on_keys(
                    "ix_organizations_slug_lower",
                    vec![
                        IndexKey::Expr("lower(slug)".into()),
                        IndexKey::Column("slug".into()),
                    ],
                ),
            ),
            constraint(
                "organizations",
                "uq_organizations_slug_id",
                unique(&["slug", "id"]),
            ),
            Op::RenameColumn {
                table: name("organizations"),
                from: "slug".into(),
                to: "handle".into(),
            },
            Op::RenameColumn {
                table: name("organizations"),
                from: "id".into(),
                to: "organization_id".into(),
            },
            Op::RenameColumn {
                table: name("users"),
                from: "manager_id".into(),
                to: "boss_id".into(),
            },
            Op::RenameColumn {
                table: name("users"),
                from: "id".into(),
                to: "user_id".into(),
            },
        ],
    );
    let orgs = table(&schema, "organizations");
    assert_eq!(
        orgs.indexes["ix_organizations_slug"].keys,
        vec![IndexKey::Column("handle".into())]
    );
    assert_eq!(
        orgs.indexes["ix_organizations_slug_lower"].keys,
        vec![
            IndexKey::Expr("lower(slug)".into()),
            IndexKey::Column("handle".into())
        ]
    );
    assert_eq!(
        orgs.constraints["uq_organizations_slug_id"].kind,
        unique(&["handle", "organization_id"])
    );
    assert_eq!(
        orgs.constraints["organizations_pkey"].kind,
        ConstraintKind::PrimaryKey {
            columns: vec!["organization_id".into()]
        }
    );
    let to_orgs = fk(&schema, "users", "fk_users_organization");
    assert_eq!(to_orgs.columns, vec!["organization_id".to_owned()]);
    assert_eq!(to_orgs.ref_columns, vec!["organization_id".to_owned()]);
    let to_self = fk(&schema, "users", "fk_users_manager");
    assert_eq!(to_self.columns, vec!["boss_id".to_owned()]);
    assert_eq!(to_self.ref_columns, vec!["user_id".to_owned()]);
}

#[test]
fn moving_a_table_needs_the_target_schema_to_exist() {
    let op = Op::SetTableSchema {
        table: name("organizations"),
        schema: Some("legacy".into()),
    };
    assert_eq!(
        refused(&base(), &op),
        ModelError::NoSuchSchema("legacy".into())
    );
    let moved = applied(
        base(),
        &[
            Op::CreateSchema {
                name: "legacy".into(),
            },
            op,
        ],
    );
    assert!(moved.table(&name("organizations")).is_none());
    assert_eq!(
        table(&moved, "legacy.organizations").name,
        name("legacy.organizations")
    );
    assert_eq!(
        fk(&moved, "users", "fk_users_organization").ref_table,
        name("legacy.organizations")
    );
    assert_eq!(
        moved.relation_owner(Some("legacy"), "organizations_pkey"),
        Some(&name("legacy.organizations"))
    );
    assert_eq!(moved.relation_owner(None, "organizations_pkey"), None);
    let back = applied(
        moved,
        &[Op::SetTableSchema {
            table: name("legacy.organizations"),
            schema: None,
        }],
    );
    assert_eq!(
        back,
        applied(
            base(),
            &[Op::CreateSchema {
                name: "legacy".into()
            }]
        )
    );
}

#[test]
fn creating_a_table_in_a_missing_schema_is_refused() {
    let op = Op::CreateTable(
        Table::new("legacy.users_simple").column(Column::new("id", ColumnType::Integer)),
    );
    assert_eq!(
        refused(&Schema::new(), &op),
        ModelError::NoSuchSchema("legacy".into())
    );
}

#[test]
fn schemas_are_created_once_and_dropped_only_when_empty() {
    let schema = applied(
        Schema::new(),
        &[
            Op::CreateSchema {
                name: "legacy".into(),
            },
            Op::CreateTable(
                Table::new("legacy.users_simple").column(Column::new("id", ColumnType::Integer)),
            ),
        ],
    );
    assert_eq!(
        refused(
            &schema,
            &Op::CreateSchema {
                name: "legacy".into()
            }
        ),
        ModelError::SchemaExists("legacy".into())
    );
    assert_eq!(
        refused(
            &schema,
            &Op::DropSchema {
                name: "legacy".into()
            }
        ),
        ModelError::SchemaNotEmpty("legacy".into())
    );
    assert_eq!(
        refused(
            &schema,
            &Op::DropSchema {
                name: "archive".into()
            }
        ),
        ModelError::NoSuchSchema("archive".into())
    );
    let emptied = applied(
        schema,
        &[
            Op::DropTable {
                table: name("legacy.users_simple"),
            },
            Op::DropSchema {
                name: "legacy".into(),
            },
        ],
    );
    assert_eq!(emptied, Schema::new());
}

#[test]
fn raw_sql_and_validation_leave_the_schema_as_it_is() {
    let check = constraint(
        "users",
        "ck_users_email",
        ConstraintKind::Check {
            expr: "email <> ''".into(),
            sqlite: None,
        },
    );
    let schema = applied(base(), &[check]);
    let after = applied(
        schema.clone(),
        &[
            Op::Sql(RawSql {
                description: "backfill".into(),
                postgres: Some("UPDATE users SET email = lower(email)".into()),
                sqlite: None,
            }),
            Op::ValidateConstraint {
                table: name("users"),
                name: "ck_users_email".into(),
            },
        ],
    );
    assert_eq!(after, schema);
}

#[test]
fn alter_column_changes_only_what_it_names() {
    let schema = applied(
        base(),
        &[Op::AlterColumn {
            table: name("organizations"),
            column: "name".into(),
            change: migrate_core::ColumnChange {
                ty: Some((ColumnType::varchar(200), None)),
                nullable: Some(false),
                default: Some(Some(migrate_core::DefaultExpr::Text("unnamed".into()))),
            },
        }],
    );
    let column = table(&schema, "organizations")
        .find_column("name")
        .expect("name stays")
        .clone();
    assert_eq!(
        column,
        Column::new("name", ColumnType::varchar(200))
            .not_null()
            .default(migrate_core::DefaultExpr::Text("unnamed".into()))
    );
    let dropped = applied(
        schema,
        &[Op::AlterColumn {
            table: name("organizations"),
            column: "name".into(),
            change: migrate_core::ColumnChange {
                default: Some(None),
                ..Default::default()
            },
        }],
    );
    let column = table(&dropped, "organizations")
        .find_column("name")
        .expect("name stays");
    assert_eq!((column.default.clone(), column.nullable), (None, false));
}

#[test]
fn apply_all_names_the_position_of_the_failing_op() {
    let mut schema = base();
    let failed = apply_all(
        &mut schema,
        &[
            index("users", Index::new("ix_users_email", &["email"])),
            index("organizations", Index::new("ix_users_email", &["slug"])),
        ],
    );
    assert_eq!(
        failed,
        Err((
            1,
            Box::new(ModelError::RelationExists {
                name: "ix_users_email".into(),
                owner: name("users")
            })
        ))
    );
}

/// A small vocabulary of ops over few names, so random sequences hit both success and refusal.
fn arbitrary_op() -> impl Strategy<Value = Op> {
    let tables = prop::sample::select(vec!["a", "b", "s.a", "s.c"]);
    let columns = prop::sample::select(vec!["id", "x", "y"]);
    let relations = prop::sample::select(vec!["a", "b", "ix_1", "ix_2", "pk_a"]);
    prop_oneof![
        Just(Op::CreateSchema { name: "s".into() }),
        Just(Op::DropSchema { name: "s".into() }),
        (
            tables.clone(),
            columns.clone(),
            relations.clone(),
            any::<bool>()
        )
            .prop_map(|(t, c, pk, with_pk)| {
                let table = Table::new(t)
                    .column(Column::new("id", ColumnType::Integer))
                    .column(Column::new(c, ColumnType::Text));
                Op::CreateTable(if with_pk {
                    table.primary_key(pk, &["id"])
                } else {
                    table
                })
            }),
        (tables.clone(), tables.clone(), columns.clone()).prop_map(|(t, r, c)| Op::CreateTable(
            Table::new(t)
                .column(Column::new("ref", ColumnType::Integer))
                .foreign_key("fk_ref", &["ref"], r, &[c], ReferentialAction::NoAction)
        )),
        tables
            .clone()
            .prop_map(|t| Op::DropTable { table: name(t) }),
        (tables.clone(), prop::option::of(Just("s".to_owned()))).prop_map(|(t, s)| {
            Op::SetTableSchema {
                table: name(t),
                schema: s,
            }
        }),
        (tables.clone(), relations.clone()).prop_map(|(t, to)| Op::RenameTable {
            table: name(t),
            to: to.into()
        }),
        (tables.clone(), columns.clone()).prop_map(|(t, c)| Op::AddColumn {
            table: name(t),
            column: Column::new(c, ColumnType::Text)
        }),
        (tables.clone(), columns.clone()).prop_map(|(t, c)| Op::DropColumn {
            table: name(t),
            column: c.into()
        }),
        (tables.clone(), columns.clone(), columns.clone()).prop_map(|(t, f, to)| {
            Op::RenameColumn {
                table: name(t),
                from: f.into(),
                to: to.into(),
            }
        }),
        (tables.clone(), relations.clone(), columns.clone())
            .prop_map(|(t, n, c)| index(t, Index::new(n, &[c]))),
        (tables.clone(), relations.clone()).prop_map(|(t, n)| Op::DropIndex {
            table: name(t),
            name: n.into(),
            concurrently: false
        }),
        (tables.clone(), relations.clone(), columns.clone()).prop_map(|(t, n, c)| constraint(
            t,
            n,
            unique(&[c])
        )),
        (tables.clone(), relations.clone(), columns.clone()).prop_map(|(t, n, c)| constraint(
            t,
            n,
            ConstraintKind::PrimaryKey {
                columns: vec![c.into()]
            }
        )),
        (
            tables.clone(),
            relations.clone(),
            tables.clone(),
            columns.clone()
        )
            .prop_map(|(t, n, r, c)| constraint(
                t,
                n,
                ConstraintKind::ForeignKey(ForeignKey {
                    columns: vec![c.into()],
                    ref_table: name(r),
                    ref_columns: vec![c.into()],
                    on_delete: ReferentialAction::NoAction,
                    on_update: ReferentialAction::NoAction,
                })
            )),
        (tables.clone(), relations.clone()).prop_map(|(t, n)| Op::DropConstraint {
            table: name(t),
            name: n.into()
        }),
        (tables, relations).prop_map(|(t, n)| Op::ValidateConstraint {
            table: name(t),
            name: n.into()
        }),
    ]
}

/// Every relation name (table, index, constraint-backed index) is taken once per database schema.
fn relation_names_are_unique(schema: &Schema) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    schema
        .tables
        .values()
        .flat_map(|t| {
            t.relation_names()
                .map(move |r| (t.name.schema.clone(), r.to_owned()))
        })
        .all(|key| seen.insert(key))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_refused_op_leaves_the_schema_unchanged(ops in prop::collection::vec(arbitrary_op(), 1..30)) {
        let mut schema = Schema::new();
        for op in &ops {
            let before = schema.clone();
            if op.apply(&mut schema).is_err() {
                prop_assert_eq!(&schema, &before, "refused {:?}", op);
            }
            prop_assert!(relation_names_are_unique(&schema), "after {:?}: {:?}", op, schema);
        }
    }
}

#[test]
fn model_errors_say_what_the_database_would_refuse() {
    let users = name("users");
    let errors = [
        ModelError::TableExists(users.clone()),
        ModelError::NoSuchTable(name("legacy.users_simple")),
        ModelError::NoSuchColumn(users.clone(), "phone".into()),
        ModelError::ColumnExists(users.clone(), "email".into()),
        ModelError::RelationExists {
            name: "ix_organizations_slug".into(),
            owner: name("organizations"),
        },
        ModelError::NoSuchIndex(users.clone(), "ix_users_email".into()),
        ModelError::NoSuchConstraint(users.clone(), "ck_users_email".into()),
        ModelError::ConstraintExists(users.clone(), "ck_users_email".into()),
        ModelError::StillReferenced {
            table: name("organizations"),
            by: users.clone(),
            constraint: "fk_users_organization".into(),
        },
        ModelError::NoSuchSchema("legacy".into()),
        ModelError::SchemaExists("legacy".into()),
        ModelError::SchemaNotEmpty("legacy".into()),
        ModelError::SecondPrimaryKey(users.clone()),
        ModelError::CannotBeNotValid(users, "uq_users_email".into()),
    ];
    let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
    insta::assert_snapshot!(text);
}

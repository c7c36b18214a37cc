//! Diff: `diff(a, b)` folds `a` into `b`, `differences(a, b)` is empty exactly when `a == b`.

#![allow(missing_docs)]

use migrate_core::diff::{diff, differences, Change, ObjectKind};
use migrate_core::op::apply_all;
use migrate_core::{
    Column, ColumnChange, ColumnType, Constraint, ConstraintKind, DefaultExpr, Function, Index,
    IndexKey, ModelError, Op, ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent,
    TriggerTiming,
};
use proptest::prelude::*;
use proptest::sample::Index as Pick;

fn name(table: &str) -> TableName {
    TableName::from(table)
}

fn built(ops: &[Op]) -> Schema {
    let mut schema = Schema::new();
    apply_all(&mut schema, ops).expect("the fixture applies");
    schema
}

/// Folds `ops` like `apply_all`, and also refuses what PostgreSQL refuses and the fold does not
/// check (yet): dropping a key a foreign key rests on, or a schema that still holds a function.
/// The diff is meant to satisfy PostgreSQL, not only the fold.
fn apply_strictly(schema: &mut Schema, ops: &[Op]) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        let key_columns = match op {
            Op::DropConstraint { table, name } => schema.tables[table]
                .constraints
                .get(name)
                .filter(|c| c.kind.has_index())
                .map(|c| (table, c.kind.columns().to_vec())),
            Op::DropIndex { table, name, .. } => schema.tables[table]
                .indexes
                .get(name)
                .filter(|i| {
                    i.unique
                        && i.predicate.is_none()
                        && i.keys.iter().all(|k| matches!(k, IndexKey::Column(_)))
                })
                .map(|i| (table, i.columns().map(str::to_owned).collect())),
            _ => None,
        };
        if let Some((table, mut columns)) = key_columns {
            columns.sort();
            let resting = schema
                .tables
                .values()
                .flat_map(|t| t.constraints.values())
                .find(|c| {
                    matches!(&c.kind, ConstraintKind::ForeignKey(fk) if &fk.ref_table == table && {
                        let mut r = fk.ref_columns.clone();
                        r.sort();
                        r == columns
                    })
                });
            if let Some(fk) = resting {
                return Err(format!(
                    "op #{i} {op:?}: foreign key {} rests on it",
                    fk.name
                ));
            }
        }
        if let Op::DropSchema { name } = op {
            if schema
                .functions
                .keys()
                .any(|f| f.schema.as_ref() == Some(name))
            {
                return Err(format!("op #{i} {op:?}: a function lives in it"));
            }
        }
        op.apply(schema)
            .map_err(|e| format!("op #{i} {op:?} is refused: {e}"))?;
    }
    Ok(())
}

/// Applies `diff(from, to)` to `from`, checks it lands on `to`, and returns the ops.
fn diff_lands(from: &Schema, to: &Schema) -> Vec<Op> {
    let ops = diff(from, to);
    let mut after = from.clone();
    if let Err(e) = apply_strictly(&mut after, &ops) {
        panic!("{e}\nall ops: {ops:#?}");
    }
    assert_eq!(after, *to, "ops: {ops:#?}");
    ops
}

fn organizations() -> Table {
    Table::new("organizations")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("slug", ColumnType::varchar(64)).not_null())
        .primary_key("organizations_pkey", &["id"])
}

fn users() -> Table {
    Table::new("users")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("organization_id", ColumnType::Uuid))
        .column(Column::new("email", ColumnType::varchar(255)).not_null())
        .column(
            Column::new("locale", ColumnType::varchar(8)).default(DefaultExpr::Text("en".into())),
        )
        .primary_key("users_pkey", &["id"])
        .foreign_key(
            "fk_users_organization",
            &["organization_id"],
            "organizations",
            &["id"],
            ReferentialAction::Cascade,
        )
        .index(Index::new("ix_users_email", &["email"]))
}

fn base() -> Schema {
    built(&[Op::CreateTable(organizations()), Op::CreateTable(users())])
}

/// `base()` with `users` replaced by `f(users())`.
fn with_users(f: impl FnOnce(Table) -> Table) -> Schema {
    built(&[
        Op::CreateTable(organizations()),
        Op::CreateTable(f(users())),
    ])
}

fn replace_column(table: Table, column: Column) -> Table {
    let mut table = table;
    for c in table.columns.iter_mut().filter(|c| c.name == column.name) {
        *c = column.clone();
    }
    table
}

#[test]
fn diff_of_a_schema_with_itself_is_empty() {
    assert_eq!(diff(&base(), &base()), vec![]);
    assert_eq!(differences(&base(), &base()), vec![]);
}

#[test]
fn column_type_change_is_one_alter_column_without_using() {
    let to = with_users(|t| replace_column(t, Column::new("email", ColumnType::Text).not_null()));
    assert_eq!(
        diff_lands(&base(), &to),
        vec![Op::AlterColumn {
            table: name("users"),
            column: "email".into(),
            change: ColumnChange {
                ty: Some((ColumnType::Text, None)),
                ..Default::default()
            },
        }]
    );
}

#[test]
fn default_and_nullability_change_together_are_one_alter_column() {
    let to = with_users(|t| {
        replace_column(
            t,
            Column::new("locale", ColumnType::varchar(8))
                .not_null()
                .default(DefaultExpr::Text("fr".into())),
        )
    });
    assert_eq!(
        diff_lands(&base(), &to),
        vec![Op::AlterColumn {
            table: name("users"),
            column: "locale".into(),
            change: ColumnChange {
                nullable: Some(false),
                default: Some(Some(DefaultExpr::Text("fr".into()))),
                ..Default::default()
            },
        }]
    );
}

#[test]
fn dropped_index_is_dropped() {
    let to = with_users(|mut t| {
        t.indexes.clear();
        t
    });
    assert_eq!(
        diff_lands(&base(), &to),
        vec![Op::DropIndex {
            table: name("users"),
            name: "ix_users_email".into(),
            concurrently: false,
        }]
    );
}

#[test]
fn changed_index_is_dropped_then_created() {
    let changed = Index::on_keys(
        "ix_users_email",
        vec![IndexKey::Expr("lower(email)".into())],
    )
    .unique()
    .filtered("email IS NOT NULL");
    let to = with_users(|t| t.index(changed.clone()));
    assert_eq!(
        diff_lands(&base(), &to),
        vec![
            Op::DropIndex {
                table: name("users"),
                name: "ix_users_email".into(),
                concurrently: false,
            },
            Op::CreateIndex {
                table: name("users"),
                index: changed,
                concurrently: false,
            },
        ]
    );
}

#[test]
fn new_check_constraint_is_added() {
    let to = with_users(|t| t.check("ck_users_email", "email <> ''"));
    assert_eq!(
        diff_lands(&base(), &to),
        vec![Op::AddConstraint {
            table: name("users"),
            constraint: Constraint {
                name: "ck_users_email".into(),
                kind: ConstraintKind::Check {
                    expr: "email <> ''".into(),
                    sqlite: None,
                },
            },
            not_valid: false,
        }]
    );
}

#[test]
fn table_moved_to_another_schema_is_set_table_schema_and_keeps_the_foreign_keys_to_it() {
    let from = built(&[
        Op::CreateTable(organizations()),
        Op::CreateTable(users()),
        Op::CreateTable(
            Table::new("users_simple")
                .column(Column::new("id", ColumnType::Integer).not_null())
                .primary_key("users_simple_pkey", &["id"]),
        ),
        Op::CreateTable(
            Table::new("user_sessions_simple")
                .column(Column::new("user_id", ColumnType::Integer))
                .foreign_key(
                    "fk_sessions_user",
                    &["user_id"],
                    "users_simple",
                    &["id"],
                    ReferentialAction::NoAction,
                ),
        ),
    ]);
    let mut to = from.clone();
    apply_all(
        &mut to,
        &[
            Op::CreateSchema {
                name: "legacy".into(),
            },
            Op::SetTableSchema {
                table: name("users_simple"),
                schema: Some("legacy".into()),
            },
            Op::SetTableSchema {
                table: name("user_sessions_simple"),
                schema: Some("legacy".into()),
            },
        ],
    )
    .expect("the move applies");
    assert_eq!(
        diff_lands(&from, &to),
        vec![
            Op::CreateSchema {
                name: "legacy".into()
            },
            Op::SetTableSchema {
                table: name("user_sessions_simple"),
                schema: Some("legacy".into()),
            },
            Op::SetTableSchema {
                table: name("users_simple"),
                schema: Some("legacy".into()),
            },
        ]
    );
    // And back: the schema goes once its tables have left it.
    assert_eq!(
        diff_lands(&to, &from).last(),
        Some(&Op::DropSchema {
            name: "legacy".into()
        })
    );
}

#[test]
fn table_moved_and_changed_is_dropped_and_created() {
    let from = base();
    let mut to = from.clone();
    apply_all(
        &mut to,
        &[
            Op::CreateSchema {
                name: "legacy".into(),
            },
            Op::DropConstraint {
                table: name("users"),
                name: "fk_users_organization".into(),
            },
            Op::SetTableSchema {
                table: name("users"),
                schema: Some("legacy".into()),
            },
            Op::DropColumn {
                table: name("legacy.users"),
                column: "locale".into(),
            },
        ],
    )
    .expect("the change applies");
    let ops = diff_lands(&from, &to);
    assert!(ops.contains(&Op::DropTable {
        table: name("users")
    }));
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::CreateTable(t) if t.name == name("legacy.users"))));
}

#[test]
fn dropped_table_that_is_referenced_loses_the_foreign_key_first() {
    let mut users = users();
    users.constraints.remove("fk_users_organization");
    let to = built(&[Op::CreateTable(users)]);
    assert_eq!(
        diff_lands(&base(), &to),
        vec![
            Op::DropConstraint {
                table: name("users"),
                name: "fk_users_organization".into(),
            },
            Op::DropTable {
                table: name("organizations")
            },
        ]
    );
}

#[test]
fn dropped_tables_go_referring_table_first_and_a_cycle_is_broken_by_one_foreign_key() {
    let a = Table::new("a")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("b_id", ColumnType::Integer))
        .primary_key("a_pkey", &["id"]);
    let b = Table::new("b")
        .column(Column::new("id", ColumnType::Integer).not_null())
        .column(Column::new("a_id", ColumnType::Integer))
        .primary_key("b_pkey", &["id"])
        .foreign_key(
            "fk_b_a",
            &["a_id"],
            "a",
            &["id"],
            ReferentialAction::NoAction,
        );
    let c = Table::new("c")
        .column(Column::new("b_id", ColumnType::Integer))
        .foreign_key(
            "fk_c_b",
            &["b_id"],
            "b",
            &["id"],
            ReferentialAction::NoAction,
        );
    let fk_a_b = Op::AddConstraint {
        table: name("a"),
        constraint: Constraint {
            name: "fk_a_b".into(),
            kind: ConstraintKind::ForeignKey(migrate_core::ForeignKey {
                columns: vec!["b_id".into()],
                ref_table: name("b"),
                ref_columns: vec!["id".into()],
                on_delete: ReferentialAction::SetNull,
                on_update: ReferentialAction::NoAction,
            }),
        },
        not_valid: false,
    };
    let from = built(&[
        Op::CreateTable(a),
        Op::CreateTable(b),
        Op::CreateTable(c),
        fk_a_b,
    ]);
    assert_eq!(
        diff_lands(&from, &Schema::new()),
        vec![
            // a and b refer to each other: the foreign key to the first of them goes first.
            Op::DropConstraint {
                table: name("b"),
                name: "fk_b_a".into(),
            },
            // c refers to b, and nothing to c.
            Op::DropTable { table: name("c") },
            Op::DropTable { table: name("a") },
            Op::DropTable { table: name("b") },
        ]
    );
    // Created back: the tables first, then the foreign keys between new tables.
    let ops = diff_lands(&Schema::new(), &from);
    let kinds: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            Op::CreateTable(_) => "create",
            Op::AddConstraint { .. } => "fk",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "create", "create", "fk", "fk", "fk"]);
}

#[test]
fn changed_primary_key_rebuilds_the_foreign_keys_that_rest_on_it() {
    let to = built(&[
        Op::CreateTable({
            let mut t = organizations();
            t.constraints.clear();
            t.primary_key("organizations_pk", &["id"])
        }),
        Op::CreateTable(users()),
    ]);
    let ops = diff_lands(&base(), &to);
    assert_eq!(
        ops.iter().map(op_label).collect::<Vec<_>>(),
        [
            "drop constraint users.fk_users_organization",
            "drop constraint organizations.organizations_pkey",
            "add constraint organizations.organizations_pk",
            "add constraint users.fk_users_organization",
        ]
    );
}

#[test]
fn new_table_referring_to_a_new_column_gets_its_foreign_key_after_the_column() {
    let to = built(&[
        Op::CreateTable(
            organizations()
                .unique("organizations_code_key", &["code"])
                .column(Column::new("code", ColumnType::Text)),
        ),
        Op::CreateTable(users()),
        Op::CreateTable(
            Table::new("invites")
                .column(Column::new("code", ColumnType::Text))
                .foreign_key(
                    "fk_invites_code",
                    &["code"],
                    "organizations",
                    &["code"],
                    ReferentialAction::Cascade,
                ),
        ),
    ]);
    let ops = diff_lands(&base(), &to);
    assert_eq!(
        ops.iter().map(op_label).collect::<Vec<_>>(),
        [
            "create table invites",
            "add column organizations.code",
            "add constraint organizations.organizations_code_key",
            "add constraint invites.fk_invites_code",
        ]
    );
}

fn touch(body: &str) -> Function {
    Function {
        name: name("touch_updated_at"),
        body: body.into(),
    }
}

fn touch_trigger() -> Trigger {
    Trigger {
        name: "trg_users_touch".into(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: name("touch_updated_at"),
    }
}

#[test]
fn changed_function_is_recreated_and_so_are_the_triggers_that_call_it() {
    let with = |body: &str| {
        built(&[
            Op::CreateFunction(touch(body)),
            Op::CreateTable(organizations()),
            Op::CreateTable(users().trigger(touch_trigger())),
        ])
    };
    let ops = diff_lands(
        &with("BEGIN RETURN NEW; END"),
        &with("BEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND"),
    );
    assert_eq!(
        ops.iter().map(op_label).collect::<Vec<_>>(),
        [
            "drop trigger users.trg_users_touch",
            "drop function touch_updated_at",
            "create function touch_updated_at",
            "create trigger users.trg_users_touch",
        ]
    );
}

#[test]
fn new_column_before_existing_ones_is_appended_and_reported_as_column_order() {
    // The database appends a column; the diff does not drop and re-add columns to reorder them.
    let mut to = base();
    let users = to.tables.get_mut(&name("users")).expect("users");
    users
        .columns
        .insert(1, Column::new("name", ColumnType::Text));
    let ops = diff(&base(), &to);
    assert_eq!(
        ops.iter().map(op_label).collect::<Vec<_>>(),
        ["add column users.name"]
    );
    let mut after = base();
    apply_all(&mut after, &ops).expect("applies");
    assert_eq!(
        differences(&to, &after)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "changed table users: column order id, name, organization_id, email, locale \
          -> id, organization_id, email, locale, name"
        ]
    );
    assert_eq!(diff(&after, &to), vec![]);
}

fn op_label(op: &Op) -> String {
    let t = |t: &TableName| t.to_string();
    match op {
        Op::CreateTable(table) => format!("create table {}", table.name),
        Op::DropTable { table } => format!("drop table {}", t(table)),
        Op::AddColumn { table, column } => format!("add column {}.{}", t(table), column.name),
        Op::DropColumn { table, column } => format!("drop column {}.{column}", t(table)),
        Op::AlterColumn { table, column, .. } => format!("alter column {}.{column}", t(table)),
        Op::AddConstraint {
            table, constraint, ..
        } => format!("add constraint {}.{}", t(table), constraint.name),
        Op::DropConstraint { table, name } => format!("drop constraint {}.{name}", t(table)),
        Op::CreateIndex { table, index, .. } => format!("create index {}.{}", t(table), index.name),
        Op::DropIndex { table, name, .. } => format!("drop index {}.{name}", t(table)),
        Op::CreateFunction(f) => format!("create function {}", f.name),
        Op::DropFunction { name } => format!("drop function {name}"),
        Op::CreateTrigger { table, trigger } => {
            format!("create trigger {}.{}", t(table), trigger.name)
        }
        Op::DropTrigger { table, name } => format!("drop trigger {}.{name}", t(table)),
        other => format!("{other:?}"),
    }
}

#[test]
fn drift_report_reads_one_line_per_object() {
    let expected = built(&[
        Op::CreateSchema {
            name: "legacy".into(),
        },
        Op::CreateFunction(touch("BEGIN RETURN NEW; END")),
        Op::CreateTable(organizations()),
        Op::CreateTable(users().trigger(touch_trigger())),
        Op::CreateTable(
            Table::new(TableName::qualified("legacy", "users_simple"))
                .column(Column::new("id", ColumnType::Integer).not_null()),
        ),
    ]);
    let actual = built(&[
        Op::CreateFunction(touch("BEGIN RETURN OLD; END")),
        Op::CreateTable(organizations().column(Column::new("plan", ColumnType::Text))),
        Op::CreateTable(
            Table::new("users")
                .column(Column::new("id", ColumnType::Uuid).not_null())
                .column(Column::new("organization_id", ColumnType::Uuid))
                .column(Column::new("email", ColumnType::Text))
                .column(
                    Column::new("locale", ColumnType::varchar(8))
                        .default(DefaultExpr::Sql("'en'::character varying".into())),
                )
                .primary_key("users_pkey", &["id"])
                .foreign_key(
                    "fk_users_organization",
                    &["organization_id"],
                    "organizations",
                    &["id"],
                    ReferentialAction::NoAction,
                )
                .index(Index::new("ix_users_email", &["email"]).unique())
                .index(Index::new("ix_x", &["id"])),
        ),
        Op::CreateTable(
            Table::new("users_simple").column(Column::new("id", ColumnType::Integer).not_null()),
        ),
    ]);
    let report = differences(&expected, &actual);
    assert!(report
        .iter()
        .any(|d| d.change == Change::Extra && d.object == ObjectKind::Index));
    let text: Vec<String> = report.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
}

// ---- Properties over random schemas ----------------------------------------------------------

/// One random step; it is turned into an op against the schema built so far, and skipped when
/// the fold refuses that op, so every schema is one the fold can build.
#[derive(Debug, Clone)]
enum Step {
    CreateTable {
        table: Pick,
        legacy: bool,
        columns: Vec<(Pick, u8, bool, u8)>,
        pk: bool,
        fk: Option<(Pick, u8)>,
        check: Option<u8>,
    },
    DropTable(Pick),
    AddColumn(Pick, (Pick, u8, bool, u8)),
    DropColumn(Pick, Pick),
    AlterColumn(Pick, Pick, (u8, bool, u8)),
    AddUnique(Pick, Pick),
    AddCheck(Pick, u8),
    AddForeignKey(Pick, Pick, Pick, u8),
    CreateIndex(Pick, u8, u8, Pick),
    DropIndex(Pick, Pick),
    DropConstraint(Pick, Pick),
    CreateSchema,
    DropSchema,
    Move(Pick),
    CreateFunction(u8, u8),
    /// `CREATE OR REPLACE FUNCTION`: its triggers are dropped and created around it.
    ReplaceFunction(u8, u8),
    DropFunction(u8),
    CreateTrigger(Pick, u8, u8, bool, u8),
    DropTrigger(Pick, Pick),
}

const TABLES: &[&str] = &["users", "orgs", "sessions", "tokens"];
const COLUMNS: &[&str] = &["email", "name", "age", "org_id", "created_at", "data"];
const CHECKS: &[&str] = &["id IS NOT NULL", "1 > 0", "length(id::text) = 36"];
const FUNCTIONS: &[&str] = &["touch_updated_at", "audit_row"];
const BODIES: &[&str] = &[
    "BEGIN RETURN NEW; END",
    "BEGIN\n  NEW.updated_at := now(); -- \"why\"\n  RETURN NEW;\nEND",
];

fn column_type(n: u8) -> ColumnType {
    match n % 8 {
        0 => ColumnType::Uuid,
        1 => ColumnType::varchar(255),
        2 => ColumnType::Text,
        3 => ColumnType::Integer,
        4 => ColumnType::BigInt,
        5 => ColumnType::Boolean,
        6 => ColumnType::TimestampTz,
        _ => ColumnType::Jsonb,
    }
}

fn default(n: u8) -> Option<DefaultExpr> {
    match n % 6 {
        0 | 1 => None,
        2 => Some(DefaultExpr::Now),
        3 => Some(DefaultExpr::Text("en".into())),
        4 => Some(DefaultExpr::Int(0)),
        _ => Some(DefaultExpr::Sql("gen_random_uuid()".into())),
    }
}

fn action(n: u8) -> ReferentialAction {
    [
        ReferentialAction::NoAction,
        ReferentialAction::Restrict,
        ReferentialAction::Cascade,
        ReferentialAction::SetNull,
        ReferentialAction::SetDefault,
    ][usize::from(n) % 5]
}

fn column(spec: &(Pick, u8, bool, u8)) -> Column {
    let (name, ty, nullable, d) = spec;
    Column {
        name: name.get(COLUMNS).to_string(),
        ty: column_type(*ty),
        nullable: *nullable,
        default: default(*d),
    }
}

fn fk_kind(columns: &[&str], target: &TableName, on_delete: u8) -> ConstraintKind {
    ConstraintKind::ForeignKey(migrate_core::ForeignKey {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        ref_table: target.clone(),
        ref_columns: vec!["id".into()],
        on_delete: action(on_delete),
        on_update: ReferentialAction::NoAction,
    })
}

fn pick<'s, T>(items: &'s [T], p: &Pick) -> Option<&'s T> {
    (!items.is_empty()).then(|| p.get(items))
}

/// The ops of one step: one, except for a replaced function.
fn step_ops(schema: &Schema, step: &Step) -> Vec<Op> {
    let Step::ReplaceFunction(n, body) = step else {
        return step_op(schema, step).into_iter().collect();
    };
    let name = TableName::new(FUNCTIONS[usize::from(*n) % FUNCTIONS.len()]);
    let callers: Vec<(TableName, Trigger)> = schema
        .tables
        .values()
        .flat_map(|t| t.triggers.values().map(|tr| (t.name.clone(), tr.clone())))
        .filter(|(_, tr)| tr.function == name)
        .collect();
    let mut ops: Vec<Op> = callers
        .iter()
        .map(|(table, tr)| Op::DropTrigger {
            table: table.clone(),
            name: tr.name.clone(),
        })
        .collect();
    ops.push(Op::DropFunction { name: name.clone() });
    ops.push(Op::CreateFunction(Function {
        name,
        body: BODIES[usize::from(*body) % BODIES.len()].into(),
    }));
    ops.extend(
        callers
            .into_iter()
            .map(|(table, trigger)| Op::CreateTrigger { table, trigger }),
    );
    ops
}

fn step_op(schema: &Schema, step: &Step) -> Option<Op> {
    let tables: Vec<&Table> = schema.tables.values().collect();
    let table = |p: &Pick| pick(&tables, p).copied();
    let legacy = schema.schemas.contains("legacy");
    let constraint = |t: &Table, name: String, kind| Op::AddConstraint {
        table: t.name.clone(),
        constraint: Constraint { name, kind },
        not_valid: false,
    };
    Some(match step {
        Step::CreateTable {
            table: p,
            legacy: in_legacy,
            columns,
            pk,
            fk,
            check,
        } => {
            let short = p.get(TABLES);
            let name = if *in_legacy && legacy {
                TableName::qualified("legacy", *short)
            } else {
                TableName::new(*short)
            };
            let mut t =
                Table::new(name.clone()).column(Column::new("id", ColumnType::Uuid).not_null());
            for spec in columns {
                let c = column(spec);
                if t.find_column(&c.name).is_none() {
                    t = t.column(c);
                }
            }
            if *pk {
                t = t.primary_key(format!("{short}_pkey"), &["id"]);
            }
            if let Some((target, on_delete)) = fk {
                if let Some(target) = table(target) {
                    t = t
                        .column(Column::new("ref_id", ColumnType::Uuid))
                        .constraint(
                            format!("fk_{short}_ref"),
                            fk_kind(&["ref_id"], &target.name, *on_delete),
                        );
                }
            }
            if let Some(n) = check {
                t = t.check(
                    format!("ck_{short}_{n}"),
                    CHECKS[usize::from(*n) % CHECKS.len()],
                );
            }
            Op::CreateTable(t)
        }
        Step::DropTable(p) => Op::DropTable {
            table: table(p)?.name.clone(),
        },
        Step::AddColumn(p, spec) => Op::AddColumn {
            table: table(p)?.name.clone(),
            column: column(spec),
        },
        Step::DropColumn(p, c) => {
            let t = table(p)?;
            Op::DropColumn {
                table: t.name.clone(),
                column: pick(&t.columns, c)?.name.clone(),
            }
        }
        Step::AlterColumn(p, c, (ty, nullable, d)) => {
            let t = table(p)?;
            let old = pick(&t.columns, c)?;
            let new = Column {
                name: old.name.clone(),
                ty: if ty % 2 == 0 {
                    old.ty.clone()
                } else {
                    column_type(*ty / 2)
                },
                nullable: *nullable,
                default: default(*d),
            };
            Op::AlterColumn {
                table: t.name.clone(),
                column: old.name.clone(),
                change: ColumnChange {
                    ty: (new.ty != old.ty).then(|| (new.ty.clone(), Some("x".into()))),
                    nullable: Some(new.nullable),
                    default: Some(new.default),
                },
            }
        }
        Step::AddUnique(p, c) => {
            let t = table(p)?;
            let c = &pick(&t.columns, c)?.name;
            constraint(
                t,
                format!("uq_{}_{c}", t.name.name),
                ConstraintKind::Unique {
                    columns: vec![c.clone()],
                },
            )
        }
        Step::AddCheck(p, n) => {
            let t = table(p)?;
            constraint(
                t,
                format!("ck_{}_{n}", t.name.name),
                ConstraintKind::Check {
                    expr: CHECKS[usize::from(*n) % CHECKS.len()].into(),
                    sqlite: None,
                },
            )
        }
        Step::AddForeignKey(p, target, c, on_delete) => {
            let t = table(p)?;
            let target = table(target)?;
            let c = &pick(&t.columns, c)?.name;
            constraint(
                t,
                format!("fk_{}_{c}", t.name.name),
                fk_kind(&[c], &target.name, *on_delete),
            )
        }
        Step::CreateIndex(p, n, kind, c) => {
            let t = table(p)?;
            let c = &pick(&t.columns, c)?.name;
            // A shared name now and then, so that an index can move from table to table.
            let name = if n % 4 == 0 {
                "ix_shared".to_owned()
            } else {
                format!("ix_{}_{c}", t.name.name)
            };
            let index = match kind % 4 {
                0 => Index::new(name, &[c]),
                1 => Index::new(name, &[c]).unique(),
                2 => Index::new(name, &[c, "id"]).filtered(format!("{c} IS NOT NULL")),
                _ => Index::on_keys(
                    name,
                    vec![
                        IndexKey::Expr(format!("lower({c}::text)")),
                        IndexKey::Column("id".into()),
                    ],
                )
                .unique(),
            };
            Op::CreateIndex {
                table: t.name.clone(),
                index,
                concurrently: false,
            }
        }
        Step::DropIndex(p, i) => {
            let t = table(p)?;
            let names: Vec<&String> = t.indexes.keys().collect();
            Op::DropIndex {
                table: t.name.clone(),
                name: pick(&names, i)?.to_string(),
                concurrently: false,
            }
        }
        Step::DropConstraint(p, i) => {
            let t = table(p)?;
            let names: Vec<&String> = t.constraints.keys().collect();
            Op::DropConstraint {
                table: t.name.clone(),
                name: pick(&names, i)?.to_string(),
            }
        }
        Step::CreateSchema => Op::CreateSchema {
            name: "legacy".into(),
        },
        Step::DropSchema => Op::DropSchema {
            name: "legacy".into(),
        },
        Step::Move(p) => {
            let t = table(p)?;
            Op::SetTableSchema {
                table: t.name.clone(),
                schema: match t.name.schema {
                    Some(_) => None,
                    None => Some("legacy".into()),
                },
            }
        }
        Step::CreateFunction(n, body) => Op::CreateFunction(Function {
            name: TableName::new(FUNCTIONS[usize::from(*n) % FUNCTIONS.len()]),
            body: BODIES[usize::from(*body) % BODIES.len()].into(),
        }),
        Step::ReplaceFunction(..) => return None,
        Step::DropFunction(n) => Op::DropFunction {
            name: TableName::new(FUNCTIONS[usize::from(*n) % FUNCTIONS.len()]),
        },
        Step::CreateTrigger(p, n, f, before, events) => {
            let t = table(p)?;
            let all = [
                TriggerEvent::Insert,
                TriggerEvent::Update,
                TriggerEvent::Delete,
            ];
            let mut chosen: Vec<TriggerEvent> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| events & (1 << i) != 0)
                .map(|(_, e)| *e)
                .collect();
            if chosen.is_empty() {
                chosen.push(TriggerEvent::Insert);
            }
            Op::CreateTrigger {
                table: t.name.clone(),
                trigger: Trigger {
                    name: format!("trg_{}", n % 3),
                    timing: if *before {
                        TriggerTiming::Before
                    } else {
                        TriggerTiming::After
                    },
                    events: chosen,
                    function: TableName::new(FUNCTIONS[usize::from(*f) % FUNCTIONS.len()]),
                },
            }
        }
        Step::DropTrigger(p, i) => {
            let t = table(p)?;
            let names: Vec<&String> = t.triggers.keys().collect();
            Op::DropTrigger {
                table: t.name.clone(),
                name: pick(&names, i)?.to_string(),
            }
        }
    })
}

fn column_spec() -> impl Strategy<Value = (Pick, u8, bool, u8)> {
    (any::<Pick>(), any::<u8>(), any::<bool>(), any::<u8>())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (
            any::<Pick>(),
            any::<bool>(),
            prop::collection::vec(column_spec(), 0..4),
            prop::bool::weighted(0.8),
            prop::option::of((any::<Pick>(), any::<u8>())),
            prop::option::of(any::<u8>()),
        )
            .prop_map(|(table, legacy, columns, pk, fk, check)| Step::CreateTable {
                table,
                legacy,
                columns,
                pk,
                fk,
                check,
            }),
        1 => any::<Pick>().prop_map(Step::DropTable),
        2 => (any::<Pick>(), column_spec()).prop_map(|(t, c)| Step::AddColumn(t, c)),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(t, c)| Step::DropColumn(t, c)),
        2 => (any::<Pick>(), any::<Pick>(), (any::<u8>(), any::<bool>(), any::<u8>()))
            .prop_map(|(t, c, s)| Step::AlterColumn(t, c, s)),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(t, c)| Step::AddUnique(t, c)),
        1 => (any::<Pick>(), any::<u8>()).prop_map(|(t, n)| Step::AddCheck(t, n)),
        2 => (any::<Pick>(), any::<Pick>(), any::<Pick>(), any::<u8>())
            .prop_map(|(t, r, c, a)| Step::AddForeignKey(t, r, c, a)),
        2 => (any::<Pick>(), any::<u8>(), any::<u8>(), any::<Pick>())
            .prop_map(|(t, n, k, c)| Step::CreateIndex(t, n, k, c)),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(t, i)| Step::DropIndex(t, i)),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(t, i)| Step::DropConstraint(t, i)),
        1 => Just(Step::CreateSchema),
        1 => Just(Step::DropSchema),
        2 => any::<Pick>().prop_map(Step::Move),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(n, b)| Step::CreateFunction(n, b)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(n, b)| Step::ReplaceFunction(n, b)),
        1 => any::<u8>().prop_map(Step::DropFunction),
        3 => (any::<Pick>(), any::<u8>(), any::<u8>(), any::<bool>(), any::<u8>())
            .prop_map(|(t, n, f, b, e)| Step::CreateTrigger(t, n, f, b, e)),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(t, i)| Step::DropTrigger(t, i)),
    ]
}

fn grow(mut schema: Schema, steps: &[Step]) -> Schema {
    for step in steps {
        // A step the fold refuses leaves the schema as it was: it is skipped.
        let mut next = schema.clone();
        if apply_all(&mut next, &step_ops(&schema, step)).is_ok() {
            schema = next;
        }
    }
    schema
}

/// Two schemas with a common history, so that they share tables that then differ.
fn schema_pair() -> impl Strategy<Value = (Schema, Schema)> {
    let steps = |n| prop::collection::vec(step(), 0..n);
    (any::<bool>(), steps(16), steps(8), steps(8)).prop_map(|(seeded, common, a, b)| {
        // Half the time the legacy schema and a function are there from the start, so that
        // moves and triggers are frequent.
        let seed = [Step::CreateSchema, Step::CreateFunction(0, 0)];
        let start = grow(Schema::new(), if seeded { &seed[..] } else { &[] });
        let base = grow(start, &common);
        (grow(base.clone(), &a), grow(base, &b))
    })
}

/// `to` with the column order the database reaches from `from`: surviving columns in their old
/// order, new ones appended (see the module documentation of `diff`).
fn reachable(from: &Schema, to: &Schema) -> Schema {
    let mut out = to.clone();
    for (name, table) in out.tables.iter_mut() {
        let Some(old) = from.tables.get(name) else {
            continue;
        };
        let mut columns: Vec<Column> = old
            .columns
            .iter()
            .filter_map(|c| table.find_column(&c.name).cloned())
            .collect();
        columns.extend(
            table
                .columns
                .iter()
                .filter(|c| old.find_column(&c.name).is_none())
                .cloned(),
        );
        table.columns = columns;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn diff_folds_one_schema_into_the_other((a, b) in schema_pair()) {
        let ops = diff(&a, &b);
        let mut after = a.clone();
        if let Err(e) = apply_strictly(&mut after, &ops) {
            return Err(TestCaseError::fail(format!("{e}\n{ops:#?}")));
        }
        prop_assert_eq!(&after, &reachable(&a, &b), "ops: {:#?}", ops);
        // What is left is column order only, which the diff then has nothing to say about.
        prop_assert!(differences(&b, &after).iter().all(|d| d.object == ObjectKind::Table));
        prop_assert_eq!(diff(&after, &b), vec![]);
    }

    #[test]
    fn differences_are_empty_exactly_when_the_schemas_are_equal((a, b) in schema_pair()) {
        prop_assert_eq!(differences(&a, &b).is_empty(), a == b);
        prop_assert_eq!(differences(&a, &a), vec![]);
        prop_assert_eq!(diff(&a, &a), vec![]);
        let d = differences(&a, &b);
        let mut sorted = d.clone();
        sorted.sort_by(|x, y| (&x.name, x.object).cmp(&(&y.name, y.object)));
        prop_assert_eq!(
            d.iter().map(|x| (&x.name, x.object)).collect::<Vec<_>>(),
            sorted.iter().map(|x| (&x.name, x.object)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn tables_moved_between_schemas_are_moved_not_recreated(
        (a, _) in schema_pair(),
        moved in prop::collection::vec(any::<Pick>(), 1..4),
        drop_legacy in any::<bool>(),
    ) {
        let mut b = a.clone();
        let _ = Op::CreateSchema { name: "legacy".into() }.apply(&mut b);
        let mut steps: Vec<Step> = moved.into_iter().map(Step::Move).collect();
        if drop_legacy {
            // Taken when every table has left it: then the moves must come before the drop.
            steps.push(Step::DropSchema);
        }
        let b = grow(b, &steps);
        let ops = diff(&a, &b);
        let mut after = a.clone();
        prop_assert_eq!(apply_strictly(&mut after, &ops), Ok(()), "ops: {:#?}", ops);
        prop_assert_eq!(&after, &b);
        prop_assert!(
            ops.iter().all(|op| matches!(
                op,
                Op::SetTableSchema { .. } | Op::CreateSchema { .. } | Op::DropSchema { .. }
            )),
            "ops: {:#?}",
            ops
        );
    }

    #[test]
    fn diff_from_empty_builds_and_diff_to_empty_drops_everything(
        (a, _) in schema_pair()
    ) {
        let mut built = Schema::new();
        prop_assert_eq!(apply_strictly(&mut built, &diff(&Schema::new(), &a)), Ok(()));
        prop_assert_eq!(&built, &a);
        let mut emptied = a.clone();
        prop_assert_eq!(apply_strictly(&mut emptied, &diff(&a, &Schema::new())), Ok(()));
        prop_assert_eq!(emptied, Schema::new());
    }
}

// ---- Gaps in the fold found while writing the diff ------------------------------------------

/// PostgreSQL refuses `DROP SCHEMA legacy` while a function lives in it ("cannot drop schema
/// legacy because other objects depend on it"); the fold only looks for tables, so it builds a
/// schema with a function in a schema that does not exist, which no op sequence can then
/// recreate.
#[test]
fn drop_schema_holding_a_function_is_refused() {
    let mut schema = built(&[
        Op::CreateSchema {
            name: "legacy".into(),
        },
        Op::CreateFunction(Function {
            name: TableName::qualified("legacy", "f"),
            body: "BEGIN RETURN NEW; END".into(),
        }),
    ]);
    let refused = Op::DropSchema {
        name: "legacy".into(),
    }
    .apply(&mut schema);
    assert_eq!(refused, Err(ModelError::SchemaNotEmpty("legacy".into())));
}

/// PostgreSQL refuses to drop a primary key (or unique constraint or index) that a foreign key
/// of another table rests on ("cannot drop constraint organizations_pkey on table
/// organizations because other objects depend on it"); the fold lets it go.
#[test]
fn drop_primary_key_a_foreign_key_rests_on_is_refused() {
    let mut schema = base();
    let refused = Op::DropConstraint {
        table: name("organizations"),
        name: "organizations_pkey".into(),
    }
    .apply(&mut schema);
    assert!(
        refused.is_err(),
        "the fold dropped organizations_pkey under fk_users_organization"
    );
}

/// PostgreSQL refuses a foreign key whose referenced columns carry no primary key or unique
/// constraint or index ("there is no unique constraint matching given keys for referenced
/// table"); the fold accepts it.
#[test]
fn foreign_key_to_columns_without_a_key_is_refused() {
    let mut schema = base();
    let refused = Op::AddConstraint {
        table: name("users"),
        constraint: Constraint {
            name: "fk_users_slug".into(),
            kind: ConstraintKind::ForeignKey(migrate_core::ForeignKey {
                columns: vec!["email".into()],
                ref_table: name("organizations"),
                ref_columns: vec!["slug".into()],
                on_delete: ReferentialAction::NoAction,
                on_update: ReferentialAction::NoAction,
            }),
        },
        not_valid: false,
    }
    .apply(&mut schema);
    assert!(refused.is_err(), "organizations.slug has no unique key");
}

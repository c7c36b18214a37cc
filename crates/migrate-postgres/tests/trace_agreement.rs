//! Lint's static lock profile ([`migrate_core::lock::profile`]) agrees with what PostgreSQL
//! does, measured by [`migrate_postgres::trace`], for every op kind the model has.
//!
//! Each case builds a small schema with rows on a fresh database, renders one op, traces its
//! statements (those that may run in a transaction in one, rolled back; `CONCURRENTLY` ones
//! outside, watched from a second session), and compares, table by table:
//!
//! - the strongest mode measured on a table equals the strongest mode the profile gives it;
//! - a table the profile does not name was at most read (ACCESS SHARE or ROW SHARE: nothing
//!   waits for those but `ACCESS EXCLUSIVE`);
//! - a table got a new relfilenode exactly when the profile says it is rewritten;
//! - a statement ran outside a transaction block exactly when the profile has such a step.
//!
//! Raw SQL (`Op::Sql`) is the one kind left out: its profile is "unknown" by definition, which
//! is why lint flags it.

use migrate_core::lock::{profile, LockMode};
use migrate_core::render::render_ops;
use migrate_core::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, ForeignKey, Function, Index,
    ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use migrate_core::{Backfill, Batching, ColumnChange, Dialect, Direction, Op};
use migrate_postgres::trace::{trace_autocommit, trace_transaction, StatementTrace};
use migrate_testkit::TestDb;
use std::collections::{BTreeMap, BTreeSet};

/// `orgs` (1 row), `users` (200 rows, a foreign key to orgs, an index on email, a unique index
/// on (email, id), a NOT VALID check and foreign key, a validated NOT NULL check on status),
/// `notes` (a foreign key to users), a trigger function.
fn base() -> Vec<Op> {
    vec![
        Op::CreateFunction(Function {
            name: TableName::new("touch"),
            body: "BEGIN\n  RETURN NEW;\nEND".into(),
        }),
        Op::CreateTable(
            Table::new("orgs")
                .column(Column::new("id", ColumnType::Integer).not_null())
                .primary_key("orgs_pkey", &["id"]),
        ),
        Op::CreateTable(
            Table::new("users")
                .column(Column::new("id", ColumnType::Integer).not_null())
                .column(Column::new("email", ColumnType::varchar(255)))
                .column(Column::new("status", ColumnType::Text))
                .column(Column::new("org_id", ColumnType::Integer))
                .column(Column::new("other_org", ColumnType::Integer))
                .column(Column::new("n", ColumnType::Integer))
                .column(Column::new("note", ColumnType::Text))
                .column(Column::new("m", ColumnType::Integer).not_null())
                .primary_key("users_pkey", &["id"])
                .foreign_key(
                    "fk_users_org",
                    &["org_id"],
                    "orgs",
                    &["id"],
                    ReferentialAction::NoAction,
                )
                .check("ck_status_not_null", "status IS NOT NULL")
                .index(Index::new("ix_users_email", &["email"]))
                .index(Index::new("ix_users_m", &["m"]))
                .index(Index::new("uq_users_email_id", &["email", "id"]).unique()),
        ),
        Op::AddConstraint {
            table: "users".into(),
            constraint: Constraint {
                name: "ck_n_positive".into(),
                kind: ConstraintKind::Check {
                    expr: "n > 0".into(),
                    sqlite: None,
                },
            },
            not_valid: true,
        },
        Op::AddConstraint {
            table: "users".into(),
            constraint: fk("fk_users_other_org", "other_org", "orgs"),
            not_valid: true,
        },
        Op::CreateTable(
            Table::new("notes")
                .column(Column::new("id", ColumnType::Integer).not_null())
                .column(Column::new("user_id", ColumnType::Integer))
                .primary_key("notes_pkey", &["id"])
                .foreign_key(
                    "fk_notes_user",
                    &["user_id"],
                    "users",
                    &["id"],
                    ReferentialAction::Cascade,
                ),
        ),
    ]
}

const ROWS: &str = "INSERT INTO orgs VALUES (1); \
    INSERT INTO users (id, email, status, org_id, other_org, n, note, m) \
      SELECT g, 'u' || g || '@example.com', 'active', 1, 1, g, 'x', g \
      FROM generate_series(1, 200) g; \
    INSERT INTO notes SELECT g, g FROM generate_series(1, 50) g; \
    ANALYZE";

fn fk(name: &str, column: &str, to: &str) -> Constraint {
    Constraint {
        name: name.into(),
        kind: ConstraintKind::ForeignKey(ForeignKey {
            columns: vec![column.into()],
            ref_table: to.into(),
            ref_columns: vec!["id".into()],
            on_delete: ReferentialAction::NoAction,
            on_update: ReferentialAction::NoAction,
        }),
    }
}

fn users() -> TableName {
    TableName::new("users")
}

fn change(ty: Option<ColumnType>, nullable: Option<bool>) -> ColumnChange {
    ColumnChange {
        ty: ty.map(|t| (t, None)),
        nullable,
        default: None,
    }
}

/// One case per op kind (several for the kinds whose locks depend on their arguments).
fn cases() -> Vec<(&'static str, Op)> {
    let add = |name: &str, column: Column| Op::AddColumn {
        table: users(),
        column: Column {
            name: name.into(),
            ..column
        },
    };
    vec![
        ("create schema", Op::CreateSchema { name: "s2".into() }),
        (
            "create table with a foreign key",
            Op::CreateTable(
                Table::new("t2")
                    .column(Column::new("id", ColumnType::Integer).not_null())
                    .column(Column::new("user_id", ColumnType::Integer))
                    .primary_key("t2_pkey", &["id"])
                    .foreign_key(
                        "fk_t2_user",
                        &["user_id"],
                        "users",
                        &["id"],
                        ReferentialAction::NoAction,
                    ),
            ),
        ),
        (
            "drop table with a foreign key",
            Op::DropTable {
                table: "notes".into(),
            },
        ),
        (
            "rename table",
            Op::RenameTable {
                table: "notes".into(),
                to: "remarks".into(),
            },
        ),
        (
            "add nullable column",
            add("c", Column::new("c", ColumnType::Integer)),
        ),
        (
            "add column with a constant default",
            add(
                "c",
                Column::new("c", ColumnType::Integer)
                    .not_null()
                    .default(DefaultExpr::Int(7)),
            ),
        ),
        (
            "add column with a volatile default",
            add(
                "c",
                Column::new("c", ColumnType::Uuid).default(DefaultExpr::RandomUuid),
            ),
        ),
        (
            "drop column",
            Op::DropColumn {
                table: users(),
                column: "note".into(),
            },
        ),
        (
            "rename column",
            Op::RenameColumn {
                table: users(),
                from: "note".into(),
                to: "remark".into(),
            },
        ),
        (
            "type change that rewrites",
            Op::AlterColumn {
                table: users(),
                column: "n".into(),
                change: change(Some(ColumnType::BigInt), None),
            },
        ),
        (
            "type change in place",
            Op::AlterColumn {
                table: users(),
                column: "email".into(),
                change: change(Some(ColumnType::Text), None),
            },
        ),
        (
            "set not null with a scan",
            Op::AlterColumn {
                table: users(),
                column: "note".into(),
                change: change(None, Some(false)),
            },
        ),
        (
            "set not null proven by a check",
            Op::AlterColumn {
                table: users(),
                column: "status".into(),
                change: change(None, Some(false)),
            },
        ),
        (
            "create index",
            Op::CreateIndex {
                table: users(),
                index: Index::new("ix_users_n", &["n"]),
                concurrently: false,
            },
        ),
        (
            "create index concurrently",
            Op::CreateIndex {
                table: users(),
                index: Index::new("ix_users_n", &["n"]),
                concurrently: true,
            },
        ),
        (
            "drop index",
            Op::DropIndex {
                table: users(),
                name: "ix_users_email".into(),
                concurrently: false,
            },
        ),
        (
            "drop index concurrently",
            Op::DropIndex {
                table: users(),
                name: "ix_users_email".into(),
                concurrently: true,
            },
        ),
        (
            "add foreign key",
            Op::AddConstraint {
                table: "notes".into(),
                constraint: fk("fk_notes_user2", "user_id", "users"),
                not_valid: false,
            },
        ),
        (
            "add foreign key not valid",
            Op::AddConstraint {
                table: "notes".into(),
                constraint: fk("fk_notes_user2", "user_id", "users"),
                not_valid: true,
            },
        ),
        (
            "add check",
            Op::AddConstraint {
                table: users(),
                constraint: Constraint {
                    name: "ck_id".into(),
                    kind: ConstraintKind::Check {
                        expr: "id > 0".into(),
                        sqlite: None,
                    },
                },
                not_valid: false,
            },
        ),
        (
            "add check not valid",
            Op::AddConstraint {
                table: users(),
                constraint: Constraint {
                    name: "ck_id".into(),
                    kind: ConstraintKind::Check {
                        expr: "id > 0".into(),
                        sqlite: None,
                    },
                },
                not_valid: true,
            },
        ),
        (
            "add unique constraint",
            Op::AddConstraint {
                table: users(),
                constraint: Constraint {
                    name: "uq_users_id_n".into(),
                    kind: ConstraintKind::Unique {
                        columns: vec!["id".into(), "n".into()],
                    },
                },
                not_valid: false,
            },
        ),
        (
            "add unique constraint using an index",
            Op::AddConstraintUsingIndex {
                table: users(),
                name: "uq_users_email_id".into(),
                index: "uq_users_email_id".into(),
                primary_key: false,
            },
        ),
        (
            "validate check",
            Op::ValidateConstraint {
                table: users(),
                name: "ck_n_positive".into(),
            },
        ),
        (
            "validate foreign key",
            Op::ValidateConstraint {
                table: users(),
                name: "fk_users_other_org".into(),
            },
        ),
        (
            "drop check",
            Op::DropConstraint {
                table: users(),
                name: "ck_status_not_null".into(),
            },
        ),
        (
            "drop foreign key",
            Op::DropConstraint {
                table: users(),
                name: "fk_users_org".into(),
            },
        ),
        (
            "create function",
            Op::CreateFunction(Function {
                name: TableName::new("touch2"),
                body: "BEGIN\n  RETURN NEW;\nEND".into(),
            }),
        ),
        (
            "drop function",
            Op::DropFunction {
                name: TableName::new("touch"),
            },
        ),
        (
            "create trigger",
            Op::CreateTrigger {
                table: users(),
                trigger: Trigger {
                    name: "trg_users_touch".into(),
                    timing: TriggerTiming::Before,
                    events: vec![TriggerEvent::Update],
                    function: TableName::new("touch"),
                },
            },
        ),
        (
            "backfill",
            Op::Backfill(Backfill::new("users", "note", "'y'").batching(Batching {
                rows: 50,
                rows_per_second: None,
            })),
        ),
        (
            "online type change",
            Op::AlterColumnTypeOnline {
                table: users(),
                column: "m".into(),
                ty: ColumnType::BigInt,
                using: None,
                batching: Batching {
                    rows: 50,
                    rows_per_second: None,
                },
            },
        ),
    ]
}

/// Cases that need an earlier op: (name, setup ops, op).
fn cases_after_setup() -> Vec<(&'static str, Vec<Op>, Op)> {
    let trigger = Trigger {
        name: "trg_users_touch".into(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: TableName::new("touch"),
    };
    vec![
        (
            "drop trigger",
            vec![Op::CreateTrigger {
                table: users(),
                trigger,
            }],
            Op::DropTrigger {
                table: users(),
                name: "trg_users_touch".into(),
            },
        ),
        (
            "drop schema",
            vec![Op::CreateSchema { name: "s2".into() }],
            Op::DropSchema { name: "s2".into() },
        ),
        (
            "set table schema",
            vec![Op::CreateSchema { name: "s2".into() }],
            Op::SetTableSchema {
                table: "notes".into(),
                schema: Some("s2".into()),
            },
        ),
    ]
}

/// Runs statements as the engine would: consecutive transactional ones in one transaction
/// (rolled back, so a later group sees... nothing; hence committed), others one by one.
fn trace_all(db: &TestDb, statements: &[migrate_core::Statement]) -> Vec<StatementTrace> {
    let mut worker = db.client();
    let mut monitor = db.client();
    let mut out = Vec::new();
    let mut group: Vec<String> = Vec::new();
    for s in statements {
        if s.transactional {
            group.push(s.sql.clone());
            continue;
        }
        if !group.is_empty() {
            out.extend(trace_transaction(&mut worker, &group, &[], true).expect("traced"));
            group.clear();
        }
        out.push(trace_autocommit(&mut worker, &mut monitor, &s.sql).expect("traced"));
    }
    if !group.is_empty() {
        out.extend(trace_transaction(&mut worker, &group, &[], true).expect("traced"));
    }
    out
}

fn setup(db: &TestDb, ops: &[Op]) -> Schema {
    let mut schema = Schema::new();
    let statements =
        render_ops("setup", Direction::Up, ops, &mut schema, Dialect::Postgres).expect("renders");
    let mut client = db.client();
    for s in statements {
        client.batch_execute(&s.sql).expect("the setup runs");
    }
    client.batch_execute(ROWS).expect("rows");
    schema
}

/// `public.users` as the model names it.
fn model_name(relation: &migrate_postgres::trace::Relation) -> TableName {
    if relation.schema == "public" {
        TableName::new(relation.name.clone())
    } else {
        TableName::qualified(relation.schema.clone(), relation.name.clone())
    }
}

fn compare(name: &str, before: &Schema, op: &Op, traced: &[StatementTrace]) -> Vec<String> {
    let steps = profile(op, before, 15);
    let mut expected: BTreeMap<TableName, LockMode> = BTreeMap::new();
    let mut rewrites: BTreeSet<TableName> = BTreeSet::new();
    for step in &steps {
        for (table, mode) in &step.locks {
            let e = expected.entry(table.clone()).or_insert(*mode);
            *e = (*e).max(*mode);
        }
        rewrites.extend(step.rewrites.iter().cloned());
    }
    // A renamed or moved table is measured under its old identity (its oid's name before).
    let mut measured: BTreeMap<TableName, LockMode> = BTreeMap::new();
    let mut rewritten: BTreeSet<TableName> = BTreeSet::new();
    for t in traced {
        for l in t.locks.iter().filter(|l| l.relation.is_table()) {
            let e = measured.entry(model_name(&l.relation)).or_insert(l.mode);
            *e = (*e).max(l.mode);
        }
        rewritten.extend(t.rewritten.iter().filter(|r| r.is_table()).map(model_name));
    }
    let mut problems = Vec::new();
    for (table, mode) in &expected {
        match measured.get(table) {
            Some(m) if m == mode => {}
            other => problems.push(format!(
                "{name}: {table}: profile {mode}, measured {}",
                other.map_or("nothing".to_owned(), ToString::to_string)
            )),
        }
    }
    for (table, mode) in &measured {
        if !expected.contains_key(table) && *mode > LockMode::RowShare {
            problems.push(format!(
                "{name}: {table}: measured {mode}, not in the profile"
            ));
        }
    }
    // What must run outside a transaction block, the profile knows too. Except, today, for the
    // online type change: the profile describes its phases (index builds `CONCURRENTLY`), while
    // `render` still gives their one-transaction fallback, which is what runs until the engine
    // executes phases (`migrate_core::phase`); its locks agree either way (the swap's ACCESS
    // EXCLUSIVE is the strongest in both).
    let outside =
        steps.iter().any(|p| p.autocommit) && !matches!(op, Op::AlterColumnTypeOnline { .. });
    let ran_outside = traced.iter().any(|t| !t.transactional);
    if outside != ran_outside {
        problems.push(format!(
            "{name}: outside a transaction: profile {outside}, rendered {ran_outside}"
        ));
    }
    if rewrites != rewritten {
        problems.push(format!(
            "{name}: rewrites: profile {rewrites:?}, measured {rewritten:?}"
        ));
    }
    problems
}

#[test]
fn lint_and_trace_agree_on_every_op_kind() {
    let mut all: Vec<(&str, Vec<Op>, Op)> = cases()
        .into_iter()
        .map(|(name, op)| (name, Vec::new(), op))
        .collect();
    all.extend(cases_after_setup());
    let mut problems = Vec::new();
    let mut kinds = std::collections::HashSet::new();
    for (name, extra, op) in &all {
        let db = TestDb::new();
        let mut ops = base();
        ops.extend(extra.iter().cloned());
        let before = setup(&db, &ops);
        let mut schema = before.clone();
        let statements = render_ops(
            "case",
            Direction::Up,
            std::slice::from_ref(op),
            &mut schema,
            Dialect::Postgres,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let traced = trace_all(&db, &statements);
        problems.extend(compare(name, &before, op, &traced));
        kinds.insert(std::mem::discriminant(op));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        kinds.len(),
        22,
        "a case per op kind (the 23 of today but raw SQL)"
    );
}

//! The safe forms: their model (`apply`), their phases and SQL on both databases, their lock
//! profiles, and lint's judgement of revisions with their allowances.

#![allow(missing_docs)]

use migrate_core::lint::{self, LintContext};
use migrate_core::lock::{profile, LockMode, RowWrites};
use migrate_core::phase::{flatten, Phase};
use migrate_core::render::{phases, render};
use migrate_core::*;

fn users() -> Table {
    Table::new("users")
        .column(Column::new("id", ColumnType::Uuid).not_null())
        .column(Column::new("email", ColumnType::varchar(255)).not_null())
        .column(
            Column::new("created_at", ColumnType::Timestamp)
                .not_null()
                .default(DefaultExpr::Now),
        )
        .column(Column::new("settings", ColumnType::Json))
        .primary_key("users_pkey", &["id"])
        .index(Index::new("ix_users_created_at", &["created_at"]))
}

fn schema() -> Schema {
    let mut schema = Schema::new();
    Op::CreateTable(users())
        .apply(&mut schema)
        .expect("the table applies");
    schema
}

fn online(column: &str, ty: ColumnType, using: &str) -> Op {
    Op::AlterColumnTypeOnline {
        table: "users".into(),
        column: column.to_owned(),
        ty,
        using: Some(using.to_owned()),
        batching: Batching::default(),
    }
}

fn created_at_to_timestamptz() -> Op {
    online(
        "created_at",
        ColumnType::TimestampTz,
        "created_at AT TIME ZONE 'UTC'",
    )
}

/// Phases as a reviewer reads them.
fn show(phases: &[Phase]) -> String {
    let mut out = String::new();
    for (i, phase) in phases.iter().enumerate() {
        let (kind, statements): (String, Vec<String>) = match phase {
            Phase::Transaction(s) => (
                "transaction".into(),
                s.iter().map(|s| s.sql.clone()).collect(),
            ),
            Phase::OwnTransaction(s) => (
                "own transaction".into(),
                s.iter().map(|s| s.sql.clone()).collect(),
            ),
            Phase::Autocommit {
                statement,
                cleanup,
                in_transaction,
            } => (
                format!(
                    "autocommit (cleanup: {}; in one transaction: {})",
                    cleanup
                        .iter()
                        .map(|s| s.sql.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    in_transaction
                        .as_ref()
                        .map_or("the same", |s| s.sql.as_str())
                ),
                vec![statement.sql.clone()],
            ),
            Phase::Batches(job) => (
                format!(
                    "batches of {} rows over {}.{} (rate {:?}; in one transaction: {})",
                    job.rows, job.table, job.key, job.rows_per_second, job.whole.sql
                ),
                vec![job.batch.sql.clone()],
            ),
        };
        out.push_str(&format!("-- phase {}: {kind}\n", i + 1));
        for s in statements {
            out.push_str(&s);
            out.push_str(";\n");
        }
    }
    out
}

fn sql(statements: &[Statement]) -> String {
    statements
        .iter()
        .map(|s| format!("{};", s.sql))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn online_type_change_moves_the_column_last_with_its_index_nullability_and_default() {
    let mut after = schema();
    created_at_to_timestamptz()
        .apply(&mut after)
        .expect("applies");
    let t = after.table(&"users".into()).expect("users");
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email", "settings", "created_at"]);
    let moved = t.find_column("created_at").expect("column");
    assert_eq!(moved.ty, ColumnType::TimestampTz);
    assert!(!moved.nullable);
    assert_eq!(moved.default, Some(DefaultExpr::Now));
    assert!(t.indexes.contains_key("ix_users_created_at"));
}

#[test]
fn online_type_change_refuses_what_it_cannot_carry_over() {
    let mut with_check = schema();
    Op::AddConstraint {
        table: "users".into(),
        constraint: Constraint {
            name: "users_email_check".into(),
            kind: ConstraintKind::Check {
                expr: "email <> ''".into(),
                sqlite: None,
            },
        },
        not_valid: false,
    }
    .apply(&mut with_check)
    .expect("applies");
    let refused = online("email", ColumnType::Text, "email::text").apply(&mut with_check);
    assert!(
        matches!(refused, Err(ModelError::CannotChangeOnline { ref why, .. }) if why.contains("users_email_check")),
        "{refused:?}"
    );
    let key = online("id", ColumnType::Text, "id::text").apply(&mut schema());
    assert!(
        matches!(key, Err(ModelError::CannotChangeOnline { .. })),
        "{key:?}"
    );
    let mut keyless = Schema::new();
    Op::CreateTable(Table::new("t").column(Column::new("a", ColumnType::Json)))
        .apply(&mut keyless)
        .expect("applies");
    let op = Op::AlterColumnTypeOnline {
        table: "t".into(),
        column: "a".into(),
        ty: ColumnType::Jsonb,
        using: None,
        batching: Batching::default(),
    };
    assert_eq!(
        op.apply(&mut keyless),
        Err(ModelError::NoSingleColumnKey("t".into()))
    );
    let backfill = Op::Backfill(Backfill::new("t", "a", "'{}'"));
    assert_eq!(
        backfill.apply(&mut keyless),
        Err(ModelError::NoSingleColumnKey("t".into()))
    );
}

#[test]
fn a_constraint_using_an_index_takes_it_over() {
    let mut s = schema();
    let ops = safe::add_constraint(
        "users",
        Constraint {
            name: "users_email_key".into(),
            kind: ConstraintKind::Unique {
                columns: vec!["email".into()],
            },
        },
    );
    op::apply_all(&mut s, &ops).expect("applies");
    let t = s.table(&"users".into()).expect("users");
    assert!(!t.indexes.contains_key("users_email_key"));
    assert_eq!(
        t.constraints.get("users_email_key").map(|c| &c.kind),
        Some(&ConstraintKind::Unique {
            columns: vec!["email".into()]
        })
    );
    // Not unique: refused.
    let plain = Op::AddConstraintUsingIndex {
        table: "users".into(),
        name: "c".into(),
        index: "ix_users_created_at".into(),
        primary_key: false,
    };
    assert_eq!(
        plain.apply(&mut schema()),
        Err(ModelError::IndexCannotBackConstraint(
            "users".into(),
            "ix_users_created_at".into()
        ))
    );
    insta::assert_snapshot!(sql(&render(
        &ops[1],
        &schema_with(&ops[0]),
        Dialect::Postgres
    )
    .expect("renders")));
}

fn schema_with(op: &Op) -> Schema {
    let mut s = schema();
    op.apply(&mut s).expect("applies");
    s
}

#[test]
fn not_valid_constraints_are_tracked_until_validated() {
    let mut s = schema();
    let ops = safe::set_not_null("users", "settings");
    ops[0].apply(&mut s).expect("applies");
    let check = safe::not_null_check_name("settings");
    assert!(s
        .table(&"users".into())
        .expect("users")
        .not_valid
        .contains(&check));
    ops[1].apply(&mut s).expect("applies");
    assert!(s
        .table(&"users".into())
        .expect("users")
        .not_valid
        .is_empty());
    op::apply_all(&mut s, &ops[2..]).expect("applies");
    let t = s.table(&"users".into()).expect("users");
    assert!(!t.find_column("settings").expect("column").nullable);
    assert!(!t.constraints.contains_key(&check));
}

#[test]
fn postgres_phases_of_an_online_type_change() {
    let op = created_at_to_timestamptz();
    let phases = phases(&op, &schema(), Dialect::Postgres).expect("renders");
    insta::assert_snapshot!(show(&phases));
    // In one transaction: every statement transactional, the index built in place.
    let flat = render(&op, &schema(), Dialect::Postgres).expect("renders");
    assert_eq!(flat, flatten(&phases));
    assert!(flat.iter().all(|s| s.transactional));
    assert!(op.transactional());
    insta::assert_snapshot!(sql(&flat));
}

#[test]
fn postgres_phases_of_a_backfill() {
    let op = Op::Backfill(
        Backfill::new("users", "settings", "'{}'")
            .filtered("settings IS NULL")
            .batching(Batching {
                rows: 500,
                rows_per_second: Some(5000),
            }),
    );
    insta::assert_snapshot!(show(
        &phases(&op, &schema(), Dialect::Postgres).expect("renders")
    ));
}

#[test]
fn validate_runs_in_its_own_transaction_and_concurrent_builds_outside_one() {
    let mut s = schema();
    let ops = safe::set_not_null("users", "settings");
    ops[0].apply(&mut s).expect("applies");
    let validate = phases(&ops[1], &s, Dialect::Postgres).expect("renders");
    assert!(matches!(validate.as_slice(), [Phase::OwnTransaction(_)]));
    let build = Op::CreateIndex {
        table: "users".into(),
        index: Index::new("ix_users_email", &["email"]),
        concurrently: true,
    };
    let built = phases(&build, &schema(), Dialect::Postgres).expect("renders");
    assert!(
        built.iter().all(|p| matches!(
            p,
            Phase::Autocommit {
                in_transaction: None,
                ..
            }
        )),
        "{built:?}"
    );
    // The flat rendering, which checksums hash, is what it was before phases existed.
    assert_eq!(
        flatten(&built),
        render(&build, &schema(), Dialect::Postgres).expect("renders")
    );
}

#[test]
fn sqlite_renders_the_blocking_forms() {
    let mut out = Vec::new();
    for op in [
        created_at_to_timestamptz(),
        Op::Backfill(Backfill::new("users", "settings", "'{}'").filtered("settings IS NULL")),
    ] {
        let statements = render(&op, &schema(), Dialect::Sqlite).expect("renders");
        let phased = phases(&op, &schema(), Dialect::Sqlite).expect("renders");
        assert_eq!(phased, vec![Phase::Transaction(statements.clone())]);
        out.push(sql(&statements));
    }
    insta::assert_snapshot!(out.join("\n\n"));
    let computed = online(
        "settings",
        ColumnType::Jsonb,
        "settings::text::jsonb || '{}'",
    );
    assert!(render(&computed, &schema(), Dialect::Sqlite).is_err());
}

/// One line per op kind: its steps' locks, rewrites, scans and row writes. Stage 2's `trace`
/// measures the same on a scratch database and must agree, line by line.
#[test]
fn lock_profiles_of_every_op_kind() {
    let s = schema();
    let users: TableName = "users".into();
    let change = |c: ColumnChange| Op::AlterColumn {
        table: users.clone(),
        column: "email".into(),
        change: c,
    };
    let cases: Vec<(&str, Op)> = vec![
        (
            "add column, constant default",
            Op::AddColumn {
                table: users.clone(),
                column: Column::new("n", ColumnType::Integer).default(DefaultExpr::Int(0)),
            },
        ),
        (
            "add column, volatile default",
            Op::AddColumn {
                table: users.clone(),
                column: Column::new("n", ColumnType::Uuid).default(DefaultExpr::RandomUuid),
            },
        ),
        (
            "alter type, in place",
            change(ColumnChange {
                ty: Some((ColumnType::Text, None)),
                ..Default::default()
            }),
        ),
        (
            "alter type, rewrite",
            change(ColumnChange {
                ty: Some((ColumnType::Inet, Some("email::inet".into()))),
                ..Default::default()
            }),
        ),
        (
            "set not null",
            Op::AlterColumn {
                table: users.clone(),
                column: "settings".into(),
                change: ColumnChange {
                    nullable: Some(false),
                    ..Default::default()
                },
            },
        ),
        (
            "set default",
            change(ColumnChange {
                default: Some(Some(DefaultExpr::Text("x".into()))),
                ..Default::default()
            }),
        ),
        (
            "create index",
            Op::CreateIndex {
                table: users.clone(),
                index: Index::new("ix", &["email"]),
                concurrently: false,
            },
        ),
        (
            "create index concurrently",
            Op::CreateIndex {
                table: users.clone(),
                index: Index::new("ix", &["email"]),
                concurrently: true,
            },
        ),
        (
            "drop index",
            Op::DropIndex {
                table: users.clone(),
                name: "ix_users_created_at".into(),
                concurrently: false,
            },
        ),
        (
            "add check",
            Op::AddConstraint {
                table: users.clone(),
                constraint: Constraint {
                    name: "ck".into(),
                    kind: ConstraintKind::Check {
                        expr: "email <> ''".into(),
                        sqlite: None,
                    },
                },
                not_valid: false,
            },
        ),
        (
            "add check not valid",
            Op::AddConstraint {
                table: users.clone(),
                constraint: Constraint {
                    name: "ck".into(),
                    kind: ConstraintKind::Check {
                        expr: "email <> ''".into(),
                        sqlite: None,
                    },
                },
                not_valid: true,
            },
        ),
        (
            "add unique",
            Op::AddConstraint {
                table: users.clone(),
                constraint: Constraint {
                    name: "uq".into(),
                    kind: ConstraintKind::Unique {
                        columns: vec!["email".into()],
                    },
                },
                not_valid: false,
            },
        ),
        (
            "rename column",
            Op::RenameColumn {
                table: users.clone(),
                from: "email".into(),
                to: "mail".into(),
            },
        ),
        (
            "drop column",
            Op::DropColumn {
                table: users.clone(),
                column: "settings".into(),
            },
        ),
        (
            "backfill",
            Op::Backfill(Backfill::new("users", "settings", "'{}'")),
        ),
        ("online type change", created_at_to_timestamptz()),
    ];
    let mut out = String::new();
    for (what, op) in cases {
        for p in profile(&op, &s, 15) {
            let locks: Vec<String> = p
                .locks
                .iter()
                .map(|(t, m)| format!("{t} {}", m.pg_locks_name()))
                .collect();
            out.push_str(&format!(
                "{what} / {}: {}{}{}{}{}\n",
                p.step,
                locks.join(", "),
                if p.rewrites.is_empty() {
                    ""
                } else {
                    ", rewrites"
                },
                if p.scans.is_empty() { "" } else { ", scans" },
                match p.row_writes {
                    RowWrites::None => "",
                    RowWrites::Batches => ", writes rows in batches",
                    RowWrites::AllAtOnce => ", writes rows at once",
                },
                if p.autocommit { ", autocommit" } else { "" },
            ));
        }
    }
    insta::assert_snapshot!(out);
    assert_eq!(
        LockMode::from_pg_locks_name("ShareUpdateExclusiveLock"),
        Some(LockMode::ShareUpdateExclusive)
    );
    assert!(LockMode::AccessExclusive.blocks_reads() && LockMode::Share.blocks_writes());
    assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
}

fn revision_with_a_drop() -> Revision {
    Revision::new("aaaaaaaaaaaa", &[], "drop the settings").upgrade(vec![Op::DropColumn {
        table: "users".into(),
        column: "settings".into(),
    }])
}

#[test]
fn an_allowance_needs_a_known_rule_and_a_reason() {
    let typo = revision_with_a_drop().allow("drop-lose-data", "archived in S3");
    let err = lint::check_allowances(&typo).expect_err("unknown rule");
    assert!(
        err.to_string()
            .contains("\"drop-lose-data\", which is no lint rule"),
        "{err}"
    );
    let silent = revision_with_a_drop().allow("drop-loses-data", " ");
    assert!(lint::check_allowances(&silent).is_err());
    assert!(lint::lint_revision(
        &typo,
        Direction::Up,
        &mut schema(),
        &LintContext::postgres()
    )
    .is_err());
}

#[test]
fn allowed_findings_carry_their_reason_and_unused_allowances_are_reported() {
    let revision = revision_with_a_drop()
        .allow(
            "drop-loses-data",
            "the settings were copied to user_preferences in 2.3",
        )
        .allow("type-change-rewrite", "nothing changes a type here");
    let findings = lint::lint_revision(
        &revision,
        Direction::Up,
        &mut schema(),
        &LintContext::postgres(),
    )
    .expect("lints");
    insta::assert_snapshot!(findings
        .iter()
        .map(|f| format!("{f}\n  blocks: {}", f.blocks()))
        .collect::<Vec<_>>()
        .join("\n"));
}

/// The findings on today's identity chain, one line each: what stage 2 rewrites or allows.
#[test]
fn the_identity_chain_as_lint_sees_it() {
    let revisions = identity_schema::revisions::all();
    for r in &revisions {
        lint::check_allowances(r).expect("every allowance names a rule and gives a reason");
    }
    let graph = RevisionGraph::new(revisions).expect("the graph is valid");
    let mut out = String::new();
    for (dialect, name) in [
        (Dialect::Postgres, "postgresql"),
        (Dialect::Sqlite, "sqlite"),
    ] {
        let findings = lint::lint_graph(&graph, &LintContext::for_dialect(dialect)).expect("lints");
        let mut counts: std::collections::BTreeMap<(String, &str, lint::Severity), usize> =
            Default::default();
        for f in &findings {
            let revision = f
                .location
                .as_ref()
                .and_then(|l| l.revision.clone())
                .unwrap_or_default();
            *counts.entry((revision, f.rule, f.severity)).or_default() += 1;
        }
        out.push_str(&format!("{name}: {} findings\n", findings.len()));
        if dialect == Dialect::Postgres {
            let detail: Vec<String> = findings.iter().map(ToString::to_string).collect();
            insta::assert_snapshot!("identity_chain_postgres_findings", detail.join("\n"));
        }
        for ((revision, rule, severity), n) in counts {
            out.push_str(&format!("  {revision} {severity}[{rule}] x{n}\n"));
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn diff_validates_what_the_target_holds_validated() {
    let mut from = schema();
    let check = Op::AddConstraint {
        table: "users".into(),
        constraint: Constraint {
            name: "ck".into(),
            kind: ConstraintKind::Check {
                expr: "email <> ''".into(),
                sqlite: None,
            },
        },
        not_valid: true,
    };
    check.apply(&mut from).expect("applies");
    let mut to = from.clone();
    to.tables
        .get_mut(&"users".into())
        .expect("users")
        .not_valid
        .clear();
    let ops = diff::diff(&from, &to);
    assert_eq!(
        ops,
        vec![Op::ValidateConstraint {
            table: "users".into(),
            name: "ck".into()
        }]
    );
}

//! PostgreSQL rendering.

use super::{action, column_list, quote_ident as q, quote_literal, Statement};
use crate::op::{single_column_key, Backfill, Batching, ColumnChange, Op};
use crate::phase::{flatten, BatchJob, Phase};
use crate::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, Index, IndexKey,
    ReferentialAction, Schema, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use sha2::{Digest, Sha256};

/// The phases of `op` against `before` (see [`crate::phase`]).
pub(super) fn phases(op: &Op, before: &Schema) -> Vec<Phase> {
    match op {
        // A scan under SHARE UPDATE EXCLUSIVE: worth nothing if the transaction still holds the
        // ACCESS EXCLUSIVE lock of the ADD CONSTRAINT .. NOT VALID before it.
        Op::ValidateConstraint { .. } => vec![Phase::OwnTransaction(render(op, before))],
        Op::Backfill(backfill) => match batch_job(backfill, before) {
            Some(job) => vec![Phase::Batches(job)],
            // The model refuses this op (no single-column key); render what it says anyway.
            None => vec![Phase::Transaction(vec![whole_update(backfill)])],
        },
        Op::AlterColumnTypeOnline {
            table,
            column,
            ty,
            using,
            batching,
        } => type_change_online(before, table, column, ty, using.as_deref(), *batching),
        _ => {
            let cleanup = cleanup(op);
            let mut out: Vec<Phase> = Vec::new();
            for statement in render(op, before) {
                if !statement.transactional {
                    out.push(Phase::Autocommit {
                        statement,
                        cleanup: cleanup.clone(),
                        in_transaction: None,
                    });
                } else if let Some(Phase::Transaction(run)) = out.last_mut() {
                    run.push(statement);
                } else {
                    out.push(Phase::Transaction(vec![statement]));
                }
            }
            out
        }
    }
}

pub(super) fn render(op: &Op, before: &Schema) -> Vec<Statement> {
    let one = |sql: String| vec![Statement::new(sql)];
    match op {
        Op::Backfill(_) | Op::AlterColumnTypeOnline { .. } => flatten(&phases(op, before)),
        Op::AddConstraintUsingIndex {
            table,
            name,
            index,
            primary_key,
        } => one(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}",
            table_name(table),
            q(name),
            if *primary_key {
                "PRIMARY KEY"
            } else {
                "UNIQUE"
            },
            q(index)
        )),
        Op::CreateSchema { name } => one(format!("CREATE SCHEMA {}", q(name))),
        Op::DropSchema { name } => one(format!("DROP SCHEMA {}", q(name))),
        Op::CreateTable(table) => {
            let mut lines: Vec<String> = table.columns.iter().map(column_def).collect();
            lines.extend(table.constraints.values().map(constraint_def));
            let mut out = one(format!(
                "CREATE TABLE {} (\n    {}\n)",
                table_name(&table.name),
                lines.join(",\n    ")
            ));
            // Indexes given with the table are created with it, so the model never holds an
            // index the database lacks.
            out.extend(
                table
                    .indexes
                    .values()
                    .map(|index| Statement::new(create_index(&table.name, index, false))),
            );
            out.extend(
                table
                    .triggers
                    .values()
                    .map(|trigger| Statement::new(create_trigger(&table.name, trigger))),
            );
            out
        }
        Op::DropTable { table } => one(format!("DROP TABLE {}", table_name(table))),
        Op::SetTableSchema { table, schema } => one(format!(
            "ALTER TABLE {} SET SCHEMA {}",
            table_name(table),
            q(schema.as_deref().unwrap_or("public"))
        )),
        Op::RenameTable { table, to } => one(format!(
            "ALTER TABLE {} RENAME TO {}",
            table_name(table),
            q(to)
        )),
        Op::AddColumn { table, column } => one(format!(
            "ALTER TABLE {} ADD COLUMN {}",
            table_name(table),
            column_def(column)
        )),
        Op::DropColumn { table, column } => one(format!(
            "ALTER TABLE {} DROP COLUMN {}",
            table_name(table),
            q(column)
        )),
        Op::RenameColumn { table, from, to } => one(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            table_name(table),
            q(from),
            q(to)
        )),
        Op::AlterColumn {
            table,
            column,
            change,
        } => {
            let clauses = alter_clauses(column, change);
            if clauses.is_empty() {
                Vec::new()
            } else {
                one(format!(
                    "ALTER TABLE {} {}",
                    table_name(table),
                    clauses.join(", ")
                ))
            }
        }
        Op::CreateIndex {
            table,
            index,
            concurrently: false,
        } => one(create_index(table, index, false)),
        // A concurrent build that fails (or whose client dies) leaves an INVALID index behind,
        // and `IF NOT EXISTS` would accept it. Dropping whatever is there first makes the step
        // safe to run again, so the next run finishes the job instead of hitting a dead end.
        Op::CreateIndex {
            table,
            index,
            concurrently: true,
        } => vec![
            drop_index_if_exists(table, &index.name),
            Statement {
                sql: create_index(table, index, true),
                transactional: false,
            },
        ],
        Op::DropIndex {
            table,
            name,
            concurrently,
        } => vec![Statement {
            sql: format!(
                "DROP INDEX {}{}",
                if *concurrently {
                    "CONCURRENTLY IF EXISTS "
                } else {
                    ""
                },
                qualified(table.schema.as_deref(), name)
            ),
            transactional: !concurrently,
        }],
        Op::AddConstraint {
            table,
            constraint,
            not_valid,
        } => one(format!(
            "ALTER TABLE {} ADD {}{}",
            table_name(table),
            constraint_def(constraint),
            if *not_valid { " NOT VALID" } else { "" }
        )),
        Op::ValidateConstraint { table, name } => one(format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            table_name(table),
            q(name)
        )),
        Op::DropConstraint { table, name } => one(format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            table_name(table),
            q(name)
        )),
        Op::CreateFunction(function) => one(format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $function${}$function$",
            table_name(&function.name),
            function.body
        )),
        Op::DropFunction { name } => one(format!("DROP FUNCTION {}()", table_name(name))),
        Op::CreateTrigger { table, trigger } => one(create_trigger(table, trigger)),
        Op::DropTrigger { table, name } => {
            one(format!("DROP TRIGGER {} ON {}", q(name), table_name(table)))
        }
        Op::Sql(raw) => raw
            .postgres
            .as_ref()
            .map(|body| vec![Statement::new(body.trim().trim_end_matches(';').to_owned())])
            .unwrap_or_default(),
    }
}

/// `UPDATE t SET .. [WHERE ..]`: a backfill in one statement.
fn whole_update(backfill: &Backfill) -> Statement {
    let mut sql = format!(
        "UPDATE {} SET {}",
        table_name(&backfill.table),
        assignments(&backfill.set)
    );
    if let Some(filter) = &backfill.filter {
        sql.push_str(" WHERE ");
        sql.push_str(filter);
    }
    Statement::new(sql)
}

fn assignments(set: &[(String, String)]) -> String {
    set.iter()
        .map(|(column, expr)| format!("{} = {expr}", q(column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batch job of a backfill, or `None` when the table has no single-column key.
fn batch_job(backfill: &Backfill, before: &Schema) -> Option<BatchJob> {
    let table = before.table(&backfill.table)?;
    let key = single_column_key(table).ok()?;
    let k = q(&key.name);
    let t = table_name(&backfill.table);
    let mut filter = format!(
        "($1::text IS NULL OR {k} > $1::text::{})",
        type_sql(&key.ty)
    );
    if let Some(f) = &backfill.filter {
        filter.push_str(&format!(" AND ({f})"));
    }
    // FOR NO KEY UPDATE locks the batch's rows the way the UPDATE will (it does not block
    // foreign key checks of inserts elsewhere), so a row cannot change between the choice and
    // the update. The data-modifying CTE runs whether or not it is read.
    let batch = format!(
        "WITH batch AS (\n    SELECT {k} FROM {t}\n    WHERE {filter}\n    ORDER BY {k}\n    \
         LIMIT $2::bigint\n    FOR NO KEY UPDATE\n), updated AS (\n    UPDATE {t} SET {set}\n    \
         WHERE {k} IN (SELECT {k} FROM batch)\n)\nSELECT (SELECT {k} FROM batch ORDER BY {k} DESC \
         LIMIT 1)::text, (SELECT count(*) FROM batch)",
        set = assignments(&backfill.set),
    );
    Some(BatchJob {
        table: backfill.table.clone(),
        key: key.name.clone(),
        rows: backfill.batching.rows.max(1),
        rows_per_second: backfill.batching.rows_per_second,
        batch: Statement::new(batch),
        whole: whole_update(backfill),
    })
}

/// A name made of `prefix` and `base`, at most 63 bytes (PostgreSQL's limit, beyond which it
/// would truncate silently and two long names could meet): a long base is cut and a hash of it
/// appended.
pub(crate) fn helper_name(prefix: &str, base: &str) -> String {
    const MAX: usize = 63;
    if prefix.len() + base.len() <= MAX {
        return format!("{prefix}{base}");
    }
    let hash: String = Sha256::digest(base.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut keep = MAX - prefix.len() - hash.len() - 1;
    while !base.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{prefix}{}_{hash}", &base[..keep])
}

/// The phases of an online type change (see [`crate::phase`] and [`Op::AlterColumnTypeOnline`]).
fn type_change_online(
    before: &Schema,
    table: &TableName,
    column: &str,
    ty: &ColumnType,
    using: Option<&str>,
    batching: Batching,
) -> Vec<Phase> {
    let t = table_name(table);
    let old_column = before
        .table(table)
        .and_then(|tb| tb.find_column(column))
        .cloned()
        .unwrap_or_else(|| Column::new(column, ty.clone()));
    let c = q(column);
    let new_name = helper_name("_im_new_", column);
    let new = q(&new_name);
    let old = q(&helper_name("_im_old_", column));
    let check = q(&helper_name("_im_not_null_", column));
    let function = TableName {
        schema: table.schema.clone(),
        name: helper_name("_im_sync_", &format!("{}_{column}", table.name)),
    };
    let trigger = q(&helper_name("_im_sync_", column));
    let conversion = using.map_or_else(|| c.clone(), str::to_owned);
    let not_null = !old_column.nullable;

    let mut add = format!("ALTER TABLE {t} ADD COLUMN {new} {}", type_sql(ty));
    if not_null {
        add.push_str(&format!(
            ", ADD CONSTRAINT {check} CHECK ({new} IS NOT NULL) NOT VALID"
        ));
    }
    // The conversion is written over the row's columns; `SELECT NEW.*` gives it a row to read
    // them from, under the table's name. `SET search_path FROM CURRENT` keeps the migrator's
    // (pinned) path for the functions it calls, whatever path the service's sessions use.
    let body = format!(
        "BEGIN\n    NEW.{new} := (SELECT {conversion} FROM (SELECT NEW.*) AS {});\n    RETURN NEW;\nEND",
        q(&table.name)
    );
    let expand = vec![
        Statement::new(add),
        Statement::new(format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT \
             AS $function${body}$function$",
            table_name(&function)
        )),
        Statement::new(format!(
            "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE \
             FUNCTION {}()",
            table_name(&function)
        )),
    ];
    let mut out = vec![Phase::Transaction(expand)];
    let backfill = Backfill {
        table: table.clone(),
        set: vec![(new_name.clone(), conversion.clone())],
        filter: None,
        batching,
    };
    out.push(match batch_job(&backfill, before) {
        Some(job) => Phase::Batches(job),
        None => Phase::Transaction(vec![whole_update(&backfill)]),
    });
    let indexes: Vec<&Index> = before
        .table(table)
        .map(|tb| {
            tb.indexes
                .values()
                .filter(|i| i.columns().any(|k| k == column))
                .collect()
        })
        .unwrap_or_default();
    let mut renames = Vec::new();
    for index in &indexes {
        let mut copy = (*index).clone();
        copy.name = helper_name("_im_new_", &index.name);
        for key in &mut copy.keys {
            if matches!(key, IndexKey::Column(k) if k == column) {
                *key = IndexKey::Column(new_name.clone());
            }
        }
        out.push(Phase::Autocommit {
            statement: Statement {
                sql: create_index(table, &copy, true),
                transactional: false,
            },
            cleanup: vec![drop_index_if_exists(table, &copy.name)],
            in_transaction: Some(Statement::new(create_index(table, &copy, false))),
        });
        renames.push(Statement::new(format!(
            "ALTER INDEX {} RENAME TO {}",
            qualified(table.schema.as_deref(), &index.name),
            q(&helper_name("_im_old_", &index.name))
        )));
        renames.push(Statement::new(format!(
            "ALTER INDEX {} RENAME TO {}",
            qualified(table.schema.as_deref(), &copy.name),
            q(&index.name)
        )));
    }
    if not_null {
        out.push(Phase::OwnTransaction(vec![Statement::new(format!(
            "ALTER TABLE {t} VALIDATE CONSTRAINT {check}"
        ))]));
    }
    // The swap: catalog changes only, under one brief ACCESS EXCLUSIVE lock. From its commit
    // on, the column of that name is the new one.
    let mut swap = vec![
        Statement::new(format!("DROP TRIGGER {trigger} ON {t}")),
        Statement::new(format!("DROP FUNCTION {}()", table_name(&function))),
    ];
    if not_null {
        // Proven by the validated CHECK: no scan (PostgreSQL 12 and later).
        swap.push(Statement::new(format!(
            "ALTER TABLE {t} ALTER COLUMN {new} SET NOT NULL"
        )));
        swap.push(Statement::new(format!(
            "ALTER TABLE {t} DROP CONSTRAINT {check}"
        )));
    }
    if let Some(d) = &old_column.default {
        swap.push(Statement::new(format!(
            "ALTER TABLE {t} ALTER COLUMN {new} SET DEFAULT {}",
            default_sql(d)
        )));
    }
    if not_null {
        // From the swap on, the service's inserts no longer fill the old column.
        swap.push(Statement::new(format!(
            "ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"
        )));
    }
    swap.push(Statement::new(format!(
        "ALTER TABLE {t} RENAME COLUMN {c} TO {old}"
    )));
    swap.push(Statement::new(format!(
        "ALTER TABLE {t} RENAME COLUMN {new} TO {c}"
    )));
    swap.extend(renames);
    out.push(Phase::OwnTransaction(swap));
    // The contract: the old column, and its indexes with it.
    out.push(Phase::OwnTransaction(vec![Statement::new(format!(
        "ALTER TABLE {t} DROP COLUMN {old}"
    ))]));
    out
}

fn create_trigger(table: &TableName, trigger: &Trigger) -> String {
    let events: Vec<&str> = trigger
        .events
        .iter()
        .map(|e| match e {
            TriggerEvent::Insert => "INSERT",
            TriggerEvent::Update => "UPDATE",
            TriggerEvent::Delete => "DELETE",
        })
        .collect();
    format!(
        "CREATE TRIGGER {} {} {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
        q(&trigger.name),
        match trigger.timing {
            TriggerTiming::Before => "BEFORE",
            TriggerTiming::After => "AFTER",
        },
        events.join(" OR "),
        table_name(table),
        table_name(&trigger.function)
    )
}

pub(super) fn cleanup(op: &Op) -> Vec<Statement> {
    match op {
        Op::CreateIndex {
            table,
            index,
            concurrently: true,
        } => vec![drop_index_if_exists(table, &index.name)],
        _ => Vec::new(),
    }
}

fn drop_index_if_exists(table: &TableName, name: &str) -> Statement {
    Statement {
        sql: format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            qualified(table.schema.as_deref(), name)
        ),
        transactional: false,
    }
}

fn table_name(t: &TableName) -> String {
    qualified(t.schema.as_deref(), &t.name)
}

fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", q(s), q(name)),
        None => q(name),
    }
}

pub(crate) fn type_sql(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Varchar(Some(n)) => format!("varchar({n})"),
        ColumnType::Varchar(None) => "varchar".into(),
        ColumnType::Text => "text".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::SmallInt => "smallint".into(),
        ColumnType::Integer => "integer".into(),
        ColumnType::BigInt => "bigint".into(),
        ColumnType::Numeric(Some((p, s))) => format!("numeric({p}, {s})"),
        ColumnType::Numeric(None) => "numeric".into(),
        ColumnType::Double => "double precision".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamptz".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Json => "json".into(),
        ColumnType::Jsonb => "jsonb".into(),
        ColumnType::Inet => "inet".into(),
        ColumnType::Bytea => "bytea".into(),
        ColumnType::Other(name) => name.clone(),
    }
}

pub(crate) fn default_sql(d: &DefaultExpr) -> String {
    match d {
        DefaultExpr::Bool(b) => b.to_string(),
        DefaultExpr::Int(i) => i.to_string(),
        DefaultExpr::Text(s) | DefaultExpr::Json(s) => quote_literal(s),
        DefaultExpr::Now => "now()".into(),
        DefaultExpr::RandomUuid | DefaultExpr::RandomUuidHex => "gen_random_uuid()".into(),
        // Parenthesized as PostgreSQL prints it back inside a column definition.
        DefaultExpr::UtcNow => "(now() AT TIME ZONE 'utc')".into(),
        DefaultExpr::Sql(s) => s.clone(),
    }
}

fn column_def(c: &Column) -> String {
    let mut s = format!("{} {}", q(&c.name), type_sql(&c.ty));
    if let Some(d) = &c.default {
        s.push_str(" DEFAULT ");
        s.push_str(&default_sql(d));
    }
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    s
}

fn constraint_def(c: &Constraint) -> String {
    let body = match &c.kind {
        ConstraintKind::PrimaryKey { columns } => format!("PRIMARY KEY ({})", column_list(columns)),
        ConstraintKind::Unique { columns } => format!("UNIQUE ({})", column_list(columns)),
        ConstraintKind::ForeignKey(fk) => {
            let mut s = format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                column_list(&fk.columns),
                table_name(&fk.ref_table),
                column_list(&fk.ref_columns)
            );
            if fk.on_delete != ReferentialAction::NoAction {
                s.push_str(" ON DELETE ");
                s.push_str(action(fk.on_delete));
            }
            if fk.on_update != ReferentialAction::NoAction {
                s.push_str(" ON UPDATE ");
                s.push_str(action(fk.on_update));
            }
            s
        }
        ConstraintKind::Check { expr, .. } => format!("CHECK ({expr})"),
    };
    format!("CONSTRAINT {} {body}", q(&c.name))
}

fn create_index(table: &TableName, index: &Index, concurrently: bool) -> String {
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(c) => q(c),
            IndexKey::Expr(e) => format!("({e})"),
        })
        .collect();
    let mut s = format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if concurrently { "CONCURRENTLY " } else { "" },
        q(&index.name),
        table_name(table),
        keys.join(", ")
    );
    if let Some(p) = &index.predicate {
        s.push_str(" WHERE ");
        s.push_str(p);
    }
    s
}

/// One `ALTER TABLE` per table for a run of `AlterColumn` ops, clauses in the ops' order.
///
/// An op joins the statement of its table's earlier ops, moving ahead of ops of other tables in
/// between; a second change of the same column starts a new statement after everything before
/// it, so changes of one column always run in their order. Moving ahead is safe because the
/// caller groups no run that changes the type of a key column (see
/// [`changes_key_column_type`]): changes of different columns of different tables do not
/// otherwise depend on each other.
pub(crate) fn grouped_alters(run: &[Op]) -> Vec<Statement> {
    struct Group<'a> {
        table: &'a TableName,
        columns: Vec<&'a str>,
        clauses: Vec<String>,
        open: bool,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for op in run {
        let Op::AlterColumn {
            table,
            column,
            change,
        } = op
        else {
            continue;
        };
        let clauses = alter_clauses(column, change);
        if clauses.is_empty() {
            continue;
        }
        let joinable = groups.iter_mut().rev().find(|g| g.table == table && g.open);
        match joinable {
            Some(group) if !group.columns.contains(&column.as_str()) => {
                group.columns.push(column);
                group.clauses.extend(clauses);
            }
            found => {
                if let Some(group) = found {
                    group.open = false;
                }
                groups.push(Group {
                    table,
                    columns: vec![column],
                    clauses,
                    open: true,
                });
            }
        }
    }
    groups
        .into_iter()
        .map(|g| {
            // One op's clauses stay on one line, as `render` writes them; several columns get
            // a line each, for review.
            let separator = if g.columns.len() > 1 { ",\n    " } else { ", " };
            let lead = if g.columns.len() > 1 { "\n    " } else { " " };
            Statement::new(format!(
                "ALTER TABLE {}{lead}{}",
                table_name(g.table),
                g.clauses.join(separator)
            ))
        })
        .collect()
}

/// Whether a run of `AlterColumn` ops changes the type of a column that a foreign key uses
/// (on either side): those changes must keep their order across tables.
pub(crate) fn changes_key_column_type(run: &[Op], schema: &Schema) -> bool {
    run.iter().any(|op| match op {
        Op::AlterColumn {
            table,
            column,
            change,
        } if change.ty.is_some() => schema.tables.values().any(|t| {
            t.constraints.values().any(|c| match &c.kind {
                ConstraintKind::ForeignKey(fk) => {
                    (&t.name == table && fk.columns.contains(column))
                        || (&fk.ref_table == table && fk.ref_columns.contains(column))
                }
                _ => false,
            })
        }),
        _ => false,
    })
}

fn alter_clauses(column: &str, change: &ColumnChange) -> Vec<String> {
    let col = q(column);
    let mut out = Vec::new();
    // Drop a default before a type change: the old default may not cast to the new type.
    if matches!(change.default, Some(None)) || (change.ty.is_some() && change.default.is_some()) {
        out.push(format!("ALTER COLUMN {col} DROP DEFAULT"));
    }
    if let Some((ty, using)) = &change.ty {
        let mut s = format!("ALTER COLUMN {col} TYPE {}", type_sql(ty));
        if let Some(u) = using {
            s.push_str(" USING ");
            s.push_str(u);
        }
        out.push(s);
    }
    if let Some(Some(d)) = &change.default {
        out.push(format!("ALTER COLUMN {col} SET DEFAULT {}", default_sql(d)));
    }
    match change.nullable {
        Some(true) => out.push(format!("ALTER COLUMN {col} DROP NOT NULL")),
        Some(false) => out.push(format!("ALTER COLUMN {col} SET NOT NULL")),
        None => {}
    }
    out
}

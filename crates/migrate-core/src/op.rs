//! Ops: one change each, and `apply`, the pure function that folds an op into a schema.
//!
//! `apply` refuses what the database would refuse (a duplicate relation name, a dropped table
//! that is still referenced, a column that is not there), so a revision that cannot run is caught
//! by a unit test instead of by a production database.

use crate::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, Function, Index, Schema, Table,
    TableName, Trigger,
};
use std::fmt;

/// A change to one column; each `Some` field is changed, each `None` left alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnChange {
    /// New type, with an optional `USING` conversion expression.
    pub ty: Option<(ColumnType, Option<String>)>,
    /// New nullability.
    pub nullable: Option<bool>,
    /// New default (`Some(None)` drops it).
    pub default: Option<Option<DefaultExpr>>,
}

/// SQL that the model cannot express (data backfills, copies), with a body per dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSql {
    /// What it does, in a few words (shown in plans and reviews).
    pub description: String,
    /// The PostgreSQL body; `None` means this op does not apply there and is skipped.
    pub postgres: Option<String>,
    /// The SQLite body; `None` means this op does not apply there and is skipped.
    pub sqlite: Option<String>,
}

/// How a batched op ([`Op::Backfill`], [`Op::AlterColumnTypeOnline`]) paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Batching {
    /// Rows per batch; each batch is one short transaction.
    pub rows: u32,
    /// An upper bound on rows updated per second, if any (a pause between batches keeps the
    /// load on the primary and on replicas bounded).
    pub rows_per_second: Option<u32>,
}

impl Default for Batching {
    /// 1,000 rows a batch (pgroll's and reshape's default: a batch holds its row locks for a
    /// few milliseconds), unthrottled.
    fn default() -> Self {
        Batching {
            rows: 1000,
            rows_per_second: None,
        }
    }
}

/// An update of every row of a table (or of those a filter selects), done in batches by
/// ranges of its primary key: see [`Op::Backfill`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// The table; it needs a single-column primary key, the key its batches range over.
    pub table: TableName,
    /// `column = expression` pairs, the expressions in SQL over the row's columns (PostgreSQL's
    /// spelling, rendered as written on SQLite too, so keep them portable).
    pub set: Vec<(String, String)>,
    /// Only rows for which this is true (e.g. `new_col IS NULL`); `None`: every row.
    pub filter: Option<String>,
    /// Batch size and rate.
    pub batching: Batching,
}

impl Backfill {
    /// A backfill of `table` setting `column = expr`, every row, default batching.
    pub fn new(table: impl Into<TableName>, column: &str, expr: &str) -> Self {
        Backfill {
            table: table.into(),
            set: vec![(column.to_owned(), expr.to_owned())],
            filter: None,
            batching: Batching::default(),
        }
    }

    /// The same backfill, also setting `column = expr`.
    pub fn set(mut self, column: &str, expr: &str) -> Self {
        self.set.push((column.to_owned(), expr.to_owned()));
        self
    }

    /// The same backfill, of the rows `filter` selects only.
    pub fn filtered(mut self, filter: &str) -> Self {
        self.filter = Some(filter.to_owned());
        self
    }

    /// The same backfill, with this batching.
    pub fn batching(mut self, batching: Batching) -> Self {
        self.batching = batching;
        self
    }
}

/// One change to a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Creates a database schema (namespace).
    CreateSchema {
        /// Its name.
        name: String,
    },
    /// Drops an empty database schema.
    DropSchema {
        /// Its name.
        name: String,
    },
    /// Creates a table with its columns and constraints (its indexes come by `CreateIndex`).
    CreateTable(Table),
    /// Drops a table that nothing references any more.
    DropTable {
        /// The table.
        table: TableName,
    },
    /// Moves a table to another database schema (`None`: the default one).
    SetTableSchema {
        /// The table.
        table: TableName,
        /// Its new schema.
        schema: Option<String>,
    },
    /// Renames a table within its schema.
    RenameTable {
        /// The table.
        table: TableName,
        /// Its new name.
        to: String,
    },
    /// Adds a column at the end of a table.
    AddColumn {
        /// The table.
        table: TableName,
        /// The new column.
        column: Column,
    },
    /// Drops a column, and the indexes and constraints over it.
    DropColumn {
        /// The table.
        table: TableName,
        /// The column's name.
        column: String,
    },
    /// Renames a column.
    RenameColumn {
        /// The table.
        table: TableName,
        /// Current name.
        from: String,
        /// New name.
        to: String,
    },
    /// Changes a column's type, nullability or default.
    AlterColumn {
        /// The table.
        table: TableName,
        /// The column's name.
        column: String,
        /// What changes.
        change: ColumnChange,
    },
    /// Creates an index, optionally without blocking writes (then outside any transaction).
    CreateIndex {
        /// The table.
        table: TableName,
        /// The index.
        index: Index,
        /// `CREATE INDEX CONCURRENTLY` on PostgreSQL.
        concurrently: bool,
    },
    /// Drops an index.
    DropIndex {
        /// The table it is on.
        table: TableName,
        /// The index's name.
        name: String,
        /// `DROP INDEX CONCURRENTLY` on PostgreSQL.
        concurrently: bool,
    },
    /// Adds a constraint; `not_valid` skips checking existing rows (validate later).
    AddConstraint {
        /// The table.
        table: TableName,
        /// The constraint.
        constraint: Constraint,
        /// `NOT VALID` on PostgreSQL.
        not_valid: bool,
    },
    /// Validates a constraint added `NOT VALID`.
    ValidateConstraint {
        /// The table.
        table: TableName,
        /// The constraint's name.
        name: String,
    },
    /// Drops a constraint.
    DropConstraint {
        /// The table.
        table: TableName,
        /// The constraint's name.
        name: String,
    },
    /// Creates a trigger function.
    CreateFunction(Function),
    /// Drops a trigger function that no trigger calls any more.
    DropFunction {
        /// The function.
        name: TableName,
    },
    /// Creates a row-level trigger on a table.
    CreateTrigger {
        /// The table.
        table: TableName,
        /// The trigger.
        trigger: Trigger,
    },
    /// Drops a trigger.
    DropTrigger {
        /// The table.
        table: TableName,
        /// The trigger's name.
        name: String,
    },
    /// SQL the model cannot express; it leaves the schema as it is.
    Sql(RawSql),
    /// Makes a unique index the index of a new primary key or unique constraint (PostgreSQL's
    /// `ADD CONSTRAINT .. USING INDEX`): with the index built `concurrently` beforehand, the
    /// constraint costs a catalog change under a brief lock instead of an index build that
    /// blocks every write. The index takes the constraint's name.
    AddConstraintUsingIndex {
        /// The table.
        table: TableName,
        /// The constraint's name.
        name: String,
        /// The unique index it takes over: plain columns, no predicate.
        index: String,
        /// A primary key (its columns become NOT NULL) rather than a unique constraint.
        primary_key: bool,
    },
    /// Updates rows in key-range batches, each its own transaction, so that no row lock is
    /// held for longer than one batch and an interrupted run resumes where it stopped (see
    /// [`crate::phase`]). Leaves the schema as it is.
    Backfill(Backfill),
    /// Changes a column's type without rewriting the table under `ACCESS EXCLUSIVE`: a new
    /// column, kept in step by a trigger, filled in batches, then swapped in by one short
    /// transaction and the old one dropped (see [`crate::phase`]). The column keeps its name,
    /// nullability, default and indexes, and moves to the end of the table, as the database
    /// sees it. The service needs no pinned `search_path` and the migrator no superuser.
    AlterColumnTypeOnline {
        /// The table; it needs a single-column primary key (the batches range over it).
        table: TableName,
        /// The column.
        column: String,
        /// Its new type.
        ty: ColumnType,
        /// The conversion, SQL over the row's columns (`col::jsonb`); `None`: an assignment
        /// cast of the column.
        using: Option<String>,
        /// How the backfill paces itself.
        batching: Batching,
    },
}

/// A key that a foreign key rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInUse {
    /// The table that owns the key.
    pub table: TableName,
    /// The constraint or index.
    pub name: String,
    /// The referring table.
    pub by: TableName,
    /// The referring foreign key.
    pub constraint: String,
}

/// Why an op cannot apply to a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// A table of that name is already there.
    TableExists(TableName),
    /// No such table.
    NoSuchTable(TableName),
    /// No such column.
    NoSuchColumn(TableName, String),
    /// A column of that name is already there.
    ColumnExists(TableName, String),
    /// A relation (table or index) of that name already exists in the schema.
    RelationExists {
        /// The clashing name.
        name: String,
        /// The table that owns the existing relation.
        owner: TableName,
    },
    /// No such index on that table.
    NoSuchIndex(TableName, String),
    /// No such constraint on that table.
    NoSuchConstraint(TableName, String),
    /// A constraint of that name already exists on that table.
    ConstraintExists(TableName, String),
    /// The table is still referenced by a foreign key of another table.
    StillReferenced {
        /// The table being dropped (or whose column is being dropped).
        table: TableName,
        /// The referring table.
        by: TableName,
        /// The referring constraint.
        constraint: String,
    },
    /// The database schema does not exist.
    NoSuchSchema(String),
    /// The database schema already exists.
    SchemaExists(String),
    /// The database schema still holds tables.
    SchemaNotEmpty(String),
    /// A table has a second primary key.
    SecondPrimaryKey(TableName),
    /// A foreign key points at columns no primary key, unique constraint or unique index covers.
    NoMatchingKey {
        /// The referenced table.
        table: TableName,
        /// The referenced columns.
        columns: Vec<String>,
    },
    /// A key cannot go: a foreign key rests on it.
    KeyInUse(Box<KeyInUse>),
    /// A function of that name already exists.
    FunctionExists(TableName),
    /// No such function.
    NoSuchFunction(TableName),
    /// The function is still called by a trigger.
    FunctionInUse {
        /// The function.
        function: TableName,
        /// The table whose trigger calls it.
        table: TableName,
        /// The trigger.
        trigger: String,
    },
    /// A trigger of that name already exists on the table.
    TriggerExists(TableName, String),
    /// No such trigger on the table.
    NoSuchTrigger(TableName, String),
    /// Only foreign keys and CHECK constraints can be added `NOT VALID`.
    CannotBeNotValid(TableName, String),
    /// A batched op needs a table with a single-column primary key to range over.
    NoSingleColumnKey(TableName),
    /// The index cannot back a constraint: it is not unique, or it has a predicate or an
    /// expression.
    IndexCannotBackConstraint(TableName, String),
    /// An online type change cannot carry this column's dependants over; why, in words.
    CannotChangeOnline {
        /// The table.
        table: TableName,
        /// The column.
        column: String,
        /// What stands in the way.
        why: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::TableExists(t) => write!(f, "table {t} already exists"),
            ModelError::NoSuchTable(t) => write!(f, "table {t} does not exist"),
            ModelError::NoSuchColumn(t, c) => write!(f, "column {t}.{c} does not exist"),
            ModelError::ColumnExists(t, c) => write!(f, "column {t}.{c} already exists"),
            ModelError::RelationExists { name, owner } => {
                write!(
                    f,
                    "relation \"{name}\" already exists (it belongs to table {owner})"
                )
            }
            ModelError::NoSuchIndex(t, i) => write!(f, "index {i} on {t} does not exist"),
            ModelError::NoSuchConstraint(t, c) => write!(f, "constraint {c} on {t} does not exist"),
            ModelError::ConstraintExists(t, c) => write!(f, "constraint {c} on {t} already exists"),
            ModelError::StillReferenced {
                table,
                by,
                constraint,
            } => write!(
                f,
                "{table} is still referenced by foreign key {constraint} of {by}: drop that first"
            ),
            ModelError::NoSuchSchema(s) => write!(f, "schema {s} does not exist"),
            ModelError::SchemaExists(s) => write!(f, "schema {s} already exists"),
            ModelError::SchemaNotEmpty(s) => write!(f, "schema {s} still holds tables"),
            ModelError::SecondPrimaryKey(t) => write!(f, "table {t} already has a primary key"),
            ModelError::NoMatchingKey { table, columns } => write!(
                f,
                "no primary key or unique key of {table} covers ({}): a foreign key needs one",
                columns.join(", ")
            ),
            ModelError::KeyInUse(key) => write!(
                f,
                "{} on {} is what foreign key {} of {} rests on: drop that first",
                key.name, key.table, key.constraint, key.by
            ),
            ModelError::FunctionExists(n) => write!(f, "function {n} already exists"),
            ModelError::NoSuchFunction(n) => write!(f, "function {n} does not exist"),
            ModelError::FunctionInUse {
                function,
                table,
                trigger,
            } => write!(
                f,
                "function {function} is still called by trigger {trigger} on {table}: drop that first"
            ),
            ModelError::TriggerExists(t, n) => write!(f, "trigger {n} on {t} already exists"),
            ModelError::NoSuchTrigger(t, n) => write!(f, "trigger {n} on {t} does not exist"),
            ModelError::NoSingleColumnKey(t) => write!(
                f,
                "table {t} has no single-column primary key: batches range over one; use \
                 Op::Sql for this table"
            ),
            ModelError::IndexCannotBackConstraint(t, i) => write!(
                f,
                "index {i} on {t} cannot back a constraint: it must be unique, on plain columns, \
                 without a WHERE predicate"
            ),
            ModelError::CannotChangeOnline { table, column, why } => write!(
                f,
                "cannot change the type of {table}.{column} online: {why}; use Op::AlterColumn \
                 (a rewrite under ACCESS EXCLUSIVE) or drop that first"
            ),
            ModelError::CannotBeNotValid(t, c) => write!(
                f,
                "constraint {c} on {t} cannot be added NOT VALID: only foreign keys and CHECK \
                 constraints can; add it without not_valid"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

impl Op {
    /// The table this op changes, if it changes one.
    pub fn table(&self) -> Option<&TableName> {
        match self {
            Op::CreateTable(t) => Some(&t.name),
            Op::DropTable { table }
            | Op::SetTableSchema { table, .. }
            | Op::RenameTable { table, .. }
            | Op::AddColumn { table, .. }
            | Op::DropColumn { table, .. }
            | Op::RenameColumn { table, .. }
            | Op::AlterColumn { table, .. }
            | Op::CreateIndex { table, .. }
            | Op::DropIndex { table, .. }
            | Op::AddConstraint { table, .. }
            | Op::ValidateConstraint { table, .. }
            | Op::DropConstraint { table, .. }
            | Op::CreateTrigger { table, .. }
            | Op::DropTrigger { table, .. }
            | Op::AddConstraintUsingIndex { table, .. }
            | Op::AlterColumnTypeOnline { table, .. } => Some(table),
            Op::Backfill(backfill) => Some(&backfill.table),
            Op::CreateSchema { .. }
            | Op::DropSchema { .. }
            | Op::CreateFunction(_)
            | Op::DropFunction { .. }
            | Op::Sql(_) => None,
        }
    }

    /// Whether this op can run inside a transaction.
    ///
    /// The batched ops can: executed as one transaction they fall back to their blocking form
    /// (see [`crate::phase`]).
    pub fn transactional(&self) -> bool {
        !matches!(
            self,
            Op::CreateIndex {
                concurrently: true,
                ..
            } | Op::DropIndex {
                concurrently: true,
                ..
            }
        )
    }

    /// Folds this op into `schema`, or says why the database would refuse it.
    ///
    /// On error the schema is left unchanged.
    pub fn apply(&self, schema: &mut Schema) -> Result<(), ModelError> {
        match self {
            Op::CreateSchema { name } => {
                if !schema.schemas.insert(name.clone()) {
                    return Err(ModelError::SchemaExists(name.clone()));
                }
            }
            Op::DropSchema { name } => {
                if !schema.schemas.contains(name) {
                    return Err(ModelError::NoSuchSchema(name.clone()));
                }
                let holds = |n: &TableName| n.schema.as_ref() == Some(name);
                if schema.tables.keys().any(holds) || schema.functions.keys().any(holds) {
                    return Err(ModelError::SchemaNotEmpty(name.clone()));
                }
                schema.schemas.remove(name);
            }
            Op::CreateTable(table) => {
                check_schema_exists(schema, table.name.schema.as_deref())?;
                if schema.tables.contains_key(&table.name) {
                    return Err(ModelError::TableExists(table.name.clone()));
                }
                let mut own = std::collections::BTreeSet::new();
                for name in table.relation_names() {
                    check_relation_free(schema, table.name.schema.as_deref(), name)?;
                    if !own.insert(name) {
                        return Err(ModelError::RelationExists {
                            name: name.to_owned(),
                            owner: table.name.clone(),
                        });
                    }
                }
                check_table_consistent(schema, table)?;
                if let Some(trigger) = table
                    .triggers
                    .values()
                    .find(|t| !schema.functions.contains_key(&t.function))
                {
                    return Err(ModelError::NoSuchFunction(trigger.function.clone()));
                }
                schema.tables.insert(table.name.clone(), table.clone());
            }
            Op::DropTable { table } => {
                existing(schema, table)?;
                check_not_referenced(schema, table, None)?;
                schema.tables.remove(table);
            }
            Op::SetTableSchema { table, schema: to } => {
                let moved = TableName {
                    schema: to.clone(),
                    name: table.name.clone(),
                };
                rename_table(schema, table, moved)?;
            }
            Op::RenameTable { table, to } => {
                let renamed = TableName {
                    schema: table.schema.clone(),
                    name: to.clone(),
                };
                rename_table(schema, table, renamed)?;
            }
            Op::AddColumn { table, column } => {
                let t = existing_mut(schema, table)?;
                if t.find_column(&column.name).is_some() {
                    return Err(ModelError::ColumnExists(table.clone(), column.name.clone()));
                }
                t.columns.push(column.clone());
            }
            Op::DropColumn { table, column } => {
                existing_column(schema, table, column)?;
                check_not_referenced(schema, table, Some(column))?;
                let t = existing_mut(schema, table)?;
                t.columns.retain(|c| &c.name != column);
                // The database drops what depends on the column along with it.
                t.constraints
                    .retain(|_, c| !c.kind.columns().iter().any(|k| k == column));
                let kept: Vec<String> = t.constraints.keys().cloned().collect();
                t.not_valid.retain(|name| kept.contains(name));
                t.indexes.retain(|_, i| !i.columns().any(|k| k == column));
            }
            Op::RenameColumn { table, from, to } => {
                existing_column(schema, table, from)?;
                if existing(schema, table)?.find_column(to).is_some() {
                    return Err(ModelError::ColumnExists(table.clone(), to.clone()));
                }
                rename_column(schema, table, from, to);
            }
            Op::AlterColumn {
                table,
                column,
                change,
            } => {
                existing_column(schema, table, column)?;
                let t = existing_mut(schema, table)?;
                if let Some(c) = t.columns.iter_mut().find(|c| &c.name == column) {
                    if let Some((ty, _)) = &change.ty {
                        c.ty = ty.clone();
                    }
                    if let Some(nullable) = change.nullable {
                        c.nullable = nullable;
                    }
                    if let Some(default) = &change.default {
                        c.default = default.clone();
                    }
                }
            }
            Op::CreateIndex { table, index, .. } => {
                let t = existing(schema, table)?;
                for c in index.columns() {
                    if t.find_column(c).is_none() {
                        return Err(ModelError::NoSuchColumn(table.clone(), c.to_owned()));
                    }
                }
                check_relation_free(schema, table.schema.as_deref(), &index.name)?;
                existing_mut(schema, table)?
                    .indexes
                    .insert(index.name.clone(), index.clone());
            }
            Op::DropIndex { table, name, .. } => {
                let mut candidate = existing(schema, table)?.clone();
                if candidate.indexes.remove(name).is_none() {
                    return Err(ModelError::NoSuchIndex(table.clone(), name.clone()));
                }
                check_keys_still_serve(schema, &candidate, name)?;
                existing_mut(schema, table)?.indexes.remove(name);
            }
            Op::AddConstraint {
                table,
                constraint,
                not_valid,
            } => {
                let t = existing(schema, table)?;
                if *not_valid && constraint.kind.has_index() {
                    return Err(ModelError::CannotBeNotValid(
                        table.clone(),
                        constraint.name.clone(),
                    ));
                }
                if t.constraints.contains_key(&constraint.name) {
                    return Err(ModelError::ConstraintExists(
                        table.clone(),
                        constraint.name.clone(),
                    ));
                }
                if matches!(constraint.kind, ConstraintKind::PrimaryKey { .. })
                    && t.constraints
                        .values()
                        .any(|c| matches!(c.kind, ConstraintKind::PrimaryKey { .. }))
                {
                    return Err(ModelError::SecondPrimaryKey(table.clone()));
                }
                if constraint.kind.has_index() {
                    check_relation_free(schema, table.schema.as_deref(), &constraint.name)?;
                }
                let mut candidate = t.clone();
                candidate
                    .constraints
                    .insert(constraint.name.clone(), constraint.clone());
                check_table_consistent(schema, &candidate)?;
                let t = existing_mut(schema, table)?;
                t.constraints
                    .insert(constraint.name.clone(), constraint.clone());
                if *not_valid {
                    t.not_valid.insert(constraint.name.clone());
                }
            }
            Op::ValidateConstraint { table, name } => {
                let t = existing_mut(schema, table)?;
                if !t.constraints.contains_key(name) {
                    return Err(ModelError::NoSuchConstraint(table.clone(), name.clone()));
                }
                t.not_valid.remove(name);
            }
            Op::DropConstraint { table, name } => {
                let mut candidate = existing(schema, table)?.clone();
                if candidate.constraints.remove(name).is_none() {
                    return Err(ModelError::NoSuchConstraint(table.clone(), name.clone()));
                }
                check_keys_still_serve(schema, &candidate, name)?;
                let t = existing_mut(schema, table)?;
                t.constraints.remove(name);
                t.not_valid.remove(name);
            }
            Op::AddConstraintUsingIndex {
                table,
                name,
                index,
                primary_key,
            } => apply_constraint_using_index(schema, table, name, index, *primary_key)?,
            Op::Backfill(backfill) => {
                let t = existing(schema, &backfill.table)?;
                for (column, _) in &backfill.set {
                    existing_column(schema, &backfill.table, column)?;
                }
                single_column_key(t)?;
            }
            Op::AlterColumnTypeOnline {
                table, column, ty, ..
            } => apply_type_change_online(schema, table, column, ty)?,
            Op::CreateFunction(function) => {
                check_schema_exists(schema, function.name.schema.as_deref())?;
                if schema.functions.contains_key(&function.name) {
                    return Err(ModelError::FunctionExists(function.name.clone()));
                }
                schema
                    .functions
                    .insert(function.name.clone(), function.clone());
            }
            Op::DropFunction { name } => {
                if !schema.functions.contains_key(name) {
                    return Err(ModelError::NoSuchFunction(name.clone()));
                }
                for t in schema.tables.values() {
                    if let Some(trigger) = t.triggers.values().find(|tr| &tr.function == name) {
                        return Err(ModelError::FunctionInUse {
                            function: name.clone(),
                            table: t.name.clone(),
                            trigger: trigger.name.clone(),
                        });
                    }
                }
                schema.functions.remove(name);
            }
            Op::CreateTrigger { table, trigger } => {
                if !schema.functions.contains_key(&trigger.function) {
                    return Err(ModelError::NoSuchFunction(trigger.function.clone()));
                }
                let t = existing_mut(schema, table)?;
                if t.triggers.contains_key(&trigger.name) {
                    return Err(ModelError::TriggerExists(
                        table.clone(),
                        trigger.name.clone(),
                    ));
                }
                t.triggers.insert(trigger.name.clone(), trigger.clone());
            }
            Op::DropTrigger { table, name } => {
                let t = existing_mut(schema, table)?;
                if t.triggers.remove(name).is_none() {
                    return Err(ModelError::NoSuchTrigger(table.clone(), name.clone()));
                }
            }
            Op::Sql(_) => {}
        }
        Ok(())
    }
}

/// The single primary key column of `table`, which batched ops range over.
pub fn single_column_key(table: &Table) -> Result<&Column, ModelError> {
    table
        .constraints
        .values()
        .find_map(|c| match &c.kind {
            ConstraintKind::PrimaryKey { columns } if columns.len() == 1 => {
                table.find_column(&columns[0])
            }
            _ => None,
        })
        .ok_or_else(|| ModelError::NoSingleColumnKey(table.name.clone()))
}

fn apply_constraint_using_index(
    schema: &mut Schema,
    table: &TableName,
    name: &str,
    index: &str,
    primary_key: bool,
) -> Result<(), ModelError> {
    let t = existing(schema, table)?;
    let Some(found) = t.indexes.get(index) else {
        return Err(ModelError::NoSuchIndex(table.clone(), index.to_owned()));
    };
    if !found.unique || found.predicate.is_some() || found.columns().count() != found.keys.len() {
        return Err(ModelError::IndexCannotBackConstraint(
            table.clone(),
            index.to_owned(),
        ));
    }
    if t.constraints.contains_key(name) {
        return Err(ModelError::ConstraintExists(table.clone(), name.to_owned()));
    }
    if primary_key
        && t.constraints
            .values()
            .any(|c| matches!(c.kind, ConstraintKind::PrimaryKey { .. }))
    {
        return Err(ModelError::SecondPrimaryKey(table.clone()));
    }
    if name != index {
        check_relation_free(schema, table.schema.as_deref(), name)?;
    }
    let columns: Vec<String> = found.columns().map(str::to_owned).collect();
    let t = existing_mut(schema, table)?;
    t.indexes.remove(index);
    let kind = if primary_key {
        for c in t.columns.iter_mut().filter(|c| columns.contains(&c.name)) {
            c.nullable = false;
        }
        ConstraintKind::PrimaryKey { columns }
    } else {
        ConstraintKind::Unique { columns }
    };
    t.constraints.insert(
        name.to_owned(),
        Constraint {
            name: name.to_owned(),
            kind,
        },
    );
    Ok(())
}

/// Whether `sql` names `column` as a word (not as part of a longer identifier).
pub(crate) fn mentions(sql: &str, column: &str) -> bool {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = sql.as_bytes();
    sql.match_indices(column).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + column.len()).copied();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn apply_type_change_online(
    schema: &mut Schema,
    table: &TableName,
    column: &str,
    ty: &ColumnType,
) -> Result<(), ModelError> {
    existing_column(schema, table, column)?;
    let t = existing(schema, table)?;
    let refuse = |why: String| ModelError::CannotChangeOnline {
        table: table.clone(),
        column: column.to_owned(),
        why,
    };
    let key = single_column_key(t)?;
    if key.name == column {
        return Err(refuse("it is the primary key".to_owned()));
    }
    for c in t.constraints.values() {
        let uses = match &c.kind {
            ConstraintKind::Check { expr, sqlite } => {
                mentions(expr, column) || sqlite.as_deref().is_some_and(|s| mentions(s, column))
            }
            kind => kind.columns().iter().any(|k| k == column),
        };
        if uses {
            return Err(refuse(format!("constraint {} uses it", c.name)));
        }
    }
    for other in schema.tables.values() {
        for c in other.constraints.values() {
            if let ConstraintKind::ForeignKey(fk) = &c.kind {
                if &fk.ref_table == table && fk.ref_columns.iter().any(|r| r == column) {
                    return Err(refuse(format!(
                        "foreign key {} of {} references it",
                        c.name, other.name
                    )));
                }
            }
        }
    }
    for index in t.indexes.values() {
        let in_expr = index.keys.iter().any(|k| match k {
            crate::schema::IndexKey::Expr(e) => mentions(e, column),
            crate::schema::IndexKey::Column(_) => false,
        });
        if in_expr
            || index
                .predicate
                .as_deref()
                .is_some_and(|p| mentions(p, column))
        {
            return Err(refuse(format!(
                "index {} uses it in an expression or predicate",
                index.name
            )));
        }
    }
    let t = existing_mut(schema, table)?;
    let at = t
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| ModelError::NoSuchColumn(table.clone(), column.to_owned()))?;
    let mut moved = t.columns.remove(at);
    moved.ty = ty.clone();
    // The new column was added last: that is where the database keeps it.
    t.columns.push(moved);
    Ok(())
}

/// Folds every op into `schema` in order; on error, says which op (by position) failed.
pub fn apply_all(schema: &mut Schema, ops: &[Op]) -> Result<(), (usize, Box<ModelError>)> {
    for (i, op) in ops.iter().enumerate() {
        op.apply(schema).map_err(|e| (i, Box::new(e)))?;
    }
    Ok(())
}

fn existing<'s>(schema: &'s Schema, table: &TableName) -> Result<&'s Table, ModelError> {
    schema
        .tables
        .get(table)
        .ok_or_else(|| ModelError::NoSuchTable(table.clone()))
}

fn existing_mut<'s>(
    schema: &'s mut Schema,
    table: &TableName,
) -> Result<&'s mut Table, ModelError> {
    schema
        .tables
        .get_mut(table)
        .ok_or_else(|| ModelError::NoSuchTable(table.clone()))
}

fn existing_column(schema: &Schema, table: &TableName, column: &str) -> Result<(), ModelError> {
    match existing(schema, table)?.find_column(column) {
        Some(_) => Ok(()),
        None => Err(ModelError::NoSuchColumn(table.clone(), column.to_owned())),
    }
}

fn check_schema_exists(schema: &Schema, name: Option<&str>) -> Result<(), ModelError> {
    match name {
        Some(s) if !schema.schemas.contains(s) => Err(ModelError::NoSuchSchema(s.to_owned())),
        _ => Ok(()),
    }
}

fn check_relation_free(
    schema: &Schema,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ModelError> {
    match schema.relation_owner(namespace, name) {
        Some(owner) => Err(ModelError::RelationExists {
            name: name.to_owned(),
            owner: owner.clone(),
        }),
        None => Ok(()),
    }
}

/// Every column a table's constraints and indexes name exists, and every foreign key points at
/// an existing table and columns.
fn check_table_consistent(schema: &Schema, table: &Table) -> Result<(), ModelError> {
    let has = |c: &str| table.find_column(c).is_some();
    for constraint in table.constraints.values() {
        if let Some(missing) = constraint.kind.columns().iter().find(|c| !has(c)) {
            return Err(ModelError::NoSuchColumn(
                table.name.clone(),
                missing.clone(),
            ));
        }
        if let ConstraintKind::ForeignKey(fk) = &constraint.kind {
            let target = if fk.ref_table == table.name {
                table
            } else {
                existing(schema, &fk.ref_table)?
            };
            if let Some(missing) = fk
                .ref_columns
                .iter()
                .find(|c| target.find_column(c).is_none())
            {
                return Err(ModelError::NoSuchColumn(
                    fk.ref_table.clone(),
                    missing.clone(),
                ));
            }
            if !has_key(target, &fk.ref_columns) {
                return Err(ModelError::NoMatchingKey {
                    table: fk.ref_table.clone(),
                    columns: fk.ref_columns.clone(),
                });
            }
        }
    }
    for index in table.indexes.values() {
        if let Some(missing) = index.columns().find(|c| !has(c)) {
            return Err(ModelError::NoSuchColumn(
                table.name.clone(),
                missing.to_owned(),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &table.columns {
        if !seen.insert(c.name.as_str()) {
            return Err(ModelError::ColumnExists(table.name.clone(), c.name.clone()));
        }
    }
    Ok(())
}

/// Whether a primary key, unique constraint or plain unique index of `table` covers exactly
/// `columns` (in any order), as PostgreSQL requires of a foreign key's target.
fn has_key(table: &Table, columns: &[String]) -> bool {
    let wanted: std::collections::BTreeSet<&str> = columns.iter().map(String::as_str).collect();
    let by_constraint = table.constraints.values().any(|c| match &c.kind {
        ConstraintKind::PrimaryKey { columns } | ConstraintKind::Unique { columns } => {
            columns
                .iter()
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                == wanted
        }
        _ => false,
    });
    let by_index = table.indexes.values().any(|i| {
        i.unique
            && i.predicate.is_none()
            && i.keys.len() == i.columns().count()
            && i.columns().collect::<std::collections::BTreeSet<_>>() == wanted
    });
    by_constraint || by_index
}

/// Refuses to drop `name` from a table when a foreign key (of any table) that pointed at it
/// would be left without a key to rest on; `candidate` is the table without it.
fn check_keys_still_serve(
    schema: &Schema,
    candidate: &Table,
    name: &str,
) -> Result<(), ModelError> {
    for other in schema.tables.values() {
        let referring = if other.name == candidate.name {
            candidate
        } else {
            other
        };
        for c in referring.constraints.values() {
            if let ConstraintKind::ForeignKey(fk) = &c.kind {
                if fk.ref_table == candidate.name && !has_key(candidate, &fk.ref_columns) {
                    return Err(ModelError::KeyInUse(Box::new(KeyInUse {
                        table: candidate.name.clone(),
                        name: name.to_owned(),
                        by: other.name.clone(),
                        constraint: c.name.clone(),
                    })));
                }
            }
        }
    }
    Ok(())
}

/// Refuses when another table's foreign key points at `table` (or at `column` of it).
fn check_not_referenced(
    schema: &Schema,
    table: &TableName,
    column: Option<&str>,
) -> Result<(), ModelError> {
    for other in schema.tables.values() {
        for c in other.constraints.values() {
            let ConstraintKind::ForeignKey(fk) = &c.kind else {
                continue;
            };
            let self_reference = &other.name == table;
            let hits = &fk.ref_table == table
                && column.is_none_or(|col| fk.ref_columns.iter().any(|r| r == col));
            if hits && !(self_reference && column.is_none()) {
                return Err(ModelError::StillReferenced {
                    table: table.clone(),
                    by: other.name.clone(),
                    constraint: c.name.clone(),
                });
            }
        }
    }
    Ok(())
}

fn rename_table(schema: &mut Schema, from: &TableName, to: TableName) -> Result<(), ModelError> {
    if existing(schema, from)?
        .relation_names()
        .any(|r| r != from.name && r == to.name)
    {
        return Err(ModelError::RelationExists {
            name: to.name,
            owner: from.clone(),
        });
    }
    check_schema_exists(schema, to.schema.as_deref())?;
    if schema.tables.contains_key(&to) {
        return Err(ModelError::TableExists(to));
    }
    let mut table = schema
        .tables
        .remove(from)
        .ok_or_else(|| ModelError::NoSuchTable(from.clone()))?;
    let names: Vec<String> = table.relation_names().map(str::to_owned).collect();
    // The table is out of the schema here, so only other tables' relations can clash.
    for name in &names {
        let check_name = if name == &from.name { &to.name } else { name };
        if let Err(e) = check_relation_free(schema, to.schema.as_deref(), check_name) {
            schema.tables.insert(from.clone(), table);
            return Err(e);
        }
    }
    table.name = to.clone();
    for other in schema.tables.values_mut() {
        for c in other.constraints.values_mut() {
            if let ConstraintKind::ForeignKey(fk) = &mut c.kind {
                if &fk.ref_table == from {
                    fk.ref_table = to.clone();
                }
            }
        }
    }
    for c in table.constraints.values_mut() {
        if let ConstraintKind::ForeignKey(fk) = &mut c.kind {
            if &fk.ref_table == from {
                fk.ref_table = to.clone();
            }
        }
    }
    schema.tables.insert(to, table);
    Ok(())
}

fn rename_column(schema: &mut Schema, table: &TableName, from: &str, to: &str) {
    let rename = |cols: &mut Vec<String>| {
        for c in cols.iter_mut().filter(|c| *c == from) {
            *c = to.to_owned();
        }
    };
    for other in schema.tables.values_mut() {
        let is_self = &other.name == table;
        for c in other.constraints.values_mut() {
            match &mut c.kind {
                ConstraintKind::ForeignKey(fk) => {
                    if is_self {
                        rename(&mut fk.columns);
                    }
                    if &fk.ref_table == table {
                        rename(&mut fk.ref_columns);
                    }
                }
                ConstraintKind::PrimaryKey { columns } | ConstraintKind::Unique { columns }
                    if is_self =>
                {
                    rename(columns)
                }
                _ => {}
            }
        }
        if is_self {
            for c in other.columns.iter_mut().filter(|c| c.name == from) {
                c.name = to.to_owned();
            }
            for index in other.indexes.values_mut() {
                for key in index.keys.iter_mut() {
                    if matches!(key, crate::schema::IndexKey::Column(c) if c == from) {
                        *key = crate::schema::IndexKey::Column(to.to_owned());
                    }
                }
            }
        }
    }
}

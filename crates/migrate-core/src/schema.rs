//! The schema as a plain value: what a database holds, independent of any dialect.
//!
//! Constraints and indexes are kept in maps keyed by name, so two schemas that hold the same
//! objects compare equal whatever order they were created in; columns keep their order because
//! the database does too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A table's name, optionally qualified by a database schema (`legacy.users_simple`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// The database schema; `None` is the default one (`public` on PostgreSQL).
    pub schema: Option<String>,
    /// The table's own name.
    pub name: String,
}

impl TableName {
    /// A table in the default schema.
    pub fn new(name: impl Into<String>) -> Self {
        TableName {
            schema: None,
            name: name.into(),
        }
    }

    /// A table in a named schema.
    pub fn qualified(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }
}

impl From<&str> for TableName {
    fn from(value: &str) -> Self {
        match value.split_once('.') {
            Some((schema, name)) => TableName::qualified(schema, name),
            None => TableName::new(value),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A column's type, in the vocabulary of the model rather than of one database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnType {
    /// A 128-bit UUID.
    Uuid,
    /// Variable-length text with an optional maximum length.
    Varchar(Option<u32>),
    /// Unbounded text.
    Text,
    /// True or false.
    Boolean,
    /// 16-bit integer.
    SmallInt,
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    BigInt,
    /// Exact decimal with optional precision and scale.
    Numeric(Option<(u32, u32)>),
    /// Double-precision float.
    Double,
    /// Date and time without a time zone.
    Timestamp,
    /// Date and time with a time zone (an instant).
    TimestampTz,
    /// Calendar date.
    Date,
    /// JSON kept as text.
    Json,
    /// JSON kept in a binary, indexable form.
    Jsonb,
    /// An IPv4 or IPv6 host or network address.
    Inet,
    /// Raw bytes.
    Bytea,
    /// A type the model has no name for, as the database spells it (found by introspection;
    /// rendered verbatim).
    Other(String),
}

impl ColumnType {
    /// `varchar(len)`.
    pub fn varchar(len: u32) -> Self {
        ColumnType::Varchar(Some(len))
    }
}

/// A server-side default value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DefaultExpr {
    /// A boolean literal.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A text literal (rendered quoted).
    Text(String),
    /// A JSON document literal, e.g. `{}` or `[]`.
    Json(String),
    /// The current transaction's timestamp.
    Now,
    /// A random (version 4) UUID.
    RandomUuid,
    /// The current time as a naive UTC timestamp, for a `timestamp` (without time zone) column
    /// that holds UTC: `(now() AT TIME ZONE 'utc')` on PostgreSQL, where a plain `now()` would
    /// store the inserting session's local time; `CURRENT_TIMESTAMP` on SQLite (UTC already).
    UtcNow,
    /// A random UUID in the form SQLAlchemy's `Uuid` type reads back as its own:
    /// `gen_random_uuid()` on PostgreSQL (native `uuid`); on SQLite 32 lowercase hex digits
    /// without hyphens (`lower(hex(randomblob(16)))`), the text SQLAlchemy binds and compares
    /// there, where [`DefaultExpr::RandomUuid`]'s canonical 36-character text is never found by
    /// an equality lookup.
    RandomUuidHex,
    /// Any other expression, verbatim; it is the revision author's job to keep it portable.
    Sql(String),
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// The default the server fills in, if any.
    pub default: Option<DefaultExpr>,
}

impl Column {
    /// A nullable column without default.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            default: None,
        }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }

    /// The same column, with a server default.
    pub fn default(mut self, default: DefaultExpr) -> Self {
        self.default = Some(default);
        self
    }
}

/// What a foreign key does when the row it points at is deleted or its key updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReferentialAction {
    /// Refuse the change (the default).
    #[default]
    NoAction,
    /// Refuse the change immediately, even in a deferred check.
    Restrict,
    /// Delete or update the referring rows too.
    Cascade,
    /// Set the referring columns to NULL.
    SetNull,
    /// Set the referring columns to their defaults.
    SetDefault,
}

/// A foreign key's target and behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForeignKey {
    /// Referring columns, in this table.
    pub columns: Vec<String>,
    /// The referenced table.
    pub ref_table: TableName,
    /// The referenced columns.
    pub ref_columns: Vec<String>,
    /// Behaviour on delete of the referenced row.
    pub on_delete: ReferentialAction,
    /// Behaviour on update of the referenced key.
    pub on_update: ReferentialAction,
}

/// What a constraint enforces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConstraintKind {
    /// The primary key.
    PrimaryKey {
        /// Key columns.
        columns: Vec<String>,
    },
    /// A unique constraint.
    Unique {
        /// Columns that are unique together.
        columns: Vec<String>,
    },
    /// A foreign key.
    ForeignKey(ForeignKey),
    /// A CHECK constraint with its boolean expression.
    Check {
        /// The expression, as PostgreSQL SQL (and as SQLite SQL when `sqlite` is `None`).
        expr: String,
        /// The SQLite spelling, for an expression that only PostgreSQL understands (a regular
        /// expression, a cast): the same rule written the SQLite way.
        sqlite: Option<String>,
    },
}

impl ConstraintKind {
    /// The table's own columns this constraint names.
    pub fn columns(&self) -> &[String] {
        match self {
            ConstraintKind::PrimaryKey { columns } | ConstraintKind::Unique { columns } => columns,
            ConstraintKind::ForeignKey(fk) => &fk.columns,
            ConstraintKind::Check { .. } => &[],
        }
    }

    /// Whether the database backs this constraint with an index of the same name.
    pub fn has_index(&self) -> bool {
        matches!(
            self,
            ConstraintKind::PrimaryKey { .. } | ConstraintKind::Unique { .. }
        )
    }
}

/// A named table constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    /// The constraint's name, as the database reports it.
    pub name: String,
    /// What it enforces.
    pub kind: ConstraintKind,
}

/// One key of an index: a column, or an expression such as `lower(email)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    /// A plain column.
    Column(String),
    /// An expression over the table's columns, as SQL.
    Expr(String),
}

/// A named index on a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Index {
    /// The index's name (unique among the relations of its schema).
    pub name: String,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// The indexed keys, in order.
    pub keys: Vec<IndexKey>,
    /// A partial index's `WHERE` predicate.
    pub predicate: Option<String>,
}

impl Index {
    /// A non-unique index on plain columns.
    pub fn new(name: impl Into<String>, columns: &[&str]) -> Self {
        Index {
            name: name.into(),
            unique: false,
            keys: columns
                .iter()
                .map(|c| IndexKey::Column((*c).to_owned()))
                .collect(),
            predicate: None,
        }
    }

    /// An index on arbitrary keys.
    pub fn on_keys(name: impl Into<String>, keys: Vec<IndexKey>) -> Self {
        Index {
            name: name.into(),
            unique: false,
            keys,
            predicate: None,
        }
    }

    /// The same index, unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The same index, partial.
    pub fn filtered(mut self, predicate: impl Into<String>) -> Self {
        self.predicate = Some(predicate.into());
        self
    }

    /// The plain columns among the keys.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| match k {
            IndexKey::Column(c) => Some(c.as_str()),
            IndexKey::Expr(_) => None,
        })
    }
}

/// When a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerTiming {
    /// Before the row changes (the function may change the new row).
    Before,
    /// After the row changed.
    After,
}

/// What fires a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerEvent {
    /// A row is inserted.
    Insert,
    /// A row is updated.
    Update,
    /// A row is deleted.
    Delete,
}

/// A row-level trigger on a table, calling a trigger function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Trigger {
    /// The trigger's name (unique per table).
    pub name: String,
    /// Before or after the change.
    pub timing: TriggerTiming,
    /// The events that fire it, in a stable order.
    pub events: Vec<TriggerEvent>,
    /// The trigger function it calls.
    pub function: TableName,
}

/// A trigger function (PL/pgSQL), called by triggers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Function {
    /// The function's name, optionally schema-qualified.
    pub name: TableName,
    /// Its PL/pgSQL body, between `BEGIN` and `END` included, exactly as the database keeps it.
    pub body: String,
}

/// A table with its columns, constraints and indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: TableName,
    /// Columns, in their physical order.
    pub columns: Vec<Column>,
    /// Constraints by name.
    pub constraints: BTreeMap<String, Constraint>,
    /// Indexes by name (those backing a primary key or unique constraint are not listed here).
    pub indexes: BTreeMap<String, Index>,
    /// Row-level triggers by name.
    pub triggers: BTreeMap<String, Trigger>,
    /// The CHECK and foreign key constraints added `NOT VALID` and not validated since: the
    /// database enforces them on new writes but has not proven them for the rows it had
    /// (PostgreSQL's `pg_constraint.convalidated = false`). Lint reads it: only a validated CHECK
    /// proves `col IS NOT NULL` to `SET NOT NULL`.
    pub not_valid: BTreeSet<String>,
}

impl Table {
    /// An empty table; add columns and constraints with the builder methods.
    pub fn new(name: impl Into<TableName>) -> Self {
        Table {
            name: name.into(),
            columns: Vec::new(),
            constraints: BTreeMap::new(),
            indexes: BTreeMap::new(),
            triggers: BTreeMap::new(),
            not_valid: BTreeSet::new(),
        }
    }

    /// Adds a column.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Adds a constraint.
    pub fn constraint(mut self, name: impl Into<String>, kind: ConstraintKind) -> Self {
        let name = name.into();
        self.constraints
            .insert(name.clone(), Constraint { name, kind });
        self
    }

    /// Adds the primary key.
    pub fn primary_key(self, name: impl Into<String>, columns: &[&str]) -> Self {
        self.constraint(
            name,
            ConstraintKind::PrimaryKey {
                columns: strings(columns),
            },
        )
    }

    /// Adds a unique constraint.
    pub fn unique(self, name: impl Into<String>, columns: &[&str]) -> Self {
        self.constraint(
            name,
            ConstraintKind::Unique {
                columns: strings(columns),
            },
        )
    }

    /// Adds a foreign key on `columns` referencing `ref_table(ref_columns)`.
    pub fn foreign_key(
        self,
        name: impl Into<String>,
        columns: &[&str],
        ref_table: impl Into<TableName>,
        ref_columns: &[&str],
        on_delete: ReferentialAction,
    ) -> Self {
        self.constraint(
            name,
            ConstraintKind::ForeignKey(ForeignKey {
                columns: strings(columns),
                ref_table: ref_table.into(),
                ref_columns: strings(ref_columns),
                on_delete,
                on_update: ReferentialAction::NoAction,
            }),
        )
    }

    /// Adds a CHECK constraint whose expression both dialects understand.
    pub fn check(self, name: impl Into<String>, expr: impl Into<String>) -> Self {
        self.constraint(
            name,
            ConstraintKind::Check {
                expr: expr.into(),
                sqlite: None,
            },
        )
    }

    /// Adds a CHECK constraint spelt once for PostgreSQL and once for SQLite.
    pub fn check_per_dialect(
        self,
        name: impl Into<String>,
        postgres: impl Into<String>,
        sqlite: impl Into<String>,
    ) -> Self {
        self.constraint(
            name,
            ConstraintKind::Check {
                expr: postgres.into(),
                sqlite: Some(sqlite.into()),
            },
        )
    }

    /// Adds an index (kept in the model with the table; created by its own op in revisions).
    pub fn index(mut self, index: Index) -> Self {
        self.indexes.insert(index.name.clone(), index);
        self
    }

    /// Adds a trigger (kept in the model with the table; created by its own op in revisions).
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.insert(trigger.name.clone(), trigger);
        self
    }

    /// The column of that name, if any.
    pub fn find_column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The names of relations this table brings into its schema's namespace: itself, its indexes,
    /// and the indexes backing its primary key and unique constraints.
    pub fn relation_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.name.as_str())
            .chain(self.indexes.keys().map(String::as_str))
            .chain(
                self.constraints
                    .values()
                    .filter(|c| c.kind.has_index())
                    .map(|c| c.name.as_str()),
            )
    }
}

/// A whole database schema: every table, and the extra database schemas it created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// Tables by name.
    pub tables: BTreeMap<TableName, Table>,
    /// Database schemas created beyond the default one.
    pub schemas: BTreeSet<String>,
    /// Trigger functions by name.
    pub functions: BTreeMap<TableName, Function>,
}

impl Schema {
    /// The empty schema: the state at `base`.
    pub fn new() -> Self {
        Schema::default()
    }

    /// The table of that name, if any.
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Which table, if any, owns a relation (table or index) of that name in that schema.
    pub fn relation_owner(&self, schema: Option<&str>, relation: &str) -> Option<&TableName> {
        self.tables
            .values()
            .filter(|t| t.name.schema.as_deref() == schema)
            .find(|t| t.relation_names().any(|r| r == relation))
            .map(|t| &t.name)
    }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

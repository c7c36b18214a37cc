//! SQLite rendering (SQLite 3.35 or later).
//!
//! SQLite is the embedded default, so every op renders here, or is refused with
//! [`RenderError::Unsupported`] naming what cannot be said; nothing is skipped silently except
//! what has no meaning on SQLite (database schemas as objects, trigger functions as objects).
//!
//! # Types
//!
//! SQLite accepts any declared type name and derives a column's *affinity* from it (the rules of
//! <https://sqlite.org/datatype3.html#determination_of_column_affinity>: `INT` gives INTEGER;
//! `CHAR`, `CLOB` or `TEXT` gives TEXT; `BLOB` gives BLOB; `REAL`, `FLOA` or `DOUB` gives REAL;
//! anything else NUMERIC). Each model type gets its own declared name, so that introspection maps
//! it back without guessing, and an affinity that never changes what the application stored:
//!
//! | model | declared | affinity | why it is safe |
//! |---|---|---|---|
//! | `Uuid` | `UUID_TEXT` | TEXT | see below |
//! | `Varchar(n)`, `Text` | `VARCHAR(n)`, `TEXT` | TEXT | |
//! | `Boolean` | `BOOLEAN` | NUMERIC | stored as 0/1 (`TRUE`/`FALSE` are 1/0 since 3.23) |
//! | `SmallInt`, `Integer`, `BigInt` | `SMALLINT`, `INTEGER`, `BIGINT` | INTEGER | 64-bit storage |
//! | `Numeric(p, s)` | `NUMERIC(p,s)` | NUMERIC | as exact as SQLite gets (integers, else REAL) |
//! | `Double` | `DOUBLE` | REAL | |
//! | `Timestamp`, `TimestampTz`, `Date` | `TIMESTAMP`, `TIMESTAMPTZ`, `DATE` | NUMERIC | ISO-8601 text never reads as a number, so it stays text |
//! | `Json`, `Jsonb` | `JSON_TEXT`, `JSONB_TEXT` | TEXT | see below |
//! | `Inet` | `INET_TEXT` | TEXT | see below |
//! | `Bytea` | `BLOB` | BLOB | |
//! | `Other(name)` | `name` verbatim | by name | |
//!
//! The names `UUID`, `JSON`, `JSONB` and `INET` would get NUMERIC affinity, which converts any
//! text that looks like a number: a UUID written as 32 hex digits (SQLAlchemy's form on SQLite)
//! that happens to hold only digits, or digits around one `e` (`1234e5...`), would be stored as
//! a REAL and lost, about once per million ids; a JSON document `1.50` would come back as `1.5`,
//! which `json` (unlike `jsonb`) must not do. The `_TEXT` suffix gives them TEXT affinity and keeps
//! the PostgreSQL name readable: introspection strips it. `JSONB_TEXT` also says that the value is
//! JSON text, not SQLite's own binary JSONB (3.45) format.
//!
//! Instants (`TIMESTAMPTZ`) are kept as UTC text, `YYYY-MM-DD HH:MM:SS[.fff]`, which is what
//! `CURRENT_TIMESTAMP` writes and what the original tooling wrote for naive UTC times: on SQLite
//! `timestamp` and `timestamptz` hold the same text, and only the declared name differs.
//!
//! # Defaults
//!
//! `Bool` → `TRUE`/`FALSE` (not `1`/`0`, which introspection could not tell from `Int`); `Now` →
//! `CURRENT_TIMESTAMP` (UTC, one value per statement where PostgreSQL's `now()` is one per
//! transaction); `RandomUuid` → an expression building a version 4 UUID in canonical lowercase
//! text from `randomblob` (version nibble `4`, variant nibble one of `89ab`), evaluated per row;
//! `Text` and `Json` → quoted literals; `Sql(expr)` → `(expr)` verbatim: keeping it portable is
//! the revision author's job, as it is for CHECK expressions and index expressions and
//! predicates, which are rendered verbatim too. The model has one spelling of each, PostgreSQL's,
//! so an expression that uses what only PostgreSQL understands (`::` casts, the `~` regular
//! expression operators, `ILIKE`, `SIMILAR TO`, functions such as `now()` or `char_length()`) is
//! refused when rendered, before anything runs, rather than failing halfway through a revision
//! or, worse, in the application's first INSERT. The check is a scan, not a parser: what it
//! misses still fails on SQLite itself.
//!
//! # Database schemas
//!
//! SQLite's only namespaces are attached database files, which cannot be attached inside a
//! transaction nor referenced by a foreign key. So a table of schema `legacy` lives in the main
//! database under the name `legacy.users_simple` (one quoted identifier holding a dot), and so do
//! its indexes (`legacy.ix_...`): PostgreSQL scopes index names per schema, SQLite per database.
//! No model name holds a dot (PostgreSQL would need it quoted), so the mapping is unambiguous,
//! and it is the model's own spelling: introspection turns a name back with
//! `TableName::from(name)`. `CreateSchema` and `DropSchema` render nothing; `SetTableSchema` is a
//! rename (with its indexes and triggers recreated under their new names).
//!
//! # Triggers
//!
//! SQLite has no trigger functions: `CreateFunction` and `DropFunction` render nothing, and each
//! trigger is written out from its function's body, found in the schema the op applies to. One
//! body is understood, the identity service's `updated_at` stamp,
//! `BEGIN NEW.<column> = now(); RETURN NEW; END;` (any spacing, `:=`, `CURRENT_TIMESTAMP`, or
//! the naive UTC time `now() AT TIME ZONE 'utc'`, the same text on SQLite), called
//! `BEFORE UPDATE`. It becomes an `AFTER UPDATE` trigger that stamps the row it follows:
//!
//! ```sql
//! CREATE TRIGGER "users.set_updated_at" AFTER UPDATE ON users FOR EACH ROW
//! WHEN NEW.updated_at IS NOT CURRENT_TIMESTAMP
//! BEGIN UPDATE users SET updated_at = CURRENT_TIMESTAMP WHERE rowid = NEW.rowid; END
//! ```
//!
//! Like PostgreSQL's, it overwrites whatever the UPDATE wrote; the `WHEN` stops it from running
//! again on its own UPDATE when `recursive_triggers` is on (a row already holding the current time
//! has nothing to change). Any other body, timing or event is refused. PostgreSQL scopes trigger
//! names per table and SQLite per database, so a trigger is named `<table>.<trigger>` (the table's
//! SQLite name): a rename or a move of the table recreates its triggers.
//!
//! # Table rebuilds
//!
//! SQLite's ALTER TABLE can add, drop and rename columns and rename tables, nothing else. A type,
//! nullability, default or constraint change, and an added column SQLite refuses to add in place
//! (NOT NULL without a default, or a non-constant default), rebuild the table inside the
//! revision's transaction, following <https://sqlite.org/lang_altertable.html#otheralter>:
//! create `_new_<t>` with the definition after the op, copy every column the two share with
//! `INSERT ... SELECT`, drop `<t>`, rename `_new_<t>` to `<t>`, recreate its indexes and triggers.
//! A self-referencing foreign key is written against `_new_<t>`, which the rename turns back into
//! `<t>`, so that dropping the old table cannot touch the new one's rows.
//!
//! Values are copied as they are. A type change's `USING` is PostgreSQL SQL; the conversions the
//! identity schema uses are the identity on SQLite's storage (`col AT TIME ZONE 'UTC'`: instants
//! and naive UTC times are the same text; `col::jsonb`, `col::inet`, `abbrev(col)`, any single
//! cast: the same text, which the new declared type's affinity takes as it is), so they are
//! accepted; any other `USING` is refused rather than ignored.
//!
//! Foreign keys: a rebuild drops the old table, and with `PRAGMA foreign_keys = ON` SQLite's
//! DROP TABLE first deletes every row, running the ON DELETE actions of the tables that reference
//! it: CASCADE would delete their rows, SET NULL would empty their keys. `PRAGMA defer_foreign_keys`
//! does not prevent those actions (it only defers violation checks), and `PRAGMA foreign_keys`
//! cannot change inside a transaction. So the SQLite driver must run migrations with
//! `foreign_keys = OFF`, set before BEGIN (as Django's schema editor does), and a rebuild of a table
//! that other tables reference refuses to run when it is ON, with a message saying so. Inside the
//! rebuild, `defer_foreign_keys = ON` lets the copy insert rows in any order when foreign keys are
//! enforced. An added or validated foreign key is checked against the rows with
//! `pragma_foreign_key_check`, since with `foreign_keys = OFF` nothing else would check it.
//!
//! A refusal is a statement that fails with the reason as its message: a row is inserted, when
//! the condition holds, into a temporary table whose CHECK constraint is named after the reason
//! (`CHECK constraint failed: <reason>`); the revision's transaction then rolls back whole.
//!
//! `NOT VALID` has no SQLite counterpart: the rebuild checks every copied row, so a constraint is
//! validated when it is added (a row that breaks it fails the revision loudly), and
//! `ValidateConstraint` renders only the foreign-key check. `CONCURRENTLY` is ignored: SQLite has
//! a single writer, and every statement here is transactional.

use super::{action, column_list, quote_ident, quote_literal, Dialect, RenderError, Statement};
use crate::op::{ColumnChange, Op};
use crate::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, Function, Index, IndexKey,
    ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use std::collections::BTreeMap;

/// Prefix of the table a rebuild creates before it takes the old one's name.
const REBUILD_PREFIX: &str = "_new_";

/// The temporary table whose CHECK constraint carries a refusal's reason.
const REFUSAL_TABLE: &str = "_identity_migrate_refusal";

/// The statements of `op` against `before`, or why SQLite cannot express it.
pub(super) fn render(op: &Op, before: &Schema) -> Result<Vec<Statement>, RenderError> {
    let one = |sql: String| Ok(vec![Statement::new(sql)]);
    match op {
        // A schema is a name prefix here (see the module's documentation): nothing to create.
        Op::CreateSchema { .. } | Op::DropSchema { .. } => Ok(Vec::new()),
        Op::CreateTable(table) => {
            check_portable(table)?;
            let name = sqlite_name(&table.name);
            let mut out = vec![Statement::new(create_table(table, &name))];
            out.extend(
                table
                    .indexes
                    .values()
                    .map(|index| Statement::new(create_index(&table.name, index))),
            );
            for trigger in table.triggers.values() {
                out.push(Statement::new(create_trigger(
                    table,
                    trigger,
                    &before.functions,
                )?));
            }
            Ok(out)
        }
        // Its indexes and triggers go with it.
        Op::DropTable { table } => one(format!("DROP TABLE {}", table_ref(table))),
        Op::SetTableSchema { table, schema } => {
            let to = TableName {
                schema: schema.clone(),
                name: table.name.clone(),
            };
            rename_table(op, before, table, &to)
        }
        Op::RenameTable { table, to } => {
            let to = TableName {
                schema: table.schema.clone(),
                name: to.clone(),
            };
            rename_table(op, before, table, &to)
        }
        Op::AddColumn { table, column } => {
            check_portable_column(table, column)?;
            // ADD COLUMN refuses a non-constant default, and a NOT NULL column without a default
            // even on an empty table; a rebuild gives PostgreSQL's behaviour (each existing row
            // gets the default evaluated for it; NOT NULL without default fails only if rows
            // exist).
            let in_place = match &column.default {
                Some(d) => is_constant(d),
                None => column.nullable,
            };
            if in_place {
                one(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    table_ref(table),
                    column_def(column)
                ))
            } else {
                rebuild(op, before, table, RebuildCheck::None)
            }
        }
        Op::DropColumn { table, column } => {
            if can_drop_in_place(existing(before, table)?, column) {
                one(format!(
                    "ALTER TABLE {} DROP COLUMN {}",
                    table_ref(table),
                    q(column)
                ))
            } else {
                rebuild(op, before, table, RebuildCheck::None)
            }
        }
        // Since 3.26 this also rewrites indexes, CHECKs, triggers and other tables' foreign keys.
        Op::RenameColumn { table, from, to } => one(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            table_ref(table),
            q(from),
            q(to)
        )),
        Op::AlterColumn {
            table,
            column,
            change,
        } => {
            if *change == ColumnChange::default() {
                return Ok(Vec::new());
            }
            if let Some((_, Some(using))) = &change.ty {
                if !is_identity_conversion(column, using) {
                    return Err(unsupported(format!(
                        "convert {table}.{column} with the PostgreSQL expression `{using}`: a \
                         rebuild copies values as they are, which is right only for conversions \
                         that keep SQLite's stored text (a cast, `AT TIME ZONE 'UTC'`, `abbrev`); \
                         convert the values with an Op::Sql that has a SQLite body instead"
                    )));
                }
            }
            rebuild(op, before, table, RebuildCheck::None)
        }
        Op::CreateIndex { table, index, .. } => {
            check_portable_index(table, index)?;
            one(create_index(table, index))
        }
        Op::DropIndex { table, name, .. } => one(format!(
            "DROP INDEX {}",
            q(&relation(table.schema.as_deref(), name))
        )),
        Op::AddConstraint {
            table, constraint, ..
        } => {
            let check = if matches!(constraint.kind, ConstraintKind::ForeignKey(_)) {
                RebuildCheck::ForeignKeys
            } else {
                RebuildCheck::None
            };
            rebuild(op, before, table, check)
        }
        Op::ValidateConstraint { table, name } => {
            let t = existing(before, table)?;
            match t.constraints.get(name).map(|c| &c.kind) {
                // Rows written with foreign keys off since the constraint was added may break it.
                Some(ConstraintKind::ForeignKey(_)) => Ok(foreign_key_check(table)),
                // SQLite checked every row when the constraint was added, and checks every write.
                Some(_) => Ok(Vec::new()),
                None => Err(unsupported(format!(
                    "validate constraint {name} on {table}: the table has no such constraint"
                ))),
            }
        }
        Op::DropConstraint { table, .. } => rebuild(op, before, table, RebuildCheck::None),
        // Trigger functions do not exist on SQLite: each trigger is written out in full.
        Op::CreateFunction(_) | Op::DropFunction { .. } => Ok(Vec::new()),
        Op::CreateTrigger { table, trigger } => one(create_trigger(
            existing(before, table)?,
            trigger,
            &before.functions,
        )?),
        Op::DropTrigger { table, name } => {
            one(format!("DROP TRIGGER {}", q(&trigger_name(table, name))))
        }
        // SQLite has one writer: the plain forms are what can be had, and they are atomic.
        Op::AddConstraintUsingIndex { table, .. } => rebuild(op, before, table, RebuildCheck::None),
        Op::Backfill(backfill) => {
            let mut sql = format!("UPDATE {} SET ", table_ref(&backfill.table));
            for (i, (column, expr)) in backfill.set.iter().enumerate() {
                refuse_postgres_only(&format!("backfill {}.{column}", backfill.table), expr)?;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("{} = {expr}", q(column)));
            }
            if let Some(filter) = &backfill.filter {
                refuse_postgres_only(&format!("backfill filter of {}", backfill.table), filter)?;
                sql.push_str(" WHERE ");
                sql.push_str(filter);
            }
            one(sql)
        }
        Op::AlterColumnTypeOnline {
            table,
            column,
            using,
            ..
        } => {
            if let Some(using) = using {
                if !is_identity_conversion(column, using) {
                    return Err(unsupported(format!(
                        "convert {table}.{column} with the PostgreSQL expression `{using}` (see \
                         Op::AlterColumn)"
                    )));
                }
            }
            rebuild(op, before, table, RebuildCheck::None)
        }
        // `None` is the model saying this op does not apply to SQLite.
        Op::Sql(raw) => Ok(raw
            .sqlite
            .as_ref()
            .map(|body| vec![Statement::new(body.trim().trim_end_matches(';').to_owned())])
            .unwrap_or_default()),
    }
}

/// Nothing to clean up: every SQLite statement is transactional.
pub(super) fn cleanup(_op: &Op) -> Vec<Statement> {
    Vec::new()
}

fn unsupported(what: String) -> RenderError {
    RenderError::Unsupported {
        dialect: Dialect::Sqlite,
        what,
    }
}

fn existing<'s>(schema: &'s Schema, table: &TableName) -> Result<&'s Table, RenderError> {
    schema
        .table(table)
        .ok_or_else(|| unsupported(format!("change table {table}: it does not exist")))
}

/// Quotes an identifier when PostgreSQL or SQLite needs it quoted.
fn q(ident: &str) -> String {
    let quoted = quote_ident(ident);
    if !quoted.starts_with('"') && SQLITE_KEYWORDS.binary_search(&ident).is_ok() {
        format!("\"{ident}\"")
    } else {
        quoted
    }
}

/// A table's name in the main database: `<schema>.<name>` outside the default schema.
fn sqlite_name(table: &TableName) -> String {
    relation(table.schema.as_deref(), &table.name)
}

/// A schema-scoped relation's (table's or index's) name in the main database.
fn relation(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{s}.{name}"),
        None => name.to_owned(),
    }
}

/// A trigger's name in the main database: SQLite scopes trigger names per database.
fn trigger_name(table: &TableName, trigger: &str) -> String {
    format!("{}.{trigger}", sqlite_name(table))
}

fn table_ref(table: &TableName) -> String {
    q(&sqlite_name(table))
}

fn type_sql(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Uuid => "UUID_TEXT".into(),
        ColumnType::Varchar(Some(n)) => format!("VARCHAR({n})"),
        ColumnType::Varchar(None) => "VARCHAR".into(),
        ColumnType::Text => "TEXT".into(),
        ColumnType::Boolean => "BOOLEAN".into(),
        ColumnType::SmallInt => "SMALLINT".into(),
        ColumnType::Integer => "INTEGER".into(),
        ColumnType::BigInt => "BIGINT".into(),
        ColumnType::Numeric(Some((p, s))) => format!("NUMERIC({p},{s})"),
        ColumnType::Numeric(None) => "NUMERIC".into(),
        ColumnType::Double => "DOUBLE".into(),
        ColumnType::Timestamp => "TIMESTAMP".into(),
        ColumnType::TimestampTz => "TIMESTAMPTZ".into(),
        ColumnType::Date => "DATE".into(),
        ColumnType::Json => "JSON_TEXT".into(),
        ColumnType::Jsonb => "JSONB_TEXT".into(),
        ColumnType::Inet => "INET_TEXT".into(),
        ColumnType::Bytea => "BLOB".into(),
        ColumnType::Other(name) => name.clone(),
    }
}

/// A version 4 UUID as canonical lowercase text. A DEFAULT cannot hold a subquery, so each group
/// draws its own random bytes; the third group starts with the version `4`, the fourth with a
/// variant digit `8`-`b` (`random() & 3` is 0..=3 for every 64-bit value, unlike `abs()`, which
/// overflows on the smallest one).
const RANDOM_UUID: &str = "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) \
     || '-4' || substr(lower(hex(randomblob(2))), 2) \
     || '-' || substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) \
     || '-' || lower(hex(randomblob(6)))";

/// 128 random bits as 32 lowercase hex digits: SQLAlchemy's storage of a UUID where the database
/// has no uuid type, so that a row a plain-SQL writer inserts is found by the ORM's equality
/// lookups (which bind that form).
const RANDOM_UUID_HEX: &str = "lower(hex(randomblob(16)))";

fn default_sql(d: &DefaultExpr) -> String {
    match d {
        DefaultExpr::Bool(true) => "TRUE".into(),
        DefaultExpr::Bool(false) => "FALSE".into(),
        DefaultExpr::Int(i) => i.to_string(),
        DefaultExpr::Text(s) | DefaultExpr::Json(s) => quote_literal(s),
        // `CURRENT_TIMESTAMP` is UTC: the naive UTC time and the instant are the same text.
        DefaultExpr::Now | DefaultExpr::UtcNow => "CURRENT_TIMESTAMP".into(),
        DefaultExpr::RandomUuid => format!("({RANDOM_UUID})"),
        DefaultExpr::RandomUuidHex => format!("({RANDOM_UUID_HEX})"),
        // SQLite takes an expression as a default only in parentheses.
        DefaultExpr::Sql(s) => format!("({s})"),
    }
}

/// Whether ALTER TABLE ADD COLUMN accepts this default.
fn is_constant(d: &DefaultExpr) -> bool {
    matches!(
        d,
        DefaultExpr::Bool(_) | DefaultExpr::Int(_) | DefaultExpr::Text(_) | DefaultExpr::Json(_)
    )
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

/// A constraint of `table`, created under the name `created_as`: a self-reference points there.
fn constraint_def(c: &Constraint, table: &TableName, created_as: &str) -> String {
    let body = match &c.kind {
        ConstraintKind::PrimaryKey { columns } => format!("PRIMARY KEY ({})", column_list(columns)),
        ConstraintKind::Unique { columns } => format!("UNIQUE ({})", column_list(columns)),
        ConstraintKind::ForeignKey(fk) => {
            let target = if &fk.ref_table == table {
                q(created_as)
            } else {
                table_ref(&fk.ref_table)
            };
            let mut s = format!(
                "FOREIGN KEY ({}) REFERENCES {target} ({})",
                column_list(&fk.columns),
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
        ConstraintKind::Check { expr, sqlite } => {
            format!("CHECK ({})", sqlite.as_deref().unwrap_or(expr))
        }
    };
    format!("CONSTRAINT {} {body}", q(&c.name))
}

/// `CREATE TABLE` for `table` under the name `created_as`, constraints inline (SQLite cannot add
/// them later).
fn create_table(table: &Table, created_as: &str) -> String {
    let mut lines: Vec<String> = table.columns.iter().map(column_def).collect();
    lines.extend(
        table
            .constraints
            .values()
            .map(|c| constraint_def(c, &table.name, created_as)),
    );
    format!(
        "CREATE TABLE {} (\n    {}\n)",
        q(created_as),
        lines.join(",\n    ")
    )
}

fn create_index(table: &TableName, index: &Index) -> String {
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(c) => q(c),
            IndexKey::Expr(e) => format!("({e})"),
        })
        .collect();
    let mut s = format!(
        "CREATE {}INDEX {} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        q(&relation(table.schema.as_deref(), &index.name)),
        table_ref(table),
        keys.join(", ")
    );
    if let Some(p) = &index.predicate {
        s.push_str(" WHERE ");
        s.push_str(p);
    }
    s
}

/// The SQLite trigger equivalent to `trigger` on `table`, or why there is none.
fn create_trigger(
    table: &Table,
    trigger: &Trigger,
    functions: &BTreeMap<TableName, Function>,
) -> Result<String, RenderError> {
    let column = stamped_column(table, trigger, functions)?;
    let t = table_ref(&table.name);
    let c = q(&column);
    Ok(format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} FOR EACH ROW WHEN NEW.{c} IS NOT CURRENT_TIMESTAMP \
         BEGIN UPDATE {t} SET {c} = CURRENT_TIMESTAMP WHERE rowid = NEW.rowid; END",
        q(&trigger_name(&table.name, &trigger.name)),
    ))
}

/// The column a trigger stamps with the current time, when it is the one pattern SQLite can
/// express (see the module's documentation).
fn stamped_column(
    table: &Table,
    trigger: &Trigger,
    functions: &BTreeMap<TableName, Function>,
) -> Result<String, RenderError> {
    let what = format!("create trigger {} on {}", trigger.name, table.name);
    let function = functions.get(&trigger.function).ok_or_else(|| {
        unsupported(format!(
            "{what}: its function {} is not in the schema",
            trigger.function
        ))
    })?;
    if trigger.timing != TriggerTiming::Before || trigger.events != [TriggerEvent::Update] {
        return Err(unsupported(format!(
            "{what}: only a BEFORE UPDATE trigger that stamps a column with the current time has \
             a SQLite form"
        )));
    }
    let column = parse_stamp(&function.body).ok_or_else(|| {
        unsupported(format!(
            "{what}: the body of {} is not `BEGIN NEW.<column> = now(); RETURN NEW; END;`, the \
             one trigger function SQLite can express; give the revision an Op::Sql with a SQLite \
             trigger instead",
            trigger.function
        ))
    })?;
    if table.find_column(&column).is_none() {
        return Err(unsupported(format!(
            "{what}: {} stamps column {column}, which {} does not have",
            trigger.function, table.name
        )));
    }
    Ok(column)
}

/// Parses `BEGIN NEW.<column> = now(); RETURN NEW; END;` (spacing and keyword case free, `:=` or
/// `=`, `now()`, `CURRENT_TIMESTAMP` or `transaction_timestamp()`, or the naive UTC time
/// `now() AT TIME ZONE 'utc'`), returning the column as PostgreSQL resolves it (unquoted names
/// fold to lower case).
fn parse_stamp(body: &str) -> Option<String> {
    let statements: Vec<String> = body
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect();
    let [first, second, third] = statements.as_slice() else {
        return None;
    };
    let (begin, assignment) = first.split_once(' ')?;
    if !begin.eq_ignore_ascii_case("begin")
        || !second.eq_ignore_ascii_case("return new")
        || !third.eq_ignore_ascii_case("end")
    {
        return None;
    }
    let (target, value) = assignment
        .split_once(":=")
        .or_else(|| assignment.split_once('='))?;
    let value: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    // The naive UTC spellings stamp the same text here: SQLite's time is UTC.
    let value = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(&value);
    if ![
        "now()",
        "current_timestamp",
        "transaction_timestamp()",
        "now()attimezone'utc'",
        "timezone('utc',now())",
    ]
    .contains(&value)
    {
        return None;
    }
    let target = target.trim();
    let (new, column) = target.split_at_checked(4)?;
    if !new.eq_ignore_ascii_case("new.") {
        return None;
    }
    if let Some(quoted) = column.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
        return (!quoted.is_empty()).then(|| quoted.replace("\"\"", "\""));
    }
    let plain = column
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    plain.then(|| column.to_ascii_lowercase())
}

/// Refuses a table whose defaults, CHECKs or indexes use PostgreSQL-only SQL.
fn check_portable(table: &Table) -> Result<(), RenderError> {
    for column in &table.columns {
        check_portable_column(&table.name, column)?;
    }
    for c in table.constraints.values() {
        if let ConstraintKind::Check { expr, sqlite: None } = &c.kind {
            refuse_postgres_only(&format!("constraint {} on {}", c.name, table.name), expr)?;
        }
    }
    for index in table.indexes.values() {
        check_portable_index(&table.name, index)?;
    }
    Ok(())
}

fn check_portable_column(table: &TableName, column: &Column) -> Result<(), RenderError> {
    match &column.default {
        Some(DefaultExpr::Sql(expr)) => {
            refuse_postgres_only(&format!("the default of {table}.{}", column.name), expr)
        }
        _ => Ok(()),
    }
}

fn check_portable_index(table: &TableName, index: &Index) -> Result<(), RenderError> {
    let what = format!("index {} on {table}", index.name);
    for key in &index.keys {
        if let IndexKey::Expr(expr) = key {
            refuse_postgres_only(&what, expr)?;
        }
    }
    match &index.predicate {
        Some(predicate) => refuse_postgres_only(&what, predicate),
        None => Ok(()),
    }
}

fn refuse_postgres_only(what: &str, expr: &str) -> Result<(), RenderError> {
    match postgres_only(expr) {
        Some(reason) => Err(unsupported(format!(
            "create {what}: `{expr}` is PostgreSQL SQL ({reason}), and the model holds no SQLite \
             spelling for it"
        ))),
        None => Ok(()),
    }
}

/// Functions PostgreSQL has and SQLite has not, which an expression is likely to call.
const POSTGRES_FUNCTIONS: &[&str] = &[
    "age",
    "char_length",
    "character_length",
    "date_trunc",
    "extract",
    "gen_random_uuid",
    "now",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "to_char",
    "to_timestamp",
];

/// What in `expr` only PostgreSQL understands, if anything is found.
fn postgres_only(expr: &str) -> Option<&'static str> {
    // Literals and quoted names become `x`s: they cannot hold an operator, and each still reads
    // as an operand before a binary `~`.
    let mut code = String::with_capacity(expr.len());
    let mut quote = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                code.push('x');
            }
            Some(_) => code.push('x'),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                code.push('x');
            }
            None => code.push(c.to_ascii_lowercase()),
        }
    }
    if code.contains("::") {
        return Some("a `::` cast");
    }
    let bytes = code.as_bytes();
    let binary_tilde = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'~'
            && bytes[..i]
                .iter()
                .rev()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b')' || c == b'!')
    });
    if binary_tilde {
        return Some("a `~` regular expression match");
    }
    // Each word with the byte offset where it ends.
    let mut words: Vec<(usize, &str)> = Vec::new();
    let mut start = None;
    for (i, c) in code.char_indices().chain([(code.len(), ' ')]) {
        match (c.is_ascii_alphanumeric() || c == '_', start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((i, &code[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    for (n, (end, word)) in words.iter().enumerate() {
        match *word {
            "ilike" => return Some("ILIKE"),
            "similar" if words.get(n + 1).is_some_and(|(_, w)| *w == "to") => {
                return Some("SIMILAR TO")
            }
            w if POSTGRES_FUNCTIONS.contains(&w) && code[*end..].trim_start().starts_with('(') => {
                return Some("a function SQLite does not have");
            }
            _ => {}
        }
    }
    None
}

/// Whether PostgreSQL's `USING` conversion of `column` keeps SQLite's stored value as it is.
fn is_identity_conversion(column: &str, using: &str) -> bool {
    let normalize = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    let mut expr = normalize(using);
    while let Some(inner) = expr
        .strip_prefix('(')
        .and_then(|e| e.strip_suffix(')'))
        .filter(|e| balanced(e))
    {
        expr = inner.trim().to_owned();
    }
    let names = [
        column.to_ascii_lowercase(),
        quote_ident(column).to_ascii_lowercase(),
        format!("\"{}\"", column.replace('"', "\"\"")).to_ascii_lowercase(),
    ];
    // A type name: words, digits, parentheses and commas (`varchar(45)`, `timestamp with time
    // zone`), nothing that computes.
    let is_type = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _(),\"".contains(c))
    };
    names.iter().any(|c| {
        expr == *c
            || expr == format!("{c} at time zone 'utc'")
            || expr == format!("abbrev({c})")
            || expr
                .strip_prefix(&format!("{c}::"))
                .is_some_and(|t| is_type(t.trim()))
            || expr
                .strip_prefix(&format!("cast({c} as "))
                .and_then(|t| t.strip_suffix(')'))
                .is_some_and(|t| is_type(t.trim()))
    })
}

/// Whether parentheses balance in `s` (so stripping an outer pair keeps one expression).
fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// Whether ALTER TABLE DROP COLUMN can drop `column`: SQLite refuses it when anything names the
/// column. Expressions (CHECKs, expression keys, predicates) are not parsed, so any of them means
/// a rebuild, which is always right.
fn can_drop_in_place(table: &Table, column: &str) -> bool {
    let named_by_constraint = table.constraints.values().any(|c| {
        matches!(c.kind, ConstraintKind::Check { .. })
            || c.kind.columns().iter().any(|k| k == column)
    });
    let named_by_index = table.indexes.values().any(|i| {
        i.predicate.is_some()
            || i.keys.iter().any(|k| match k {
                IndexKey::Column(c) => c == column,
                IndexKey::Expr(_) => true,
            })
    });
    // A trigger names the column it stamps; an unknown one refuses in the rebuild instead.
    let named_by_trigger = !table.triggers.is_empty();
    !(named_by_constraint || named_by_index || named_by_trigger)
}

/// What a rebuild checks once the rows are copied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RebuildCheck {
    /// Nothing beyond what SQLite checks on insert.
    None,
    /// The table's foreign keys hold for every row (a foreign key was added).
    ForeignKeys,
}

/// Rebuilds `table` into its definition after `op` (see the module's documentation).
fn rebuild(
    op: &Op,
    before: &Schema,
    table: &TableName,
    check: RebuildCheck,
) -> Result<Vec<Statement>, RenderError> {
    let mut after_schema = before.clone();
    op.apply(&mut after_schema).map_err(|e| {
        unsupported(format!(
            "rebuild table {table}: the op does not apply to the schema ({e})"
        ))
    })?;
    rebuild_into(before, &after_schema, table, check)
}

/// One rebuild per table for a run of `AlterColumn` ops (each checked as [`render`] checks it):
/// every rebuild copies the whole table, so nine column changes of `users` would copy it nine
/// times. The table goes from what it is before the run to what it is after it; SQLite does not
/// enforce a column's type against the other end of a foreign key, so the order of tables does
/// not matter.
pub(super) fn grouped_alters(run: &[Op], before: &Schema) -> Result<Vec<Statement>, RenderError> {
    let mut after_schema = before.clone();
    let mut tables: Vec<&TableName> = Vec::new();
    for op in run {
        if render(op, &after_schema)?.is_empty() {
            // A change that changes nothing (see `render`) rebuilds nothing either.
            continue;
        }
        op.apply(&mut after_schema).map_err(|e| {
            unsupported(format!(
                "alter a column: the op does not apply to the schema ({e})"
            ))
        })?;
        if let Op::AlterColumn { table, .. } = op {
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
    }
    let mut out = Vec::new();
    for table in tables {
        out.extend(rebuild_into(
            before,
            &after_schema,
            table,
            RebuildCheck::None,
        )?);
    }
    Ok(out)
}

/// Rebuilds `table` from its definition in `before` into its definition in `after_schema`.
fn rebuild_into(
    before: &Schema,
    after_schema: &Schema,
    table: &TableName,
    check: RebuildCheck,
) -> Result<Vec<Statement>, RenderError> {
    let old = existing(before, table)?;
    let new = existing(after_schema, table)?;
    check_portable(new)?;
    let name = sqlite_name(table);
    let temporary = format!("{REBUILD_PREFIX}{name}");
    if let Some(clash) = before.tables.keys().find(|t| sqlite_name(t) == temporary) {
        return Err(unsupported(format!(
            "rebuild table {table}: the name it needs for the copy is taken by table {clash}"
        )));
    }
    // The new table's own columns, in its order, that the old table has: an added column is
    // filled by its default, a dropped one left behind.
    let copied: Vec<String> = new
        .columns
        .iter()
        .filter(|c| old.find_column(&c.name).is_some())
        .map(|c| q(&c.name))
        .collect();
    if copied.is_empty() {
        return Err(unsupported(format!(
            "rebuild table {table}: it would keep none of its columns"
        )));
    }
    let referenced = before.tables.values().any(|other| {
        &other.name != table
            && other.constraints.values().any(
                |c| matches!(&c.kind, ConstraintKind::ForeignKey(fk) if &fk.ref_table == table),
            )
    });

    // Foreign key violations are counted until COMMIT rather than refused at once, so the copy
    // may insert rows in any order (a self-reference), and the dropped table may briefly leave
    // references dangling. PRAGMA foreign_keys cannot change inside a transaction; this pragma
    // can, and it resets itself at COMMIT or ROLLBACK.
    let mut out = vec![Statement::new("PRAGMA defer_foreign_keys = ON")];
    if referenced {
        out.extend(refuse_when(
            "SELECT foreign_keys FROM pragma_foreign_keys",
            &format!(
                "rebuilding {name} needs PRAGMA foreign_keys = OFF, set before BEGIN: other tables \
                 reference it, and dropping the old table with foreign keys on would delete or \
                 null their rows"
            ),
        ));
    }
    let columns = copied.join(", ");
    let t = q(&name);
    let tmp = q(&temporary);
    out.push(Statement::new(create_table(new, &temporary)));
    out.push(Statement::new(format!(
        "INSERT INTO {tmp} ({columns}) SELECT {columns} FROM {t}"
    )));
    out.push(Statement::new(format!("DROP TABLE {t}")));
    out.push(Statement::new(format!("ALTER TABLE {tmp} RENAME TO {t}")));
    out.extend(
        new.indexes
            .values()
            .map(|index| Statement::new(create_index(table, index))),
    );
    for trigger in new.triggers.values() {
        out.push(Statement::new(create_trigger(
            new,
            trigger,
            &after_schema.functions,
        )?));
    }
    if check == RebuildCheck::ForeignKeys {
        out.extend(foreign_key_check(table));
    }
    Ok(out)
}

/// Refuses when a row of `table` breaks one of its foreign keys.
fn foreign_key_check(table: &TableName) -> Vec<Statement> {
    let name = sqlite_name(table);
    refuse_when(
        &format!(
            "SELECT count(*) > 0 FROM pragma_foreign_key_check({})",
            quote_literal(&name)
        ),
        &format!("rows of {name} break a foreign key: PRAGMA foreign_key_check({name}) lists them"),
    )
}

/// Statements that fail with `reason` when `condition` (a one-row, one-column SELECT) is true.
fn refuse_when(condition: &str, reason: &str) -> Vec<Statement> {
    let table = format!("temp.{}", q(REFUSAL_TABLE));
    vec![
        Statement::new(format!(
            "CREATE TEMP TABLE {} (refused BOOLEAN CONSTRAINT {} CHECK (NOT refused))",
            q(REFUSAL_TABLE),
            format_args!("\"{}\"", reason.replace('"', "\"\""))
        )),
        Statement::new(format!("INSERT INTO {table} (refused) {condition}")),
        Statement::new(format!("DROP TABLE {table}")),
    ]
}

/// Renames a table (or moves it to another schema, which on SQLite is a rename), recreating what
/// carries its name: triggers always, indexes when the schema prefix changes.
fn rename_table(
    op: &Op,
    before: &Schema,
    from: &TableName,
    to: &TableName,
) -> Result<Vec<Statement>, RenderError> {
    let old = existing(before, from)?;
    let mut out: Vec<Statement> = old
        .triggers
        .keys()
        .map(|name| Statement::new(format!("DROP TRIGGER {}", q(&trigger_name(from, name)))))
        .collect();
    // Since 3.26 the rename also rewrites other tables' foreign keys to the new name.
    out.push(Statement::new(format!(
        "ALTER TABLE {} RENAME TO {}",
        table_ref(from),
        table_ref(to)
    )));
    let mut after = before.clone();
    op.apply(&mut after).map_err(|e| {
        unsupported(format!(
            "rename table {from}: the op does not apply to the schema ({e})"
        ))
    })?;
    let new = existing(&after, to)?;
    if from.schema != to.schema {
        for index in new.indexes.values() {
            out.push(Statement::new(format!(
                "DROP INDEX {}",
                q(&relation(from.schema.as_deref(), &index.name))
            )));
            out.push(Statement::new(create_index(to, index)));
        }
    }
    for trigger in new.triggers.values() {
        out.push(Statement::new(create_trigger(
            new,
            trigger,
            &after.functions,
        )?));
    }
    Ok(out)
}

/// SQLite's keywords (<https://sqlite.org/lang_keywords.html>), sorted: quoted wherever they name
/// a table or column, even those SQLite would also take bare, so the script reads the same in
/// every version.
const SQLITE_KEYWORDS: &[&str] = &[
    "abort",
    "action",
    "add",
    "after",
    "all",
    "alter",
    "always",
    "analyze",
    "and",
    "as",
    "asc",
    "attach",
    "autoincrement",
    "before",
    "begin",
    "between",
    "by",
    "cascade",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "commit",
    "conflict",
    "constraint",
    "create",
    "cross",
    "current",
    "current_date",
    "current_time",
    "current_timestamp",
    "database",
    "default",
    "deferrable",
    "deferred",
    "delete",
    "desc",
    "detach",
    "distinct",
    "do",
    "drop",
    "each",
    "else",
    "end",
    "escape",
    "except",
    "exclude",
    "exclusive",
    "exists",
    "explain",
    "fail",
    "filter",
    "first",
    "following",
    "for",
    "foreign",
    "from",
    "full",
    "generated",
    "glob",
    "group",
    "groups",
    "having",
    "if",
    "ignore",
    "immediate",
    "in",
    "index",
    "indexed",
    "initially",
    "inner",
    "insert",
    "instead",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "key",
    "last",
    "left",
    "like",
    "limit",
    "match",
    "materialized",
    "natural",
    "no",
    "not",
    "nothing",
    "notnull",
    "null",
    "nulls",
    "of",
    "offset",
    "on",
    "or",
    "order",
    "others",
    "outer",
    "over",
    "partition",
    "plan",
    "pragma",
    "preceding",
    "primary",
    "query",
    "raise",
    "range",
    "recursive",
    "references",
    "regexp",
    "reindex",
    "release",
    "rename",
    "replace",
    "restrict",
    "returning",
    "right",
    "rollback",
    "row",
    "rows",
    "savepoint",
    "select",
    "set",
    "table",
    "temp",
    "temporary",
    "then",
    "ties",
    "to",
    "transaction",
    "trigger",
    "unbounded",
    "union",
    "unique",
    "update",
    "using",
    "vacuum",
    "values",
    "view",
    "virtual",
    "when",
    "where",
    "window",
    "with",
    "without",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        assert!(SQLITE_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(q("action"), "\"action\"");
        assert_eq!(q("email"), "email");
    }

    #[test]
    fn the_stamp_pattern_is_recognised_in_its_spellings() {
        for body in [
            "BEGIN NEW.updated_at = now(); RETURN NEW; END;",
            "BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND",
            "BEGIN\n    NEW.updated_at := now() AT TIME ZONE 'utc';\n    RETURN NEW;\nEND",
            "BEGIN NEW.updated_at = (now() AT TIME ZONE 'UTC'); RETURN NEW; END;",
            "BEGIN NEW.updated_at = timezone('utc', now()); RETURN NEW; END;",
            "begin new.UPDATED_AT=CURRENT_TIMESTAMP; return new; end;",
        ] {
            assert_eq!(parse_stamp(body).as_deref(), Some("updated_at"), "{body}");
        }
        assert_eq!(
            parse_stamp("BEGIN NEW.\"UpdatedAt\" = now(); RETURN NEW; END;").as_deref(),
            Some("UpdatedAt")
        );
        for body in [
            "BEGIN NEW.updated_at = clock_timestamp(); RETURN NEW; END;",
            "BEGIN NEW.updated_at = now(); NEW.version = OLD.version + 1; RETURN NEW; END;",
            "BEGIN RETURN NEW; END;",
            "BEGIN NEW.updated_at = now(); RETURN OLD; END;",
        ] {
            assert_eq!(parse_stamp(body), None, "{body}");
        }
    }

    #[test]
    fn postgres_only_expressions_are_found_outside_literals() {
        for expr in [
            "country_code ~ '^[A-Z]{2}$'",
            "email ~* '@'",
            "email !~ '@'",
            "(payload->>'kind')::int > 0",
            "name ILIKE 'a%'",
            "name SIMILAR TO 'a%'",
            "created_at < now()",
            "char_length (name) > 0",
        ] {
            assert!(postgres_only(expr).is_some(), "{expr}");
        }
        for expr in [
            "status IN ('active', 'a::b ~ c')",
            "attempts >= 0",
            "~flags = 0",
            "lower(email)",
            "deleted_at IS NULL",
            "\"now\" > 0",
            "datetime('now', '+30 days')",
            "age > 0",
        ] {
            assert_eq!(postgres_only(expr), None, "{expr}");
        }
    }

    #[test]
    fn identity_conversions_are_told_from_computations() {
        for (column, using) in [
            ("created_at", "created_at AT TIME ZONE 'UTC'"),
            ("timestamp", "\"timestamp\" AT TIME ZONE 'UTC'"),
            ("settings", "settings::jsonb"),
            ("ip_address", "ip_address::inet"),
            ("ip_address", "abbrev(ip_address)"),
            ("ip_address", "CAST(ip_address AS varchar(45))"),
            ("settings", "(settings::json)"),
        ] {
            assert!(is_identity_conversion(column, using), "{using}");
        }
        for (column, using) in [
            ("created_at", "created_at AT TIME ZONE 'Europe/Paris'"),
            ("price", "(price * 100)::integer"),
            ("price", "price::integer + 1"),
            ("name", "lower(name)"),
        ] {
            assert!(!is_identity_conversion(column, using), "{using}");
        }
    }
}

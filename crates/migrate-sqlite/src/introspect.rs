//! Introspection: a SQLite database read back into the model, and canonicalization, which
//! renders a model value into a fresh in-memory database and reads it back the same way.
//!
//! Both go through one reader, so `introspect() == canonicalize(expected)` is
//! a meaningful drift check: whatever SQLite (or the renderer) does to a model value is done on
//! both sides.
//!
//! # What is read, from where
//!
//! - Tables from `sqlite_master`, leaving out SQLite's own (`sqlite_*`), virtual tables and the
//!   tool's state tables. A name `legacy.users_simple` is table `users_simple` of schema `legacy`
//!   (the renderer's convention), and the model's `schemas` are the schemas of the tables found:
//!   SQLite keeps no empty schema, so neither side has one.
//! - Columns from `pragma_table_info`: the declared type mapped back to the model's name
//!   (`UUID_TEXT` → `Uuid`, `JSONB_TEXT` → `Jsonb`, ...; case-insensitive; anything else is
//!   `Other` as written), NOT NULL, and the default as written: `TRUE`/`FALSE`, integers, quoted
//!   literals (`Json` on a JSON column, else `Text`), `CURRENT_TIMESTAMP` (`Now`), the renderer's
//!   random-UUID expression (`RandomUuid`), and anything else as `Sql` without its parentheses.
//! - Constraints from the table's `CREATE TABLE` text, which is the only place SQLite keeps
//!   their names and CHECK expressions (SQLite rewrites that text on every rename, so it stays
//!   current). The renderer names every constraint; one created without a name (by another tool)
//!   gets PostgreSQL's default name (`<table>_pkey`, `<table>_<columns>_key`,
//!   `<table>_<columns>_fkey`, `<table>_<column>_check`, `<table>_check`). Column-level
//!   constraints count as well as table-level ones. A foreign key without referenced columns
//!   references the other table's primary key.
//! - Indexes from their `CREATE INDEX` text: the automatic indexes behind PRIMARY KEY and UNIQUE
//!   have no text and are the constraints' (as in the model); a key that is a bare column is a
//!   column, any other is an expression (without the parentheses the renderer adds); the
//!   partial index predicate is the text after `WHERE`. Index names lose the `<schema>.` prefix
//!   the renderer gives them.
//! - Triggers from their `CREATE TRIGGER` text, named `<table>.<trigger>` by the renderer.
//!
//! # Triggers and trigger functions
//!
//! SQLite has no trigger functions; the renderer writes the one function body it understands
//! (the `updated_at` stamp) into each trigger. The function's name and its PL/pgSQL spelling are
//! not kept anywhere, so both sides agree on a canonical form instead: a trigger whose text is
//! exactly what the renderer writes for "stamp column `c`" (compared token by token, so quoting
//! and spacing do not matter) reads back as a `BEFORE UPDATE` trigger calling function `set_c`
//! in the default schema, whose body is `BEGIN NEW.c := now() AT TIME ZONE 'utc'; RETURN NEW;
//! END` in the identity schema's layout: `CURRENT_TIMESTAMP` is the naive UTC time, which is
//! what that PostgreSQL spelling stamps. Since the identity schema names its function
//! `set_updated_at` with that body, its triggers even read back as the model writes them. A model whose function has
//! another name or spelling canonicalizes to the same value, so such a difference is not drift
//! on SQLite (it would be invisible to the database too). Any other trigger reads back as calling
//! a function named `sqlite_trigger:<name>` whose body is the trigger's whole text: it never
//! matches a model, so it is reported.

use crate::{classify, HISTORY_TABLE, VERSION_TABLE};
use migrate_core::driver::DriverError;
use migrate_core::render::{quote_ident, render};
use migrate_core::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, Dialect, ForeignKey, Function,
    Index, IndexKey, Op, ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent,
    TriggerTiming,
};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::BTreeMap;

/// Reads the live schema in one read transaction (one consistent snapshot).
pub(crate) fn introspect(conn: &mut Connection) -> Result<Schema, DriverError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(classify)?;
    let schema = read_schema(&tx)?;
    // Read only: nothing to keep, and rolling back cannot fail a read.
    drop(tx);
    Ok(schema)
}

/// What [`introspect`] returns for a database holding exactly `expected`: renders it with the
/// SQLite renderer into a fresh in-memory database and reads that back.
pub(crate) fn canonicalize(expected: &Schema) -> Result<Schema, DriverError> {
    let conn = Connection::open_in_memory().map_err(classify)?;
    // CREATE TABLE needs the trigger functions (to write each trigger out) and nothing else of
    // the schema before it; foreign keys may name tables created later, SQLite checks them
    // only on writes.
    let before = Schema {
        functions: expected.functions.clone(),
        ..Schema::new()
    };
    for table in expected.tables.values() {
        let statements = render(&Op::CreateTable(table.clone()), &before, Dialect::Sqlite)
            .map_err(|e| {
                DriverError::Unsupported(format!("cannot canonicalize the expected schema: {e}"))
            })?;
        for statement in statements {
            conn.execute_batch(&statement.sql).map_err(|e| {
                DriverError::Unsupported(format!(
                    "cannot canonicalize the expected schema: SQLite refuses table {}: {}",
                    table.name,
                    crate::message_of(&e)
                ))
            })?;
        }
    }
    read_schema(&conn)
}

/// One row of `sqlite_master`.
struct Object {
    kind: String,
    name: String,
    table: String,
    sql: Option<String>,
}

/// The tables (with columns, constraints, indexes, triggers) and the canonical trigger
/// functions of the main database.
pub(crate) fn read_schema(conn: &Connection) -> Result<Schema, DriverError> {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_master ORDER BY rowid")
        .map_err(classify)?;
    let objects: Vec<Object> = stmt
        .query_map([], |r| {
            Ok(Object {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })
        .map_err(classify)?
        .collect::<Result<_, _>>()
        .map_err(classify)?;

    let mut schema = Schema::new();
    // SQLite name → the table's parsed constraints, kept until foreign keys are resolved.
    let mut parsed: BTreeMap<String, Vec<ParsedConstraint>> = BTreeMap::new();
    let mut by_sqlite_name: BTreeMap<String, TableName> = BTreeMap::new();
    for object in objects.iter().filter(|o| o.kind == "table") {
        let sql = object.sql.as_deref().unwrap_or_default();
        if is_internal(&object.name) || is_virtual(sql) {
            continue;
        }
        let name = TableName::from(object.name.as_str());
        let mut table = Table::new(name.clone());
        table.columns = read_columns(conn, &object.name)?;
        parsed.insert(object.name.clone(), parse_table_constraints(sql));
        by_sqlite_name.insert(object.name.to_ascii_lowercase(), name.clone());
        if let Some(s) = &name.schema {
            schema.schemas.insert(s.clone());
        }
        schema.tables.insert(name, table);
    }

    // Constraints, once every table's primary key is known (an implicit foreign key target).
    let primary_keys: BTreeMap<String, Vec<String>> = parsed
        .iter()
        .filter_map(|(table, constraints)| {
            constraints.iter().find_map(|c| match &c.kind {
                ParsedKind::PrimaryKey(cols) => Some((table.to_ascii_lowercase(), cols.clone())),
                _ => None,
            })
        })
        .collect();
    for (sqlite_name, constraints) in &parsed {
        let Some(table) = by_sqlite_name
            .get(&sqlite_name.to_ascii_lowercase())
            .and_then(|n| schema.tables.get_mut(n))
        else {
            continue;
        };
        let base = table.name.name.clone();
        for c in constraints {
            let (default_name, kind) = match &c.kind {
                ParsedKind::PrimaryKey(cols) => (
                    format!("{base}_pkey"),
                    ConstraintKind::PrimaryKey {
                        columns: cols.clone(),
                    },
                ),
                ParsedKind::Unique(cols) => (
                    format!("{base}_{}_key", cols.join("_")),
                    ConstraintKind::Unique {
                        columns: cols.clone(),
                    },
                ),
                ParsedKind::Check { expr, column } => (
                    match column {
                        Some(col) => format!("{base}_{col}_check"),
                        None => format!("{base}_check"),
                    },
                    ConstraintKind::Check {
                        expr: expr.clone(),
                        sqlite: None,
                    },
                ),
                ParsedKind::ForeignKey {
                    columns,
                    ref_table,
                    ref_columns,
                    on_delete,
                    on_update,
                } => {
                    let ref_columns = if ref_columns.is_empty() {
                        primary_keys
                            .get(&ref_table.to_ascii_lowercase())
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        ref_columns.clone()
                    };
                    let ref_name = by_sqlite_name
                        .get(&ref_table.to_ascii_lowercase())
                        .cloned()
                        .unwrap_or_else(|| TableName::from(ref_table.as_str()));
                    (
                        format!("{base}_{}_fkey", columns.join("_")),
                        ConstraintKind::ForeignKey(ForeignKey {
                            columns: columns.clone(),
                            ref_table: ref_name,
                            ref_columns,
                            on_delete: *on_delete,
                            on_update: *on_update,
                        }),
                    )
                }
            };
            let name = match &c.name {
                Some(n) => n.clone(),
                None => unused_name(&table.constraints, default_name),
            };
            table
                .constraints
                .insert(name.clone(), Constraint { name, kind });
        }
    }

    // Indexes created by CREATE INDEX (the automatic ones have no SQL).
    for object in objects.iter().filter(|o| o.kind == "index") {
        let (Some(sql), Some(table_name)) = (
            object.sql.as_deref(),
            by_sqlite_name.get(&object.table.to_ascii_lowercase()),
        ) else {
            continue;
        };
        let Some(table) = schema.tables.get_mut(table_name) else {
            continue;
        };
        let name = unprefixed(&object.name, table_name.schema.as_deref());
        if let Some(mut index) = parse_index(sql) {
            index.name = name.clone();
            table.indexes.insert(name, index);
        }
    }

    // Triggers, and the canonical functions of those that stamp a column.
    for object in objects.iter().filter(|o| o.kind == "trigger") {
        let (Some(sql), Some(table_name)) = (
            object.sql.as_deref(),
            by_sqlite_name.get(&object.table.to_ascii_lowercase()),
        ) else {
            continue;
        };
        let Some(table) = schema.tables.get(table_name) else {
            continue;
        };
        let prefix = format!("{}.", object.table);
        let name = object
            .name
            .strip_prefix(&prefix)
            .unwrap_or(&object.name)
            .to_owned();
        let (trigger, function) = match stamp_trigger(table, &name, sql) {
            Some(found) => found,
            None => foreign_trigger(&name, &object.name, sql),
        };
        schema
            .functions
            .entry(function.name.clone())
            .or_insert(function);
        if let Some(table) = schema.tables.get_mut(table_name) {
            table.triggers.insert(name, trigger);
        }
    }
    Ok(schema)
}

/// SQLite's own tables and the tool's state tables.
fn is_internal(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower == VERSION_TABLE || lower == HISTORY_TABLE
}

fn is_virtual(sql: &str) -> bool {
    let tokens = tokenize(sql);
    tokens.len() > 1 && tokens[1].is_kw("virtual")
}

/// A constraint name not yet taken in `existing`: `base`, else `base1`, `base2`...
fn unused_name(existing: &BTreeMap<String, Constraint>, base: String) -> String {
    if !existing.contains_key(&base) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !existing.contains_key(n))
        .unwrap_or(base)
}

/// An index's or trigger's name without the `<schema>.` prefix the renderer gives it.
fn unprefixed(name: &str, schema: Option<&str>) -> String {
    schema
        .and_then(|s| name.strip_prefix(&format!("{s}.")))
        .unwrap_or(name)
        .to_owned()
}

fn read_columns(conn: &Connection, table: &str) -> Result<Vec<Column>, DriverError> {
    let mut stmt = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?1) ORDER BY cid",
        )
        .map_err(classify)?;
    let columns = stmt
        .query_map([table], |r| {
            let ty = column_type(&r.get::<_, String>(1)?);
            let default = r
                .get::<_, Option<String>>(3)?
                .map(|d| default_expr(&d, &ty));
            Ok(Column {
                name: r.get(0)?,
                nullable: r.get::<_, i64>(2)? == 0,
                ty,
                default,
            })
        })
        .map_err(classify)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(classify)?;
    Ok(columns)
}

/// A declared type in the model's vocabulary (the renderer's names, any case); anything else is
/// kept as written.
pub fn column_type(declared: &str) -> ColumnType {
    let upper = declared.trim().to_ascii_uppercase();
    let compact: String = upper.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "UUID_TEXT" => return ColumnType::Uuid,
        "VARCHAR" => return ColumnType::Varchar(None),
        "TEXT" => return ColumnType::Text,
        "BOOLEAN" => return ColumnType::Boolean,
        "SMALLINT" => return ColumnType::SmallInt,
        "INTEGER" => return ColumnType::Integer,
        "BIGINT" => return ColumnType::BigInt,
        "NUMERIC" => return ColumnType::Numeric(None),
        "DOUBLE" => return ColumnType::Double,
        "TIMESTAMP" => return ColumnType::Timestamp,
        "TIMESTAMPTZ" => return ColumnType::TimestampTz,
        "DATE" => return ColumnType::Date,
        "JSON_TEXT" => return ColumnType::Json,
        "JSONB_TEXT" => return ColumnType::Jsonb,
        "INET_TEXT" => return ColumnType::Inet,
        "BLOB" => return ColumnType::Bytea,
        _ => {}
    }
    let args = |prefix: &str| {
        compact
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::to_owned)
    };
    if let Some(n) = args("VARCHAR(").and_then(|n| n.parse().ok()) {
        return ColumnType::Varchar(Some(n));
    }
    if let Some((p, s)) = args("NUMERIC(").as_deref().and_then(|a| a.split_once(',')) {
        if let (Ok(p), Ok(s)) = (p.parse(), s.parse()) {
            return ColumnType::Numeric(Some((p, s)));
        }
    }
    ColumnType::Other(declared.to_owned())
}

/// The renderer's version 4 UUID default, between its parentheses (see the SQLite renderer;
/// a test of this crate renders a `RandomUuid` default and reads it back, so a change there
/// cannot go unnoticed).
const RANDOM_UUID: &str = "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) \
     || '-4' || substr(lower(hex(randomblob(2))), 2) \
     || '-' || substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) \
     || '-' || lower(hex(randomblob(6)))";

/// A default's text, as `pragma_table_info` reports it, in the model's kinds.
pub fn default_expr(text: &str, ty: &ColumnType) -> DefaultExpr {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        return DefaultExpr::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return DefaultExpr::Bool(false);
    }
    if text.eq_ignore_ascii_case("current_timestamp") {
        return DefaultExpr::Now;
    }
    if let Ok(i) = text.parse::<i64>() {
        return DefaultExpr::Int(i);
    }
    if let Some(value) = whole_literal(text) {
        return match ty {
            ColumnType::Json | ColumnType::Jsonb => DefaultExpr::Json(value),
            _ => DefaultExpr::Text(value),
        };
    }
    let inner = strip_parens(text);
    if squash(inner) == squash(RANDOM_UUID) {
        return DefaultExpr::RandomUuid;
    }
    if squash(inner) == "lower(hex(randomblob(16)))" {
        return DefaultExpr::RandomUuidHex;
    }
    DefaultExpr::Sql(inner.to_owned())
}

/// Whitespace removed, for comparing expressions laid out differently.
fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The value of `text` when all of it is one standard SQL string literal.
fn whole_literal(text: &str) -> Option<String> {
    let tokens = tokenize(text);
    match tokens.as_slice() {
        [Token {
            tok: Tok::Str(value),
            ..
        }] => Some(value.clone()),
        _ => None,
    }
}

/// `text` without one pair of parentheses around all of it.
fn strip_parens(text: &str) -> &str {
    let trimmed = text.trim();
    let tokens = tokenize(trimmed);
    if tokens.len() >= 2
        && tokens[0].is_punct("(")
        && matching_paren(&tokens, 0) == Some(tokens.len() - 1)
    {
        trimmed[tokens[0].end..tokens[tokens.len() - 1].start].trim()
    } else {
        trimmed
    }
}

// ---------------------------------------------------------------------------------------------
// A tokenizer for SQLite's DDL: enough to find constraint clauses and slice expressions out of
// the original text, never to evaluate anything.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A bare word: keyword or identifier, as written.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unescaped.
    Quoted(String),
    /// A string literal, unescaped.
    Str(String),
    /// A number, as written.
    Num(String),
    /// An operator or punctuation.
    Punct(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offsets in the source text.
    start: usize,
    end: usize,
}

impl Token {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.tok, Tok::Punct(x) if x == p)
    }

    /// The identifier this token names (SQLite also takes a string literal as a name).
    fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) | Tok::Quoted(w) | Tok::Str(w) => Some(w),
            _ => None,
        }
    }

    /// A normalised form for comparing statements: identifiers and keywords case-folded and
    /// unquoted, literals and operators as they are.
    fn normalized(&self) -> String {
        match &self.tok {
            Tok::Word(w) | Tok::Quoted(w) => format!("i:{}", w.to_ascii_lowercase()),
            Tok::Str(s) => format!("s:{s}"),
            Tok::Num(n) => format!("n:{n}"),
            Tok::Punct(p) => format!("p:{p}"),
        }
    }
}

fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Reads a quoted run closed by `close`, where a doubled `close` stands for one.
    let quoted = |start: usize, close: u8| -> (String, usize) {
        let mut value = Vec::new();
        let mut j = start + 1;
        while j < bytes.len() {
            if bytes[j] == close {
                if close != b']' && bytes.get(j + 1) == Some(&close) {
                    value.push(close);
                    j += 2;
                    continue;
                }
                return (String::from_utf8_lossy(&value).into_owned(), j + 1);
            }
            value.push(bytes[j]);
            j += 1;
        }
        (String::from_utf8_lossy(&value).into_owned(), bytes.len())
    };
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let tok = match b {
            _ if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |k| i + 2 + k + 2);
                continue;
            }
            b'\'' => {
                let (value, next) = quoted(i, b'\'');
                i = next;
                Tok::Str(value)
            }
            b'"' | b'`' | b'[' => {
                let close = if b == b'[' { b']' } else { b };
                let (value, next) = quoted(i, close);
                i = next;
                Tok::Quoted(value)
            }
            _ if b.is_ascii_digit()
                || (b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Tok::Num(sql[start..i].to_owned())
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                Tok::Word(sql[start..i].to_owned())
            }
            _ => {
                let rest = &sql[i..];
                let len = ["->>", "||", "<=", ">=", "<>", "!=", "==", "<<", ">>", "->"]
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map_or_else(
                        || rest.chars().next().map_or(1, char::len_utf8),
                        |op| op.len(),
                    );
                i += len;
                Tok::Punct(sql[start..i].to_owned())
            }
        };
        out.push(Token { tok, start, end: i });
    }
    out
}

/// The index of the `)` matching the `(` at `open`.
fn matching_paren(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Splits `tokens` at top-level commas.
fn split_commas(tokens: &[Token]) -> Vec<&[Token]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
        } else if depth == 0 && t.is_punct(",") {
            parts.push(&tokens[start..i]);
            start = i + 1;
        }
    }
    parts.push(&tokens[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// The source text between two tokens (exclusive), trimmed.
fn text_between<'s>(sql: &'s str, tokens: &[Token], open: usize, close: usize) -> &'s str {
    if close <= open + 1 {
        return "";
    }
    sql[tokens[open].end..tokens[close].start].trim()
}

// ---------------------------------------------------------------------------------------------
// CREATE TABLE

#[derive(Debug, Clone, PartialEq, Eq)]
enum ParsedKind {
    PrimaryKey(Vec<String>),
    Unique(Vec<String>),
    Check {
        expr: String,
        /// The column of a column-level CHECK (for its default name).
        column: Option<String>,
    },
    ForeignKey {
        columns: Vec<String>,
        ref_table: String,
        ref_columns: Vec<String>,
        on_delete: ReferentialAction,
        on_update: ReferentialAction,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedConstraint {
    name: Option<String>,
    kind: ParsedKind,
}

/// The constraints of a `CREATE TABLE` statement, table-level and column-level, in order.
fn parse_table_constraints(sql: &str) -> Vec<ParsedConstraint> {
    let tokens = tokenize(sql);
    let Some(open) = tokens.iter().position(|t| t.is_punct("(")) else {
        // `CREATE TABLE ... AS SELECT`: no constraints.
        return Vec::new();
    };
    let Some(close) = matching_paren(&tokens, open) else {
        return Vec::new();
    };
    let body = &tokens[open + 1..close];
    let mut out = Vec::new();
    for item in split_commas(body) {
        let first = &item[0];
        if ["constraint", "primary", "unique", "check", "foreign"]
            .iter()
            .any(|kw| first.is_kw(kw))
        {
            parse_table_constraint(sql, item, &mut out);
        } else if let Some(column) = first.ident() {
            parse_column_constraints(sql, column, &item[1..], &mut out);
        }
    }
    out
}

/// The column names of a parenthesised list starting at `open` (first word of each item:
/// `col COLLATE x DESC` is `col`), and the index after the `)`.
fn name_list(tokens: &[Token], open: usize) -> Option<(Vec<String>, usize)> {
    if !tokens.get(open)?.is_punct("(") {
        return None;
    }
    let close = matching_paren(tokens, open)?;
    let names = split_commas(&tokens[open + 1..close])
        .iter()
        .filter_map(|part| part[0].ident().map(str::to_owned))
        .collect();
    Some((names, close + 1))
}

fn parse_table_constraint(sql: &str, item: &[Token], out: &mut Vec<ParsedConstraint>) {
    let mut i = 0;
    let mut name = None;
    if item[0].is_kw("constraint") {
        name = item.get(1).and_then(Token::ident).map(str::to_owned);
        i = 2;
    }
    let Some(head) = item.get(i) else { return };
    let kind = if head.is_kw("primary") {
        name_list(item, i + 2).map(|(cols, _)| ParsedKind::PrimaryKey(cols))
    } else if head.is_kw("unique") {
        name_list(item, i + 1).map(|(cols, _)| ParsedKind::Unique(cols))
    } else if head.is_kw("check") {
        let open = i + 1;
        matching_paren(item, open).map(|close| ParsedKind::Check {
            expr: text_between(sql, item, open, close).to_owned(),
            column: None,
        })
    } else if head.is_kw("foreign") {
        name_list(item, i + 2).and_then(|(columns, next)| {
            item.get(next)
                .filter(|t| t.is_kw("references"))
                .and_then(|_| references(item, next + 1, columns))
                .map(|(kind, _)| kind)
        })
    } else {
        None
    };
    if let Some(kind) = kind {
        out.push(ParsedConstraint { name, kind });
    }
}

/// A foreign-key clause after `REFERENCES`, and the index after it.
fn references(tokens: &[Token], at: usize, columns: Vec<String>) -> Option<(ParsedKind, usize)> {
    let ref_table = tokens.get(at)?.ident()?.to_owned();
    let mut i = at + 1;
    let mut ref_columns = Vec::new();
    if tokens.get(i).is_some_and(|t| t.is_punct("(")) {
        let (names, next) = name_list(tokens, i)?;
        ref_columns = names;
        i = next;
    }
    let mut on_delete = ReferentialAction::NoAction;
    let mut on_update = ReferentialAction::NoAction;
    while let Some(t) = tokens.get(i) {
        if t.is_kw("on") {
            let event = tokens.get(i + 1);
            let (action, len) = referential_action(&tokens[(i + 2).min(tokens.len())..]);
            if event.is_some_and(|e| e.is_kw("delete")) {
                on_delete = action;
            } else if event.is_some_and(|e| e.is_kw("update")) {
                on_update = action;
            }
            i += 2 + len;
        } else if t.is_kw("match")
            || t.is_kw("initially")
            || (t.is_kw("not") && tokens.get(i + 1).is_some_and(|n| n.is_kw("deferrable")))
        {
            // MATCH <name>, INITIALLY DEFERRED|IMMEDIATE, NOT DEFERRABLE: not in the model.
            i += 2;
        } else if t.is_kw("deferrable") {
            i += 1;
        } else {
            break;
        }
    }
    Some((
        ParsedKind::ForeignKey {
            columns,
            ref_table,
            ref_columns,
            on_delete,
            on_update,
        },
        i,
    ))
}

/// `SET NULL`, `SET DEFAULT`, `CASCADE`, `RESTRICT`, `NO ACTION`, and how many tokens it took.
fn referential_action(tokens: &[Token]) -> (ReferentialAction, usize) {
    let first = tokens.first();
    let second = tokens.get(1);
    match (first, second) {
        (Some(a), Some(b)) if a.is_kw("set") && b.is_kw("null") => (ReferentialAction::SetNull, 2),
        (Some(a), Some(b)) if a.is_kw("set") && b.is_kw("default") => {
            (ReferentialAction::SetDefault, 2)
        }
        (Some(a), _) if a.is_kw("cascade") => (ReferentialAction::Cascade, 1),
        (Some(a), _) if a.is_kw("restrict") => (ReferentialAction::Restrict, 1),
        (Some(a), Some(b)) if a.is_kw("no") && b.is_kw("action") => {
            (ReferentialAction::NoAction, 2)
        }
        _ => (ReferentialAction::NoAction, 1),
    }
}

/// Column-level constraints after a column's name (its type words are skipped: none of them is
/// a constraint keyword).
fn parse_column_constraints(
    sql: &str,
    column: &str,
    rest: &[Token],
    out: &mut Vec<ParsedConstraint>,
) {
    let mut name: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        let t = &rest[i];
        if t.is_punct("(") {
            // A type's arguments, a DEFAULT or GENERATED expression: nothing to read inside.
            i = matching_paren(rest, i).map_or(rest.len(), |c| c + 1);
            continue;
        }
        if t.is_kw("constraint") {
            name = rest.get(i + 1).and_then(Token::ident).map(str::to_owned);
            i += 2;
            continue;
        }
        let kind = if t.is_kw("primary") && rest.get(i + 1).is_some_and(|k| k.is_kw("key")) {
            i += 2;
            Some(ParsedKind::PrimaryKey(vec![column.to_owned()]))
        } else if t.is_kw("unique") {
            i += 1;
            Some(ParsedKind::Unique(vec![column.to_owned()]))
        } else if t.is_kw("check") && rest.get(i + 1).is_some_and(|p| p.is_punct("(")) {
            let open = i + 1;
            let close = matching_paren(rest, open).unwrap_or(rest.len() - 1);
            i = close + 1;
            Some(ParsedKind::Check {
                expr: text_between(sql, rest, open, close).to_owned(),
                column: Some(column.to_owned()),
            })
        } else if t.is_kw("references") {
            match references(rest, i + 1, vec![column.to_owned()]) {
                Some((kind, next)) => {
                    i = next;
                    Some(kind)
                }
                None => {
                    i += 1;
                    None
                }
            }
        } else if ["not", "null", "collate", "generated", "as"]
            .iter()
            .any(|kw| t.is_kw(kw))
        {
            // NOT NULL, COLLATE, GENERATED: not constraints of the model; a name before them is
            // theirs.
            name = None;
            i += 1;
            continue;
        } else if t.is_kw("default") {
            // A default's value is one term: a literal, a signed number, a word, or a
            // parenthesised expression (skipped by the loop).
            i += 1;
            if rest
                .get(i)
                .is_some_and(|s| s.is_punct("-") || s.is_punct("+"))
            {
                i += 1;
            }
            if rest.get(i).is_some_and(|s| !s.is_punct("(")) {
                i += 1;
            }
            name = None;
            continue;
        } else {
            i += 1;
            continue;
        };
        if let Some(kind) = kind {
            out.push(ParsedConstraint {
                name: name.take(),
                kind,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CREATE INDEX

/// An index from its `CREATE INDEX` text (its name is set by the caller).
fn parse_index(sql: &str) -> Option<Index> {
    let tokens = tokenize(sql);
    let unique = tokens.get(1).is_some_and(|t| t.is_kw("unique"));
    let on = tokens.iter().position(|t| t.is_kw("on"))?;
    let open = (on..tokens.len()).find(|&i| tokens[i].is_punct("("))?;
    let close = matching_paren(&tokens, open)?;
    let keys = split_commas(&tokens[open + 1..close])
        .into_iter()
        .map(|part| match part {
            [only] if only.ident().is_some() && !matches!(only.tok, Tok::Str(_)) => {
                IndexKey::Column(only.ident().unwrap_or_default().to_owned())
            }
            _ => {
                let text = sql[part[0].start..part[part.len() - 1].end].trim();
                IndexKey::Expr(strip_parens(text).to_owned())
            }
        })
        .collect();
    let predicate = tokens
        .get(close + 1)
        .filter(|t| t.is_kw("where"))
        .map(|w| sql[w.end..].trim().to_owned());
    Some(Index {
        name: String::new(),
        unique,
        keys,
        predicate,
    })
}

// ---------------------------------------------------------------------------------------------
// CREATE TRIGGER

/// The canonical trigger function of a stamp of `column` (see the module's documentation).
fn stamp_function(column: &str) -> Function {
    Function {
        name: TableName::new(format!("set_{column}")),
        body: format!(
            "BEGIN\n    NEW.{} := now() AT TIME ZONE 'utc';\n    RETURN NEW;\nEND",
            quote_ident(column)
        ),
    }
}

/// The trigger and its canonical function, when `sql` is exactly what the renderer writes for a
/// trigger named `name` stamping a column of `table`.
fn stamp_trigger(table: &Table, name: &str, sql: &str) -> Option<(Trigger, Function)> {
    let tokens = tokenize(sql);
    // The stamped column follows `SET`; the renderer's own text for it is then the reference.
    let set = tokens.iter().position(|t| t.is_kw("set"))?;
    let column = tokens.get(set + 1)?.ident()?;
    let column = table.find_column(column).map(|c| c.name.clone())?;
    let function = stamp_function(&column);
    let trigger = Trigger {
        name: name.to_owned(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: function.name.clone(),
    };
    let mut before = Schema::new();
    before
        .functions
        .insert(function.name.clone(), function.clone());
    before.tables.insert(table.name.clone(), table.clone());
    let op = Op::CreateTrigger {
        table: table.name.clone(),
        trigger: trigger.clone(),
    };
    let expected = render(&op, &before, Dialect::Sqlite).ok()?;
    let [statement] = expected.as_slice() else {
        return None;
    };
    let normalize =
        |text: &str| -> Vec<String> { tokenize(text).iter().map(Token::normalized).collect() };
    (normalize(&statement.sql) == normalize(sql)).then_some((trigger, function))
}

/// A trigger the renderer did not write: kept with its whole text, so that it shows as drift.
fn foreign_trigger(name: &str, sqlite_name: &str, sql: &str) -> (Trigger, Function) {
    let tokens = tokenize(sql);
    let timing = if tokens.iter().any(|t| t.is_kw("before")) {
        TriggerTiming::Before
    } else {
        TriggerTiming::After
    };
    let mut events: Vec<TriggerEvent> = [
        ("insert", TriggerEvent::Insert),
        ("update", TriggerEvent::Update),
        ("delete", TriggerEvent::Delete),
    ]
    .into_iter()
    .filter(|(kw, _)| {
        // The event comes before ON; the body's statements after it do not count.
        tokens
            .iter()
            .take_while(|t| !t.is_kw("on"))
            .any(|t| t.is_kw(kw))
    })
    .map(|(_, e)| e)
    .collect();
    events.sort();
    let function = Function {
        name: TableName::new(format!("sqlite_trigger:{sqlite_name}")),
        body: sql.to_owned(),
    };
    (
        Trigger {
            name: name.to_owned(),
            timing,
            events,
            function: function.name.clone(),
        },
        function,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn types_map_back_case_insensitively() {
        assert_eq!(column_type("UUID_TEXT"), ColumnType::Uuid);
        assert_eq!(column_type("varchar(255)"), ColumnType::Varchar(Some(255)));
        assert_eq!(
            column_type("NUMERIC(10, 2)"),
            ColumnType::Numeric(Some((10, 2)))
        );
        assert_eq!(column_type("JSONB_TEXT"), ColumnType::Jsonb);
        // SQLAlchemy's names on SQLite have other affinities: kept, so that check reports them.
        assert_eq!(column_type("JSON"), ColumnType::Other("JSON".to_owned()));
        assert_eq!(
            column_type("DATETIME"),
            ColumnType::Other("DATETIME".to_owned())
        );
    }

    #[test]
    fn defaults_map_back() {
        let text = ColumnType::Text;
        assert_eq!(default_expr("TRUE", &text), DefaultExpr::Bool(true));
        assert_eq!(default_expr("-1", &text), DefaultExpr::Int(-1));
        assert_eq!(
            default_expr("'it''s'", &text),
            DefaultExpr::Text("it's".to_owned())
        );
        assert_eq!(
            default_expr("'{}'", &ColumnType::Jsonb),
            DefaultExpr::Json("{}".to_owned())
        );
        assert_eq!(default_expr("CURRENT_TIMESTAMP", &text), DefaultExpr::Now);
        assert_eq!(
            default_expr(&format!("({RANDOM_UUID})"), &ColumnType::Uuid),
            DefaultExpr::RandomUuid
        );
        assert_eq!(
            default_expr("(lower(hex(randomblob(16))))", &ColumnType::Uuid),
            DefaultExpr::RandomUuidHex
        );
        assert_eq!(
            default_expr("(datetime('now'))", &text),
            DefaultExpr::Sql("datetime('now')".to_owned())
        );
        assert_eq!(
            default_expr("'a' || 'b'", &text),
            DefaultExpr::Sql("'a' || 'b'".to_owned())
        );
    }

    #[test]
    fn constraints_are_read_from_table_text() {
        let sql = r#"CREATE TABLE "t" (
            id UUID_TEXT NOT NULL,
            org INTEGER CONSTRAINT org_fk REFERENCES orgs ON DELETE SET NULL,
            email VARCHAR(255) UNIQUE DEFAULT ('x(') CHECK (length(email) > 3),
            "check" TEXT,
            CONSTRAINT t_pkey PRIMARY KEY (id),
            CONSTRAINT t_email_check CHECK (email LIKE '%@%' AND "check" IN ('a, b')),
            FOREIGN KEY ("check", id) REFERENCES "legacy.other" (a, b) ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED
        )"#;
        let parsed = parse_table_constraints(sql);
        assert_eq!(
            parsed,
            vec![
                ParsedConstraint {
                    name: Some("org_fk".into()),
                    kind: ParsedKind::ForeignKey {
                        columns: vec!["org".into()],
                        ref_table: "orgs".into(),
                        ref_columns: vec![],
                        on_delete: ReferentialAction::SetNull,
                        on_update: ReferentialAction::NoAction,
                    }
                },
                ParsedConstraint {
                    name: None,
                    kind: ParsedKind::Unique(vec!["email".into()])
                },
                ParsedConstraint {
                    name: None,
                    kind: ParsedKind::Check {
                        expr: "length(email) > 3".into(),
                        column: Some("email".into())
                    }
                },
                ParsedConstraint {
                    name: Some("t_pkey".into()),
                    kind: ParsedKind::PrimaryKey(vec!["id".into()])
                },
                ParsedConstraint {
                    name: Some("t_email_check".into()),
                    kind: ParsedKind::Check {
                        expr: "email LIKE '%@%' AND \"check\" IN ('a, b')".into(),
                        column: None
                    }
                },
                ParsedConstraint {
                    name: None,
                    kind: ParsedKind::ForeignKey {
                        columns: vec!["check".into(), "id".into()],
                        ref_table: "legacy.other".into(),
                        ref_columns: vec!["a".into(), "b".into()],
                        on_delete: ReferentialAction::NoAction,
                        on_update: ReferentialAction::Cascade,
                    }
                },
            ]
        );
    }

    #[test]
    fn indexes_are_read_from_their_text() {
        let index = parse_index(
            "CREATE UNIQUE INDEX \"legacy.ix_x\" ON \"legacy.t\" (email, (lower(name)), a || b) WHERE deleted_at IS NULL",
        )
        .unwrap();
        assert!(index.unique);
        assert_eq!(
            index.keys,
            vec![
                IndexKey::Column("email".into()),
                IndexKey::Expr("lower(name)".into()),
                IndexKey::Expr("a || b".into()),
            ]
        );
        assert_eq!(index.predicate.as_deref(), Some("deleted_at IS NULL"));
    }

    #[test]
    fn tokens_survive_comments_and_quotes() {
        let tokens = tokenize("a -- note ( \n \"b\"\"c\" /* ) */ 'd''e' [f g] 1.5e3 ->> x");
        let kinds: Vec<Tok> = tokens.into_iter().map(|t| t.tok).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Word("a".into()),
                Tok::Quoted("b\"c".into()),
                Tok::Str("d'e".into()),
                Tok::Quoted("f g".into()),
                Tok::Num("1.5e3".into()),
                Tok::Punct("->>".into()),
                Tok::Word("x".into()),
            ]
        );
    }
}

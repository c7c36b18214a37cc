//! Codegen: Rust source for a list of ops, so that autogenerate can write a revision file.
//!
//! The output is an expression, `vec![...]`, built only from the crate's public API and its
//! builders (`Table::new(..).column(..)`, `Index::new(..).unique()`), the way a developer would
//! write it by hand, so a generated revision reads like the others and can be edited. It is laid
//! out close to rustfmt's style, and meant to be passed through rustfmt after it is written.

use crate::op::{Backfill, Batching, ColumnChange, Op, RawSql};
use crate::revision::Allowance;
use crate::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, ForeignKey, Function, Index,
    IndexKey, ReferentialAction, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use std::fmt::Write as _;

/// The `use` line a file holding [`rust_ops`]'s output needs: every name it uses is re-exported
/// at the crate's root.
pub const PRELUDE: &str = "use migrate_core::*;";

/// Rust source of a `vec![...]` expression that evaluates to `ops`.
pub fn rust_ops(ops: &[Op]) -> String {
    if ops.is_empty() {
        return "vec![]".to_owned();
    }
    let mut out = String::from("vec![\n");
    for op in ops {
        let _ = writeln!(out, "{},", indent(&op_expr(op)));
    }
    out.push(']');
    out
}

/// Indents every line of `code` by four spaces, except the lines that continue a multi-line raw
/// string: they are the string's content.
fn indent(code: &str) -> String {
    let mut out = String::new();
    let mut in_raw = None::<String>;
    for (i, line) in code.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Lines inside a multi-line raw string are its content: indenting them would change
        // the string.
        if in_raw.is_none() && !line.is_empty() {
            out.push_str("    ");
        }
        out.push_str(line);
        in_raw = raw_state(line, in_raw);
    }
    out
}

/// Tracks whether the end of `line` is inside a raw string: `open` is the terminator being
/// waited for (`"#`), if any.
fn raw_state(line: &str, mut open: Option<String>) -> Option<String> {
    let mut rest = line;
    loop {
        match &open {
            Some(end) => match rest.find(end.as_str()) {
                Some(at) => {
                    rest = &rest[at + end.len()..];
                    open = None;
                }
                None => return open,
            },
            None => {
                // Only raw strings span lines: ordinary literals escape their newlines. An
                // ordinary literal may hold `r#` as text, so whichever opens first wins.
                let raw = rest.find("r#");
                let plain = rest.find('"');
                match (raw, plain) {
                    (Some(r), p) if p.is_none_or(|p| r < p) => {
                        let after = &rest[r + 1..];
                        let hashes = after.len() - after.trim_start_matches('#').len();
                        open = Some(format!("\"{}", "#".repeat(hashes)));
                        rest = &after[hashes + 1..];
                    }
                    (_, Some(p)) => {
                        rest = skip_plain_literal(&rest[p + 1..]);
                    }
                    (_, None) => return None,
                }
            }
        }
    }
}

/// The text after the ordinary string literal whose body starts `body`.
fn skip_plain_literal(body: &str) -> &str {
    let mut escaped = false;
    for (i, ch) in body.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return &body[i + 1..],
            _ => {}
        }
    }
    ""
}

/// A Rust literal for `s`: an ordinary literal when it needs no escapes, a raw string when it
/// holds quotes, backslashes or newlines (SQL bodies read as they are), and an escaped literal
/// for control characters a raw string cannot hold.
fn string(s: &str) -> String {
    let control = s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    if control || !(s.contains('"') || s.contains('\\') || s.contains('\n')) {
        return format!("{s:?}");
    }
    // Enough `#` that the closing `"#..#` cannot occur inside.
    let mut hashes = 1;
    while s.contains(&format!("\"{}", "#".repeat(hashes))) {
        hashes += 1;
    }
    let h = "#".repeat(hashes);
    format!("r{h}\"{s}\"{h}")
}

/// `"x".into()`, for a `String` field.
fn owned(s: &str) -> String {
    format!("{}.into()", string(s))
}

/// `&["a", "b"]`.
fn str_slice(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s)).collect();
    format!("&[{}]", items.join(", "))
}

/// `vec!["a".into(), "b".into()]`.
fn string_vec(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| owned(s)).collect();
    format!("vec![{}]", items.join(", "))
}

/// `TableName::new("users")` or `TableName::qualified("legacy", "users")`.
fn table_name(t: &TableName) -> String {
    match &t.schema {
        Some(schema) => format!(
            "TableName::qualified({}, {})",
            string(schema),
            string(&t.name)
        ),
        None => format!("TableName::new({})", string(&t.name)),
    }
}

/// An argument of type `impl Into<TableName>`: a plain literal when the `From<&str>` conversion
/// gives the same name back (no dot in it), the explicit constructor otherwise.
fn table_name_arg(t: &TableName) -> String {
    if t.schema.is_none() && !t.name.contains('.') {
        string(&t.name)
    } else {
        table_name(t)
    }
}

fn option(value: Option<String>) -> String {
    value.map_or("None".to_owned(), |v| format!("Some({v})"))
}

/// A struct literal, one field a line: `Name {\n    field: value,\n}`.
fn struct_lit(name: &str, fields: &[(&str, String)]) -> String {
    let mut out = format!("{name} {{\n");
    for (field, value) in fields {
        let _ = writeln!(out, "{},", indent(&format!("{field}: {value}")));
    }
    out.push('}');
    out
}

fn op_expr(op: &Op) -> String {
    let t = table_name;
    match op {
        Op::CreateSchema { name } => struct_lit("Op::CreateSchema", &[("name", owned(name))]),
        Op::DropSchema { name } => struct_lit("Op::DropSchema", &[("name", owned(name))]),
        Op::CreateTable(table) => format!("Op::CreateTable(\n{},\n)", indent(&table_expr(table))),
        Op::DropTable { table } => struct_lit("Op::DropTable", &[("table", t(table))]),
        Op::SetTableSchema { table, schema } => struct_lit(
            "Op::SetTableSchema",
            &[
                ("table", t(table)),
                ("schema", option(schema.as_deref().map(owned))),
            ],
        ),
        Op::RenameTable { table, to } => {
            struct_lit("Op::RenameTable", &[("table", t(table)), ("to", owned(to))])
        }
        Op::AddColumn { table, column } => struct_lit(
            "Op::AddColumn",
            &[("table", t(table)), ("column", column_expr(column))],
        ),
        Op::DropColumn { table, column } => struct_lit(
            "Op::DropColumn",
            &[("table", t(table)), ("column", owned(column))],
        ),
        Op::RenameColumn { table, from, to } => struct_lit(
            "Op::RenameColumn",
            &[
                ("table", t(table)),
                ("from", owned(from)),
                ("to", owned(to)),
            ],
        ),
        Op::AlterColumn {
            table,
            column,
            change,
        } => struct_lit(
            "Op::AlterColumn",
            &[
                ("table", t(table)),
                ("column", owned(column)),
                ("change", change_expr(change)),
            ],
        ),
        Op::CreateIndex {
            table,
            index,
            concurrently,
        } => struct_lit(
            "Op::CreateIndex",
            &[
                ("table", t(table)),
                ("index", index_expr(index)),
                ("concurrently", concurrently.to_string()),
            ],
        ),
        Op::DropIndex {
            table,
            name,
            concurrently,
        } => struct_lit(
            "Op::DropIndex",
            &[
                ("table", t(table)),
                ("name", owned(name)),
                ("concurrently", concurrently.to_string()),
            ],
        ),
        Op::AddConstraint {
            table,
            constraint,
            not_valid,
        } => struct_lit(
            "Op::AddConstraint",
            &[
                ("table", t(table)),
                ("constraint", constraint_expr(constraint)),
                ("not_valid", not_valid.to_string()),
            ],
        ),
        Op::ValidateConstraint { table, name } => struct_lit(
            "Op::ValidateConstraint",
            &[("table", t(table)), ("name", owned(name))],
        ),
        Op::DropConstraint { table, name } => struct_lit(
            "Op::DropConstraint",
            &[("table", t(table)), ("name", owned(name))],
        ),
        Op::CreateFunction(function) => {
            format!("Op::CreateFunction({})", function_expr(function))
        }
        Op::DropFunction { name } => struct_lit("Op::DropFunction", &[("name", t(name))]),
        Op::CreateTrigger { table, trigger } => struct_lit(
            "Op::CreateTrigger",
            &[("table", t(table)), ("trigger", trigger_expr(trigger))],
        ),
        Op::DropTrigger { table, name } => struct_lit(
            "Op::DropTrigger",
            &[("table", t(table)), ("name", owned(name))],
        ),
        Op::Sql(raw) => format!("Op::Sql({})", raw_sql_expr(raw)),
        Op::AddConstraintUsingIndex {
            table,
            name,
            index,
            primary_key,
        } => struct_lit(
            "Op::AddConstraintUsingIndex",
            &[
                ("table", t(table)),
                ("name", owned(name)),
                ("index", owned(index)),
                ("primary_key", primary_key.to_string()),
            ],
        ),
        Op::Backfill(backfill) => format!("Op::Backfill({})", backfill_expr(backfill)),
        Op::AlterColumnTypeOnline {
            table,
            column,
            ty,
            using,
            batching,
        } => struct_lit(
            "Op::AlterColumnTypeOnline",
            &[
                ("table", t(table)),
                ("column", owned(column)),
                ("ty", type_expr(ty)),
                ("using", option(using.as_deref().map(owned))),
                ("batching", batching_expr(*batching)),
            ],
        ),
    }
}

/// `Backfill::new("users", "col", "expr")` and one builder call per further setting.
fn backfill_expr(backfill: &Backfill) -> String {
    let mut set = backfill.set.iter();
    let Some((column, expr)) = set.next() else {
        return struct_lit(
            "Backfill",
            &[
                ("table", table_name(&backfill.table)),
                ("set", "vec![]".to_owned()),
                ("filter", option(backfill.filter.as_deref().map(owned))),
                ("batching", batching_expr(backfill.batching)),
            ],
        );
    };
    let mut out = format!(
        "Backfill::new({}, {}, {})",
        table_name_arg(&backfill.table),
        string(column),
        string(expr)
    );
    for (column, expr) in set {
        let _ = write!(out, "\n    .set({}, {})", string(column), string(expr));
    }
    if let Some(filter) = &backfill.filter {
        let _ = write!(out, "\n    .filtered({})", string(filter));
    }
    if backfill.batching != Batching::default() {
        let _ = write!(out, "\n    .batching({})", batching_expr(backfill.batching));
    }
    out
}

fn batching_expr(batching: Batching) -> String {
    if batching == Batching::default() {
        return "Batching::default()".to_owned();
    }
    format!(
        "Batching {{ rows: {}, rows_per_second: {} }}",
        batching.rows,
        option(batching.rows_per_second.map(|r| r.to_string()))
    )
}

/// The `.allow("rule", "why")` calls that carry a revision's allowances, one a line, to chain
/// after `Revision::new(..)` in a revision file (empty when there are none).
pub fn rust_allowances(allowances: &[Allowance]) -> String {
    allowances
        .iter()
        .map(|a| format!("\n    .allow({}, {})", string(&a.rule), string(&a.reason)))
        .collect()
}

/// `Table::new("users")` and one builder call a line, as a revision author writes a table.
fn table_expr(table: &Table) -> String {
    let mut out = format!("Table::new({})", table_name_arg(&table.name));
    let mut call = |method: &str, args: String| {
        // A multi-line argument (a struct literal) continues at the call's indentation.
        let args = indent(&args);
        let _ = write!(out, "\n    .{method}({})", args.trim_start());
    };
    for column in &table.columns {
        call("column", column_expr(column));
    }
    // The builders key a constraint by its own name, as every schema the fold builds does.
    for c in table.constraints.values() {
        let name = string(&c.name);
        match &c.kind {
            ConstraintKind::PrimaryKey { columns } => {
                call("primary_key", format!("{name}, {}", str_slice(columns)))
            }
            ConstraintKind::Unique { columns } => {
                call("unique", format!("{name}, {}", str_slice(columns)))
            }
            ConstraintKind::ForeignKey(fk) if fk.on_update == ReferentialAction::NoAction => call(
                "foreign_key",
                format!(
                    "{name}, {}, {}, {}, {}",
                    str_slice(&fk.columns),
                    table_name_arg(&fk.ref_table),
                    str_slice(&fk.ref_columns),
                    action(fk.on_delete)
                ),
            ),
            ConstraintKind::Check { expr, sqlite: None } => {
                call("check", format!("{name}, {}", string(expr)))
            }
            ConstraintKind::Check {
                expr,
                sqlite: Some(sqlite),
            } => call(
                "check_per_dialect",
                format!("{name}, {}, {}", string(expr), string(sqlite)),
            ),
            kind => call("constraint", format!("{name}, {}", kind_expr(kind))),
        }
    }
    for index in table.indexes.values() {
        call("index", index_expr(index));
    }
    for trigger in table.triggers.values() {
        call("trigger", trigger_expr(trigger));
    }
    out
}

/// `Column::new("email", ColumnType::Text).not_null().default(..)`.
fn column_expr(c: &Column) -> String {
    let mut out = format!("Column::new({}, {})", string(&c.name), type_expr(&c.ty));
    if !c.nullable {
        out.push_str(".not_null()");
    }
    if let Some(d) = &c.default {
        let _ = write!(out, ".default({})", default_expr(d));
    }
    out
}

fn type_expr(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Uuid => "ColumnType::Uuid".into(),
        ColumnType::Varchar(Some(n)) => format!("ColumnType::varchar({n})"),
        ColumnType::Varchar(None) => "ColumnType::Varchar(None)".into(),
        ColumnType::Text => "ColumnType::Text".into(),
        ColumnType::Boolean => "ColumnType::Boolean".into(),
        ColumnType::SmallInt => "ColumnType::SmallInt".into(),
        ColumnType::Integer => "ColumnType::Integer".into(),
        ColumnType::BigInt => "ColumnType::BigInt".into(),
        ColumnType::Numeric(Some((p, s))) => format!("ColumnType::Numeric(Some(({p}, {s})))"),
        ColumnType::Numeric(None) => "ColumnType::Numeric(None)".into(),
        ColumnType::Double => "ColumnType::Double".into(),
        ColumnType::Timestamp => "ColumnType::Timestamp".into(),
        ColumnType::TimestampTz => "ColumnType::TimestampTz".into(),
        ColumnType::Date => "ColumnType::Date".into(),
        ColumnType::Json => "ColumnType::Json".into(),
        ColumnType::Jsonb => "ColumnType::Jsonb".into(),
        ColumnType::Inet => "ColumnType::Inet".into(),
        ColumnType::Bytea => "ColumnType::Bytea".into(),
        ColumnType::Other(name) => format!("ColumnType::Other({})", owned(name)),
    }
}

fn default_expr(d: &DefaultExpr) -> String {
    match d {
        DefaultExpr::Bool(b) => format!("DefaultExpr::Bool({b})"),
        // `i64::MIN` has no literal: `-9223372036854775808` would overflow before the minus.
        DefaultExpr::Int(i64::MIN) => "DefaultExpr::Int(i64::MIN)".into(),
        DefaultExpr::Int(i) => format!("DefaultExpr::Int({i})"),
        DefaultExpr::Text(s) => format!("DefaultExpr::Text({})", owned(s)),
        DefaultExpr::Json(s) => format!("DefaultExpr::Json({})", owned(s)),
        DefaultExpr::Now => "DefaultExpr::Now".into(),
        DefaultExpr::RandomUuid => "DefaultExpr::RandomUuid".into(),
        DefaultExpr::UtcNow => "DefaultExpr::UtcNow".into(),
        DefaultExpr::RandomUuidHex => "DefaultExpr::RandomUuidHex".into(),
        DefaultExpr::Sql(s) => format!("DefaultExpr::Sql({})", owned(s)),
    }
}

fn action(a: ReferentialAction) -> &'static str {
    match a {
        ReferentialAction::NoAction => "ReferentialAction::NoAction",
        ReferentialAction::Restrict => "ReferentialAction::Restrict",
        ReferentialAction::Cascade => "ReferentialAction::Cascade",
        ReferentialAction::SetNull => "ReferentialAction::SetNull",
        ReferentialAction::SetDefault => "ReferentialAction::SetDefault",
    }
}

fn kind_expr(kind: &ConstraintKind) -> String {
    match kind {
        ConstraintKind::PrimaryKey { columns } => struct_lit(
            "ConstraintKind::PrimaryKey",
            &[("columns", string_vec(columns))],
        ),
        ConstraintKind::Unique { columns } => struct_lit(
            "ConstraintKind::Unique",
            &[("columns", string_vec(columns))],
        ),
        ConstraintKind::ForeignKey(fk) => {
            format!("ConstraintKind::ForeignKey({})", foreign_key_expr(fk))
        }
        ConstraintKind::Check { expr, sqlite } => struct_lit(
            "ConstraintKind::Check",
            &[
                ("expr", owned(expr)),
                (
                    "sqlite",
                    sqlite
                        .as_ref()
                        .map_or_else(|| "None".to_owned(), |s| format!("Some({})", owned(s))),
                ),
            ],
        ),
    }
}

fn foreign_key_expr(fk: &ForeignKey) -> String {
    struct_lit(
        "ForeignKey",
        &[
            ("columns", string_vec(&fk.columns)),
            ("ref_table", table_name(&fk.ref_table)),
            ("ref_columns", string_vec(&fk.ref_columns)),
            ("on_delete", action(fk.on_delete).to_owned()),
            ("on_update", action(fk.on_update).to_owned()),
        ],
    )
}

fn constraint_expr(c: &Constraint) -> String {
    struct_lit(
        "Constraint",
        &[("name", owned(&c.name)), ("kind", kind_expr(&c.kind))],
    )
}

/// `Index::new("ix", &["a"])`, or `Index::on_keys` when a key is an expression.
fn index_expr(index: &Index) -> String {
    let columns: Option<Vec<String>> = index
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(c) => Some(c.clone()),
            IndexKey::Expr(_) => None,
        })
        .collect();
    let mut out = match columns {
        Some(columns) => format!(
            "Index::new({}, {})",
            string(&index.name),
            str_slice(&columns)
        ),
        None => {
            let keys: Vec<String> = index
                .keys
                .iter()
                .map(|k| match k {
                    IndexKey::Column(c) => format!("IndexKey::Column({})", owned(c)),
                    IndexKey::Expr(e) => format!("IndexKey::Expr({})", owned(e)),
                })
                .collect();
            format!(
                "Index::on_keys({}, vec![{}])",
                string(&index.name),
                keys.join(", ")
            )
        }
    };
    if index.unique {
        out.push_str(".unique()");
    }
    if let Some(p) = &index.predicate {
        let _ = write!(out, ".filtered({})", string(p));
    }
    out
}

fn change_expr(change: &ColumnChange) -> String {
    let mut fields = Vec::new();
    if let Some((ty, using)) = &change.ty {
        let using = option(using.as_deref().map(owned));
        fields.push(("ty", format!("Some(({}, {using}))", type_expr(ty))));
    }
    if let Some(nullable) = change.nullable {
        fields.push(("nullable", format!("Some({nullable})")));
    }
    if let Some(default) = &change.default {
        let inner = option(default.as_ref().map(default_expr));
        fields.push(("default", format!("Some({inner})")));
    }
    let mut out = struct_lit("ColumnChange", &fields);
    if fields.len() < 3 {
        // Unchanged fields stay `None`: `ColumnChange` is `Default`.
        out.insert_str(out.len() - 1, "    ..Default::default()\n");
    }
    out
}

fn function_expr(f: &Function) -> String {
    struct_lit(
        "Function",
        &[("name", table_name(&f.name)), ("body", owned(&f.body))],
    )
}

fn trigger_expr(trigger: &Trigger) -> String {
    let timing = match trigger.timing {
        TriggerTiming::Before => "TriggerTiming::Before",
        TriggerTiming::After => "TriggerTiming::After",
    };
    let events: Vec<&str> = trigger
        .events
        .iter()
        .map(|e| match e {
            TriggerEvent::Insert => "TriggerEvent::Insert",
            TriggerEvent::Update => "TriggerEvent::Update",
            TriggerEvent::Delete => "TriggerEvent::Delete",
        })
        .collect();
    struct_lit(
        "Trigger",
        &[
            ("name", owned(&trigger.name)),
            ("timing", timing.to_owned()),
            ("events", format!("vec![{}]", events.join(", "))),
            ("function", table_name(&trigger.function)),
        ],
    )
}

fn raw_sql_expr(raw: &RawSql) -> String {
    struct_lit(
        "RawSql",
        &[
            ("description", owned(&raw.description)),
            ("postgres", option(raw.postgres.as_deref().map(owned))),
            ("sqlite", option(raw.sqlite.as_deref().map(owned))),
        ],
    )
}

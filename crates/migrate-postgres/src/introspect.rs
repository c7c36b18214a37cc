//! Introspection: the live schema read from `pg_catalog` into the model, and canonicalization,
//! which asks the database how it spells a model value by creating it where nobody can see it.
//!
//! Both read the catalog the same way ([`read_schema`]); they differ only in which database
//! schemas they read and how those map onto the model's namespaces. That shared reader is what
//! makes `introspect() == canonicalize(expected)` a meaningful drift check: any spelling the
//! server imposes (casts in CHECK expressions, `'x'::character varying` defaults, `lower(email::text)`
//! index keys) appears on both sides.

use crate::{classify, phased::PROGRESS_TABLE, HISTORY_TABLE, VERSION_TABLE};
use migrate_core::render::{quote_ident, render};
use migrate_core::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, Dialect, ForeignKey, Function,
    Index, IndexKey, Op, ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent,
    TriggerTiming,
};
use postgres::{Client, IsolationLevel, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use migrate_core::driver::DriverError;

/// Which database schemas to read, and what they become in the model.
struct Scope {
    /// Database schema name → the model's namespace (`None`: the default one).
    namespaces: Vec<(String, Option<String>)>,
    /// Textual prefixes to rewrite in expression and type text (`scratch.` → `real.`): the server
    /// qualifies objects outside the search path by their schema, and in a canonicalization
    /// that schema is a scratch one whose name must not leak into the result.
    renames: Vec<(String, String)>,
}

impl Scope {
    /// The database schema that maps to the model's default namespace, if read.
    fn default_schema(&self) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|(_, model)| model.is_none())
            .map(|(db, _)| db.as_str())
    }

    /// The model namespace of a database schema; one outside the scope keeps its own name
    /// (a trigger may call a function of `pg_catalog`, for instance).
    fn map(&self, db_schema: &str) -> Option<String> {
        self.namespaces
            .iter()
            .find(|(db, _)| db == db_schema)
            .map_or_else(|| Some(db_schema.to_owned()), |(_, model)| model.clone())
    }

    fn table_name(&self, db_schema: &str, name: String) -> TableName {
        TableName {
            schema: self.map(db_schema),
            name,
        }
    }

    fn rename(&self, text: String) -> String {
        self.renames
            .iter()
            .fold(text, |t, (from, to)| t.replace(from.as_str(), to))
    }
}

/// Reads every non-system database schema; `session_schema` is the model's default namespace.
pub(crate) fn introspect(client: &mut Client, session_schema: &str) -> Result<Schema, DriverError> {
    // One snapshot for every catalog query, so that a concurrent migration cannot show us half
    // of itself; read-only because introspection must never change anything.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(classify)?;
    // The server qualifies names outside the search path in the expressions it prints; pinning
    // it here (not trusting the session) keeps that spelling identical to canonicalize's.
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {}",
        quote_ident(session_schema)
    ))
    .map_err(classify)?;
    // `pg_` is reserved for the system (pg_catalog, pg_toast*, pg_temp_*, pg_toast_temp_*): no
    // user can create a schema of that prefix. Schemas an extension created are the extension's.
    let rows = tx
        .query(
            "SELECT n.nspname::text FROM pg_namespace n \
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass \
                             AND d.objid = n.oid AND d.deptype = 'e') \
             ORDER BY 1",
            &[],
        )
        .map_err(classify)?;
    let namespaces = rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let model = (name != session_schema).then(|| name.clone());
            (name, model)
        })
        .collect();
    let scope = Scope {
        namespaces,
        renames: Vec::new(),
    };
    let schema = read_schema(&mut tx, &scope)?;
    tx.rollback().map_err(classify)?;
    Ok(schema)
}

/// What [`introspect`] would return for a database holding exactly `expected`: creates it in
/// scratch schemas inside a transaction that is always rolled back, and reads those back.
pub(crate) fn canonicalize(
    client: &mut Client,
    session_schema: &str,
    expected: &Schema,
) -> Result<Schema, DriverError> {
    // Dropping the transaction on an early return rolls it back too; the explicit rollback at
    // the end is for the success path, where an error in ROLLBACK itself should surface.
    let mut tx = client.transaction().map_err(classify)?;
    // The backend's pid makes the names unique among concurrent sessions on the server (a
    // client-side pid would not), so two `check`s never wait on each other's uncommitted schema.
    let pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .map_err(classify)?
        .get(0);
    // Numbered, not named after the real schemas: a long or oddly spelled name would be
    // truncated at 63 bytes or need quoting, and `Some("public")` must not meet the default.
    let default_scratch = format!("im_canon_{pid}_d");
    let named: BTreeSet<String> = expected
        .schemas
        .iter()
        .cloned()
        .chain(expected.tables.keys().filter_map(|t| t.schema.clone()))
        .chain(expected.functions.keys().filter_map(|f| f.schema.clone()))
        .collect();
    let scratch_of: BTreeMap<String, String> = named
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), format!("im_canon_{pid}_n{i}")))
        .collect();
    let remap = |name: &TableName| -> TableName {
        let schema = match &name.schema {
            None => Some(default_scratch.clone()),
            Some(s) => Some(scratch_of.get(s).cloned().unwrap_or_else(|| s.clone())),
        };
        TableName {
            schema,
            name: name.name.clone(),
        }
    };

    let mut ops: Vec<Op> = std::iter::once(default_scratch.clone())
        .chain(scratch_of.values().cloned())
        .map(|name| Op::CreateSchema { name })
        .collect();
    ops.extend(expected.functions.values().map(|f| {
        Op::CreateFunction(Function {
            name: remap(&f.name),
            body: f.body.clone(),
        })
    }));
    // Tables without their foreign keys first, then the keys: creation order and reference
    // cycles stop mattering.
    let mut foreign_keys = Vec::new();
    for table in expected.tables.values() {
        let mut scratch = table.clone();
        scratch.name = remap(&table.name);
        for trigger in scratch.triggers.values_mut() {
            trigger.function = remap(&trigger.function);
        }
        let (fks, others): (BTreeMap<_, _>, BTreeMap<_, _>) = scratch
            .constraints
            .into_iter()
            .partition(|(_, c)| matches!(c.kind, ConstraintKind::ForeignKey(_)));
        scratch.constraints = others;
        for mut constraint in fks.into_values() {
            if let ConstraintKind::ForeignKey(fk) = &mut constraint.kind {
                fk.ref_table = remap(&fk.ref_table);
            }
            foreign_keys.push(Op::AddConstraint {
                table: scratch.name.clone(),
                constraint,
                not_valid: false,
            });
        }
        ops.push(Op::CreateTable(scratch));
    }
    ops.extend(foreign_keys);

    // The session schema stays on the path after the scratch one: what the model names bare
    // (an extension's function or type installed there) resolves as it does for `introspect`,
    // and prints bare as it does there. The scratch schema comes first, so the tables, indexes
    // and functions being created win over any real ones of the same name.
    let search_path = format!(
        "SET LOCAL search_path = {}, {}",
        quote_ident(&default_scratch),
        quote_ident(session_schema)
    );
    tx.batch_execute(&search_path).map_err(classify)?;
    let mut folded = Schema::new();
    for op in &ops {
        let statements = render(op, &folded, Dialect::Postgres).map_err(|e| {
            DriverError::Unsupported(format!("cannot canonicalize the expected schema: {e}"))
        })?;
        op.apply(&mut folded).map_err(|e| {
            DriverError::Unsupported(format!(
                "cannot canonicalize the expected schema, it is inconsistent: {e}"
            ))
        })?;
        for statement in statements {
            tx.batch_execute(&statement.sql).map_err(classify)?;
        }
    }

    let scope = Scope {
        namespaces: std::iter::once((default_scratch, None))
            .chain(
                scratch_of
                    .iter()
                    .map(|(real, scratch)| (scratch.clone(), Some(real.clone()))),
            )
            .collect(),
        renames: scratch_of
            .iter()
            .map(|(real, scratch)| (format!("{scratch}."), format!("{}.", quote_ident(real))))
            .collect(),
    };
    let schema = read_schema(&mut tx, &scope)?;
    tx.rollback().map_err(classify)?;
    Ok(schema)
}

/// Every index left INVALID (by a failed or interrupted `CREATE INDEX CONCURRENTLY`) in a
/// non-system schema, as `schema.index` with each part quoted where needed.
pub(crate) fn invalid_indexes(client: &mut Client) -> Result<Vec<String>, DriverError> {
    // An index still being built concurrently is INVALID too, until its build ends: it is
    // somebody's work in progress, not something left behind, so it is not reported.
    let rows = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT i.indisvalid \
             AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                             WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                             AND p.index_relid = i.indexrelid) \
             ORDER BY 1",
            &[],
        )
        .map_err(classify)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The tables (with columns, constraints, indexes, triggers) and trigger functions of the
/// scope's database schemas. A handful of set-wide queries rather than a few per table: a drift
/// check then costs the same round trips for ten tables as for a thousand.
fn read_schema(tx: &mut Transaction<'_>, scope: &Scope) -> Result<Schema, DriverError> {
    let db_schemas: Vec<String> = scope.namespaces.iter().map(|(db, _)| db.clone()).collect();
    let mut schema = Schema::new();
    schema.schemas = scope
        .namespaces
        .iter()
        .filter_map(|(_, model)| model.clone())
        .collect();

    // Objects that belong to an extension are the extension's business (it creates and drops
    // them), not the migrations'.
    let tables = tx
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                             AND d.objid = c.oid AND d.deptype = 'e')",
            &[&db_schemas],
        )
        .map_err(classify)?;
    let default_schema = scope.default_schema();
    let mut by_oid: HashMap<u32, TableName> = HashMap::new();
    for row in &tables {
        let (oid, nsp, name): (u32, String, String) = (row.get(0), row.get(1), row.get(2));
        // The tool's own state tables are not part of the schema it manages.
        if Some(nsp.as_str()) == default_schema
            && (name == VERSION_TABLE || name == HISTORY_TABLE || name == PROGRESS_TABLE)
        {
            continue;
        }
        let table_name = scope.table_name(&nsp, name);
        schema
            .tables
            .insert(table_name.clone(), Table::new(table_name.clone()));
        by_oid.insert(oid, table_name);
    }
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    fn table_of<'s>(
        schema: &'s mut Schema,
        by_oid: &HashMap<u32, TableName>,
        oid: u32,
    ) -> Option<&'s mut Table> {
        by_oid
            .get(&oid)
            .and_then(|name| schema.tables.get_mut(name))
    }

    // A generated column's expression sits in pg_attrdef too, but it is not a default.
    let columns = tx
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), \
             a.attnotnull, CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END \
             FROM pg_attribute a \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .map_err(classify)?;
    for row in &columns {
        let ty: String = row.get(2);
        let not_null: bool = row.get(3);
        let default: Option<String> = row.get(4);
        let column = Column {
            name: row.get(1),
            ty: column_type(&scope.rename(ty)),
            nullable: !not_null,
            default: default.map(|d| default_expr(&scope.rename(d))),
        };
        if let Some(table) = table_of(&mut schema, &by_oid, row.get(0)) {
            table.columns.push(column);
        }
    }

    // NOT NULL constraints (PostgreSQL 18 lists them, as contype 'n') are the columns'
    // nullability; exclusion constraints and constraint triggers have no place in the model.
    let constraints = tx
        .query(
            "SELECT con.conrelid, con.conname::text, con.contype::text, \
             ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
                   ORDER BY k.ord), \
             fn.nspname::text, fc.relname::text, \
             ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum \
                   ORDER BY k.ord), \
             con.confdeltype::text, con.confupdtype::text, pg_get_constraintdef(con.oid) \
             FROM pg_constraint con \
             LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
             LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
             WHERE con.conrelid = ANY($1) AND con.contype IN ('p', 'u', 'f', 'c')",
            &[&oids],
        )
        .map_err(classify)?;
    for row in &constraints {
        let name: String = row.get(1);
        let contype: String = row.get(2);
        let columns: Vec<String> = row.get(3);
        let kind = match contype.as_str() {
            "p" => ConstraintKind::PrimaryKey { columns },
            "u" => ConstraintKind::Unique { columns },
            "f" => {
                let ref_schema: Option<String> = row.get(4);
                let ref_name: Option<String> = row.get(5);
                let (Some(ref_schema), Some(ref_name)) = (ref_schema, ref_name) else {
                    continue;
                };
                ConstraintKind::ForeignKey(ForeignKey {
                    columns,
                    ref_table: scope.table_name(&ref_schema, ref_name),
                    ref_columns: row.get(6),
                    on_delete: referential_action(&row.get::<_, String>(7)),
                    on_update: referential_action(&row.get::<_, String>(8)),
                })
            }
            _ => ConstraintKind::Check {
                expr: check_expr(&scope.rename(row.get(9))),
                sqlite: None,
            },
        };
        if let Some(table) = table_of(&mut schema, &by_oid, row.get(0)) {
            table
                .constraints
                .insert(name.clone(), Constraint { name, kind });
        }
    }

    // The indexes behind a primary key, unique or exclusion constraint are the constraint's
    // (the model lists them there); every other index is listed, INVALID ones included, so
    // that a half-built index shows up as drift. `indkey` is 0-based; INCLUDE columns come
    // after the first `indnkeyatts` and are not keys.
    let indexes = tx
        .query(
            "SELECT i.indrelid, ic.relname::text, i.indisunique, \
             ARRAY(SELECT a.attname::text FROM generate_series(1, i.indnkeyatts::int) AS k \
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND i.indkey[k - 1] > 0 \
                        AND a.attnum = i.indkey[k - 1] \
                   ORDER BY k), \
             ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) \
                   FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k), \
             pg_get_expr(i.indpred, i.indrelid, true) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = ANY($1) \
             AND i.indexrelid NOT IN (SELECT con.conindid FROM pg_constraint con \
                                      WHERE con.conrelid = i.indrelid \
                                      AND con.contype IN ('p', 'u', 'x'))",
            &[&oids],
        )
        .map_err(classify)?;
    for row in &indexes {
        let name: String = row.get(1);
        let columns: Vec<Option<String>> = row.get(3);
        let defs: Vec<String> = row.get(4);
        let keys = columns
            .into_iter()
            .zip(defs)
            .map(|(column, def)| match column {
                Some(c) => IndexKey::Column(c),
                None => IndexKey::Expr(scope.rename(def)),
            })
            .collect();
        let predicate: Option<String> = row.get(5);
        let index = Index {
            name: name.clone(),
            unique: row.get(2),
            keys,
            predicate: predicate.map(|p| scope.rename(p)),
        };
        if let Some(table) = table_of(&mut schema, &by_oid, row.get(0)) {
            table.indexes.insert(name, index);
        }
    }

    // Internal triggers implement foreign keys; statement-level ones are not in the model.
    let triggers = tx
        .query(
            "SELECT t.tgrelid, t.tgname::text, t.tgtype::int, pn.nspname::text, p.proname::text \
             FROM pg_trigger t \
             JOIN pg_proc p ON p.oid = t.tgfoid \
             JOIN pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE t.tgrelid = ANY($1) AND NOT t.tgisinternal AND (t.tgtype::int & 1) = 1",
            &[&oids],
        )
        .map_err(classify)?;
    for row in &triggers {
        let name: String = row.get(1);
        let tgtype: i32 = row.get(2);
        let function_schema: String = row.get(3);
        // Bits of pg_trigger.tgtype (TRIGGER_TYPE_* in the server's trigger.h).
        const BEFORE: i32 = 1 << 1;
        const INSERT: i32 = 1 << 2;
        const DELETE: i32 = 1 << 3;
        const UPDATE: i32 = 1 << 4;
        let events = [
            (INSERT, TriggerEvent::Insert),
            (UPDATE, TriggerEvent::Update),
            (DELETE, TriggerEvent::Delete),
        ]
        .into_iter()
        .filter(|(bit, _)| tgtype & bit != 0)
        .map(|(_, event)| event)
        .collect();
        let trigger = Trigger {
            name: name.clone(),
            timing: if tgtype & BEFORE != 0 {
                TriggerTiming::Before
            } else {
                TriggerTiming::After
            },
            events,
            function: scope.table_name(&function_schema, row.get(4)),
        };
        if let Some(table) = table_of(&mut schema, &by_oid, row.get(0)) {
            table.triggers.insert(name, trigger);
        }
    }

    let functions = tx
        .query(
            "SELECT n.nspname::text, p.proname::text, p.prosrc FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = ANY($1) AND p.prokind = 'f' \
             AND p.prorettype = 'pg_catalog.trigger'::regtype \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                             AND d.objid = p.oid AND d.deptype = 'e')",
            &[&db_schemas],
        )
        .map_err(classify)?;
    for row in &functions {
        let nsp: String = row.get(0);
        let name = scope.table_name(&nsp, row.get(1));
        schema.functions.insert(
            name.clone(),
            Function {
                name,
                body: row.get(2),
            },
        );
    }
    Ok(schema)
}

/// `format_type`'s text in the model's vocabulary; what the model has no name for is kept
/// verbatim, so it still renders and still compares.
fn column_type(text: &str) -> ColumnType {
    match text {
        "uuid" => return ColumnType::Uuid,
        "character varying" => return ColumnType::Varchar(None),
        "text" => return ColumnType::Text,
        "boolean" => return ColumnType::Boolean,
        "smallint" => return ColumnType::SmallInt,
        "integer" => return ColumnType::Integer,
        "bigint" => return ColumnType::BigInt,
        "numeric" => return ColumnType::Numeric(None),
        "double precision" => return ColumnType::Double,
        "timestamp without time zone" => return ColumnType::Timestamp,
        "timestamp with time zone" => return ColumnType::TimestampTz,
        "date" => return ColumnType::Date,
        "json" => return ColumnType::Json,
        "jsonb" => return ColumnType::Jsonb,
        "inet" => return ColumnType::Inet,
        "bytea" => return ColumnType::Bytea,
        _ => {}
    }
    let args = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
    };
    if let Some(n) = args("character varying(").and_then(|n| n.parse().ok()) {
        return ColumnType::Varchar(Some(n));
    }
    if let Some((p, s)) = args("numeric(").and_then(|a| a.split_once(',')) {
        if let (Ok(p), Ok(s)) = (p.trim().parse(), s.trim().parse()) {
            return ColumnType::Numeric(Some((p, s)));
        }
    }
    ColumnType::Other(text.to_owned())
}

/// `pg_get_expr`'s text of a default, recognised as the model's kinds where it is one of them.
/// The server spells the model's own renderings this way: `'x'` becomes `'x'::character varying`
/// (or `::text`), a negative integer `'-1'::integer`, `'{}'` on a jsonb column `'{}'::jsonb`.
fn default_expr(text: &str) -> DefaultExpr {
    match text {
        "true" => return DefaultExpr::Bool(true),
        "false" => return DefaultExpr::Bool(false),
        "now()" | "CURRENT_TIMESTAMP" => return DefaultExpr::Now,
        "gen_random_uuid()" => return DefaultExpr::RandomUuid,
        // How the server prints `(now() AT TIME ZONE 'utc')` (PostgreSQL 15).
        t if t.eq_ignore_ascii_case("(now() AT TIME ZONE 'utc'::text)") => {
            return DefaultExpr::UtcNow
        }
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return DefaultExpr::Int(i);
    }
    if let Some((literal, cast)) = split_literal(text) {
        match cast {
            "::character varying" | "::text" => return DefaultExpr::Text(literal),
            "::json" | "::jsonb" => return DefaultExpr::Json(literal),
            "::integer" | "::bigint" | "::smallint" => {
                if let Ok(i) = literal.parse::<i64>() {
                    return DefaultExpr::Int(i);
                }
            }
            _ => {}
        }
    }
    DefaultExpr::Sql(text.to_owned())
}

/// Splits a leading standard SQL string literal off `text`: its unescaped value, and the rest.
fn split_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
        } else if chars.peek().is_some_and(|&(_, next)| next == '\'') {
            chars.next();
            value.push('\'');
        } else {
            return Some((value, &body[i + 1..]));
        }
    }
    None
}

/// The expression of `pg_get_constraintdef`'s `CHECK (<expr>)[ NOT VALID]`. Whether a
/// constraint is validated is not part of the model, so ` NOT VALID` is left out.
fn check_expr(def: &str) -> String {
    let def = def.strip_suffix(" NOT VALID").unwrap_or(def);
    let expr = def
        .strip_prefix("CHECK (")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(def);
    array_casts_outside(expr)
}

/// Rewrites `ARRAY[('a'::T)::U, ('b'::T)::U]` as `(ARRAY['a'::T, 'b'::T])::U[]`.
///
/// Both mean the same, and PostgreSQL prints the second for `col IN ('a', 'b')` on a `varchar`
/// column, but reading that text back (as `pg_restore` does) stores the first: without this, a
/// database restored from a backup would show drift in every such CHECK. Anything else is left
/// as it is.
fn array_casts_outside(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = find_outside_literals(rest, "ARRAY[") {
        out.push_str(&rest[..at]);
        let body_start = at + "ARRAY[".len();
        let Some(len) = bracketed_len(&rest[body_start..]) else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        match elements_cast_alike(body) {
            Some((inners, outer)) => {
                out.push_str(&format!("(ARRAY[{}])::{outer}[]", inners.join(", ")));
            }
            None => out.push_str(&rest[at..body_start + len + 1]),
        }
        rest = &rest[body_start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of `needle` in `text` outside single-quoted literals.
fn find_outside_literals(text: &str, needle: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && text[i..].starts_with(needle) {
            return Some(i);
        }
    }
    None
}

/// The length of the text before the `]` that closes an opened `[`, quotes and nesting
/// respected.
fn bracketed_len(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '[' | '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The elements of an array body when every one is `(<literal>::T)::U` with the same `U`:
/// the inner `<literal>::T` of each, and `U`.
fn elements_cast_alike(body: &str) -> Option<(Vec<&str>, &str)> {
    let mut inners = Vec::new();
    let mut outer: Option<&str> = None;
    for element in split_top_level(body) {
        let element = element.trim();
        let rest = element.strip_prefix('(')?;
        let close = bracketed_close_paren(rest)?;
        let inner = &rest[..close];
        let cast = rest[close + 1..].strip_prefix("::")?;
        if !inner.starts_with('\'') || cast.is_empty() || cast.contains(['(', ')', '[', ':']) {
            return None;
        }
        if outer.is_some_and(|o| o != cast) {
            return None;
        }
        outer = Some(cast);
        inners.push(inner);
    }
    Some((inners, outer?))
}

/// The offset of the `)` closing an opened `(`, quotes and nesting respected.
fn bracketed_close_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '(' | '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `text` split at its commas outside literals, parentheses and brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `pg_constraint.confdeltype`/`confupdtype`.
fn referential_action(code: &str) -> ReferentialAction {
    match code {
        "r" => ReferentialAction::Restrict,
        "c" => ReferentialAction::Cascade,
        "n" => ReferentialAction::SetNull,
        "d" => ReferentialAction::SetDefault,
        _ => ReferentialAction::NoAction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_in_list_reads_as_the_migrated_one() {
        let migrated = "CHECK (((status)::text = ANY ((ARRAY['active'::character varying, 'it''s, [x]'::character varying])::text[])))";
        let restored = "CHECK (((status)::text = ANY (ARRAY[('active'::character varying)::text, ('it''s, [x]'::character varying)::text])))";
        assert_eq!(check_expr(restored), check_expr(migrated));
        assert_eq!(
            check_expr(migrated),
            "((status)::text = ANY ((ARRAY['active'::character varying, 'it''s, [x]'::character varying])::text[]))"
        );
        // Anything else is left alone.
        for other in [
            "(status = ANY (ARRAY['a'::text, 'b'::text]))",
            "(n = ANY (ARRAY[(1)::bigint, (2)::integer]))",
            "(tags && ARRAY[('a'::character varying)::text, upper('b'::text)])",
            "(note <> 'ARRAY[('::text)",
        ] {
            assert_eq!(array_casts_outside(other), other);
        }
    }

    #[test]
    fn types_map_to_the_model() {
        assert_eq!(
            column_type("character varying(30)"),
            ColumnType::Varchar(Some(30))
        );
        assert_eq!(column_type("character varying"), ColumnType::Varchar(None));
        assert_eq!(
            column_type("numeric(10,2)"),
            ColumnType::Numeric(Some((10, 2)))
        );
        assert_eq!(
            column_type("timestamp with time zone"),
            ColumnType::TimestampTz
        );
        assert_eq!(
            column_type("timestamp(3) without time zone"),
            ColumnType::Other("timestamp(3) without time zone".to_owned())
        );
        assert_eq!(
            column_type("text[]"),
            ColumnType::Other("text[]".to_owned())
        );
    }

    #[test]
    fn defaults_are_recognised() {
        assert_eq!(
            default_expr("'it''s'::character varying"),
            DefaultExpr::Text("it's".to_owned())
        );
        assert_eq!(default_expr("'x'::text"), DefaultExpr::Text("x".to_owned()));
        assert_eq!(
            default_expr("'{}'::jsonb"),
            DefaultExpr::Json("{}".to_owned())
        );
        assert_eq!(default_expr("5"), DefaultExpr::Int(5));
        assert_eq!(
            default_expr("(now() AT TIME ZONE 'utc'::text)"),
            DefaultExpr::UtcNow
        );
        assert_eq!(default_expr("'-1'::integer"), DefaultExpr::Int(-1));
        assert_eq!(default_expr("'7'::bigint"), DefaultExpr::Int(7));
        assert_eq!(default_expr("false"), DefaultExpr::Bool(false));
        assert_eq!(default_expr("CURRENT_TIMESTAMP"), DefaultExpr::Now);
        assert_eq!(default_expr("now()"), DefaultExpr::Now);
        assert_eq!(default_expr("gen_random_uuid()"), DefaultExpr::RandomUuid);
        assert_eq!(
            default_expr("'2020-01-01'::date"),
            DefaultExpr::Sql("'2020-01-01'::date".to_owned())
        );
        assert_eq!(
            default_expr("'a'::text || 'b'::text"),
            DefaultExpr::Sql("'a'::text || 'b'::text".to_owned())
        );
    }

    #[test]
    fn check_definitions_lose_their_wrapping() {
        assert_eq!(check_expr("CHECK ((a > 0)) NOT VALID"), "(a > 0)");
        assert_eq!(check_expr("CHECK ((a > 0))"), "(a > 0)");
    }
}

//! An introspection oracle: the tables of a database as normalized text, read from
//! `pg_catalog` without any of the product's code.

use postgres::Client;

/// Tables the migration tool owns, left out of every description.
const TOOL_TABLES: [&str; 3] = [
    "alembic_version",
    "identity_migrate_history",
    "identity_migrate_progress",
];

/// Describes every ordinary or partitioned table in `schemas` (except the tool's own
/// `alembic_version`, `identity_migrate_history` and `identity_migrate_progress`), in the shape of the spec's per-table
/// sections. Panics if a catalog query fails.
///
/// Tables are sorted by (schema, name) in byte order and separated by one empty line; every
/// line ends with `\n`, and no table gives the empty string. A table in `public` is written
/// bare, any other as `schema.table`:
///
/// ```text
/// table users
///   column id uuid not null
///   column status varchar(30) null default 'active'::character varying
///   constraint users_pkey PRIMARY KEY (id)
///   index users_pkey CREATE UNIQUE INDEX users_pkey ON users (id)
/// ```
///
/// - columns in `attnum` order: name, type, `null`/`not null`, then ` default <expr>` if the
///   column has a server default (` generated <expr>` for a stored generated column,
///   ` identity always`/` identity by default` for an identity column). Types are
///   `format_type` shortened: `varchar(N)`, `timestamp`, `timestamptz`, else as printed
///   (`uuid`, `text`, `boolean`, `integer`, `bigint`, `json`, `jsonb`, `inet`...).
/// - constraints sorted by name, as `pg_get_constraintdef` prints them (NOT NULL is left to
///   the columns).
/// - indexes sorted by name, as `pg_get_indexdef` prints them without ` USING btree` and
///   without the `public.` before the table name.
///
/// The catalog is read in one transaction with `search_path` set to `public`, so names are
/// qualified the same way whatever the session's own setting.
pub fn describe_schema(client: &mut Client, schemas: &[&str]) -> String {
    let mut tx = client.transaction().expect("begin describe_schema");
    tx.batch_execute("SET LOCAL search_path TO public")
        .expect("set search_path");
    let mut tables: Vec<(String, String, u32)> = tx
        .query(
            "SELECT n.nspname::text, c.relname::text, c.oid FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) \
             AND NOT (c.relname = ANY($2))",
            &[&schemas, &&TOOL_TABLES[..]],
        )
        .expect("list tables")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    tables.sort();
    let mut sections = Vec::new();
    for (schema, name, oid) in tables {
        let mut out = if schema == "public" {
            format!("table {name}\n")
        } else {
            format!("table {schema}.{name}\n")
        };
        let columns = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                 pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text, a.attidentity::text \
                 FROM pg_attribute a \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&oid],
            )
            .expect("list columns");
        for c in &columns {
            let ty: String = c.get(1);
            let nullable = if c.get(2) { "not null" } else { "null" };
            out += &format!(
                "  column {} {} {nullable}",
                c.get::<_, String>(0),
                short(&ty)
            );
            let default: Option<String> = c.get(3);
            let generated: String = c.get(4);
            let identity: String = c.get(5);
            match (default, generated.as_str()) {
                (Some(expr), "s") => out += &format!(" generated {expr}"),
                (Some(expr), _) => out += &format!(" default {expr}"),
                (None, _) => {}
            }
            match identity.as_str() {
                "a" => out += " identity always",
                "d" => out += " identity by default",
                _ => {}
            }
            out.push('\n');
        }
        let mut constraints: Vec<(String, String)> = tx
            .query(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = $1 AND contype <> 'n'",
                &[&oid],
            )
            .expect("list constraints")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        constraints.sort();
        for (name, def) in constraints {
            out += &format!("  constraint {name} {def}\n");
        }
        let mut indexes: Vec<(String, String)> = tx
            .query(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1",
                &[&oid],
            )
            .expect("list indexes")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        indexes.sort();
        for (name, def) in indexes {
            let def = def
                .replacen(" ON public.", " ON ", 1)
                .replacen(" ON ONLY public.", " ON ONLY ", 1)
                .replacen(" USING btree", "", 1);
            out += &format!("  index {name} {def}\n");
        }
        sections.push(out);
    }
    tx.rollback().expect("end describe_schema");
    sections.join("\n")
}

/// `format_type`'s text, shortened for the common types.
fn short(ty: &str) -> String {
    if let Some(rest) = ty.strip_prefix("character varying") {
        return format!("varchar{rest}");
    }
    if let Some(rest) = ty.strip_prefix("timestamp") {
        if let Some(p) = rest.strip_suffix(" without time zone") {
            return format!("timestamp{p}");
        }
        if let Some(p) = rest.strip_suffix(" with time zone") {
            return format!("timestamptz{p}");
        }
    }
    ty.to_string()
}

/// `described` (the text of [`describe_schema`]) with `column` of `table` moved after that
/// table's last column: where PostgreSQL leaves a column whose type was changed online and back
/// (a new column takes its place each way, and columns are added last). Nothing else moves.
pub fn with_column_last(described: &str, table: &str, column: &str) -> String {
    let table_line = format!("table {table}");
    let column_prefix = format!("  column {column} ");
    let mut out: Vec<&str> = Vec::new();
    let mut held: Option<&str> = None;
    let mut in_table = false;
    for line in described.lines() {
        if line.starts_with("table ") {
            in_table = line == table_line;
        }
        if in_table && line.starts_with(&column_prefix) {
            held = Some(line);
            continue;
        }
        if let Some(h) = held {
            if !line.starts_with("  column ") {
                out.push(h);
                held = None;
            }
        }
        out.push(line);
    }
    out.extend(held);
    let mut text = out.join("\n");
    if described.ends_with('\n') {
        text.push('\n');
    }
    text
}

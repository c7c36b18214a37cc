//! Rendering: `render(op, &schema_before, dialect) -> statements`, pure, one module per dialect.

mod framing;
pub(crate) mod postgres;
mod sqlite;

pub use framing::{
    transaction_framing, ShellApplication, TransactionFraming, FOREIGN_KEY_CHECK, FOREIGN_KEY_GUARD,
};

use crate::graph::{RevisionGraph, Step};
use crate::op::{ModelError, Op};
use crate::phase::Phase;
use crate::revision::Direction;
use crate::schema::Schema;
use std::collections::BTreeSet;
use std::fmt;

/// A SQL dialect the tool renders for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL 12 and later.
    Postgres,
    /// SQLite 3.35 and later.
    Sqlite,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Postgres => "postgresql",
            Dialect::Sqlite => "sqlite",
        })
    }
}

/// One SQL statement, without its trailing semicolon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// Whether it may run inside a transaction block.
    pub transactional: bool,
}

impl Statement {
    /// A statement that may run inside a transaction.
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            transactional: true,
        }
    }
}

/// Why ops could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderError {
    /// An op does not apply to the schema it meets (the revision is wrong).
    Model {
        /// The revision.
        revision: String,
        /// Which way.
        direction: Direction,
        /// The op's position in its list, from 0.
        op: usize,
        /// What is wrong.
        error: Box<ModelError>,
    },
    /// A step names a revision the graph does not have.
    UnknownRevision(String),
    /// The dialect cannot express this op.
    Unsupported {
        /// The dialect.
        dialect: Dialect,
        /// What it cannot do.
        what: String,
    },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Model {
                revision,
                direction,
                op,
                error,
            } => write!(
                f,
                "revision {revision} ({}) op #{}: {error}",
                direction.as_str(),
                op + 1
            ),
            RenderError::UnknownRevision(id) => write!(f, "unknown revision {id}"),
            RenderError::Unsupported { dialect, what } => {
                write!(f, "{dialect} cannot {what}")
            }
        }
    }
}

impl std::error::Error for RenderError {}

/// Renders one op against the schema it applies to, as one list of statements: the fallback of
/// its phases, which runs in one transaction unless a statement says otherwise (see
/// [`crate::phase`]).
pub fn render(op: &Op, before: &Schema, dialect: Dialect) -> Result<Vec<Statement>, RenderError> {
    match dialect {
        Dialect::Postgres => Ok(postgres::render(op, before)),
        Dialect::Sqlite => sqlite::render(op, before),
    }
}

/// Renders one op against the schema it applies to as its phases (see [`crate::phase`]).
///
/// SQLite: one [`Phase::Transaction`] holding what [`render`] gives, since a database with one
/// writer gains nothing from splitting it.
pub fn phases(op: &Op, before: &Schema, dialect: Dialect) -> Result<Vec<Phase>, RenderError> {
    match dialect {
        Dialect::Postgres => Ok(postgres::phases(op, before)),
        Dialect::Sqlite => {
            let statements = sqlite::render(op, before)?;
            Ok(if statements.is_empty() {
                Vec::new()
            } else {
                vec![Phase::Transaction(statements)]
            })
        }
    }
}

/// Statements that remove what an op run outside a transaction leaves behind when it fails
/// halfway (an INVALID index after a failed concurrent build). Empty for transactional ops: their
/// transaction's rollback already does this.
pub fn cleanup(op: &Op, dialect: Dialect) -> Vec<Statement> {
    match dialect {
        Dialect::Postgres => postgres::cleanup(op),
        Dialect::Sqlite => sqlite::cleanup(op),
    }
}

/// Renders a list of ops of one revision, folding each into `schema` as it goes.
///
/// A run of consecutive `AlterColumn` ops changes each table once: one `ALTER TABLE` per table
/// on PostgreSQL (see [`postgres::grouped_alters`]), one rebuild per table on SQLite. Each
/// `ALTER TABLE` that changes a type rewrites the whole table and rebuilds its indexes (and on
/// SQLite every change is a copy of the table), so nine column changes of `users` would
/// otherwise rewrite it nine times while holding its lock.
pub fn render_ops(
    revision: &str,
    direction: Direction,
    ops: &[Op],
    schema: &mut Schema,
    dialect: Dialect,
) -> Result<Vec<Statement>, RenderError> {
    render_ops_as(revision, direction, ops, schema, dialect, true)
}

/// [`render_ops`] one op at a time, as checksums were first recorded: the checksum of a
/// revision must not change when the renderer learns to run it faster.
pub(crate) fn render_ops_one_by_one(
    revision: &str,
    direction: Direction,
    ops: &[Op],
    schema: &mut Schema,
    dialect: Dialect,
) -> Result<Vec<Statement>, RenderError> {
    render_ops_as(revision, direction, ops, schema, dialect, false)
}

fn render_ops_as(
    revision: &str,
    direction: Direction,
    ops: &[Op],
    schema: &mut Schema,
    dialect: Dialect,
    group_alters: bool,
) -> Result<Vec<Statement>, RenderError> {
    let apply = |op: &Op, i: usize, schema: &mut Schema| {
        op.apply(schema).map_err(|error| RenderError::Model {
            revision: revision.to_owned(),
            direction,
            op: i,
            error: Box::new(error),
        })
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let run = if group_alters {
            ops[i..]
                .iter()
                .take_while(|op| matches!(op, Op::AlterColumn { .. }))
                .count()
        } else {
            0
        };
        let grouped = match dialect {
            _ if run < 2 => None,
            Dialect::Postgres if !postgres::changes_key_column_type(&ops[i..i + run], schema) => {
                Some(postgres::grouped_alters(&ops[i..i + run]))
            }
            Dialect::Sqlite => Some(sqlite::grouped_alters(&ops[i..i + run], schema)?),
            _ => None,
        };
        if let Some(statements) = grouped {
            out.extend(statements);
            for (k, op) in ops[i..i + run].iter().enumerate() {
                apply(op, i + k, schema)?;
            }
            i += run;
            continue;
        }
        out.extend(render(&ops[i], schema, dialect)?);
        apply(&ops[i], i, schema)?;
        i += 1;
    }
    Ok(out)
}

/// Renders one plan step, folding its ops into `schema` (which must be the schema before it).
pub fn render_step(
    graph: &RevisionGraph,
    step: &Step,
    schema: &mut Schema,
    dialect: Dialect,
) -> Result<Vec<Statement>, RenderError> {
    let revision = graph
        .get(&step.revision)
        .ok_or_else(|| RenderError::UnknownRevision(step.revision.clone()))?;
    render_ops(
        &revision.id,
        step.direction,
        revision.ops(step.direction),
        schema,
        dialect,
    )
}

/// The schema after applying exactly the given revisions (ancestors included), in graph order.
pub fn schema_at(graph: &RevisionGraph, applied: &BTreeSet<String>) -> Result<Schema, RenderError> {
    let mut schema = Schema::new();
    for r in graph.revisions().iter().filter(|r| applied.contains(&r.id)) {
        crate::op::apply_all(&mut schema, &r.upgrade).map_err(|(op, error)| {
            RenderError::Model {
                revision: r.id.clone(),
                direction: Direction::Up,
                op,
                error,
            }
        })?;
    }
    Ok(schema)
}

/// Quotes an identifier for PostgreSQL and SQLite when it needs quoting.
pub fn quote_ident(ident: &str) -> String {
    let plain = ident
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && ident
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !RESERVED.contains(&ident);
    if plain {
        ident.to_owned()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// `a, b, c` with each column quoted as needed: the same in every dialect.
pub(crate) fn column_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A referential action as SQL, the same in every dialect.
pub(crate) fn action(a: crate::schema::ReferentialAction) -> &'static str {
    use crate::schema::ReferentialAction;
    match a {
        ReferentialAction::NoAction => "NO ACTION",
        ReferentialAction::Restrict => "RESTRICT",
        ReferentialAction::Cascade => "CASCADE",
        ReferentialAction::SetNull => "SET NULL",
        ReferentialAction::SetDefault => "SET DEFAULT",
    }
}

/// Quotes a string literal the SQL-standard way (PostgreSQL with standard_conforming_strings).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Words that cannot stand bare as a column or table name (PostgreSQL's reserved keywords and the
/// type names it refuses as bare identifiers in some positions).
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

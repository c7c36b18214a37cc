//! Lint of SQL text: a hand-written or generated script, or the body of an `Op::Sql`, judged by
//! the same rules as ops.
//!
//! The text is parsed by squawk's PostgreSQL grammar (`squawk-syntax`: pure Rust, lossless and
//! error-tolerant, so one statement it cannot parse does not hide the others). It was chosen
//! over the two other candidates, measured on this project's 2-core machine:
//!
//! - `pg_query` binds the real parser (libpg_query, C) and has the best fidelity, but its build
//!   runs `bindgen`, which needs libclang (not installed here, nor on a fresh CI machine) and
//!   compiles PostgreSQL's parser from C: a system dependency and minutes of CI for a lint.
//! - `sqlparser` (pure Rust, PostgreSQL dialect) builds in 35 s at `opt-level = 0` (3.5 min at
//!   the workspace's `opt-level = 1` for dependencies), but refused `DROP INDEX CONCURRENTLY IF
//!   EXISTS` and `ALTER TABLE .. SET SCHEMA`, which this tool's own renderer writes, and `DO`
//!   blocks: its grammar is a portable SQL one with PostgreSQL additions.
//! - `squawk-syntax` builds in about 40 s at `opt-level = 0` (set in the workspace profile),
//!   needs nothing from the system, and parsed every statement of the same probe, including
//!   `USING INDEX`, `NOT VALID`, `REINDEX CONCURRENTLY` and PL/pgSQL bodies.
//!
//! Each statement that maps onto an op (most `ALTER TABLE` actions, `CREATE`/`DROP INDEX`,
//! `CREATE`/`DROP TABLE`) becomes that op, is judged by [`lint_op`] against the schema, and is
//! folded into it, so a later statement sees what an earlier one did (a table created in the
//! script is new to the statements after it). Statements that only read or set session state
//! (`SELECT`, `SET`, `BEGIN`, `COMMENT`, trigger and function DDL) are let pass;
//! `BEGIN`/`COMMIT` also tell whether a statement runs inside a transaction block. Data changes
//! of tables the script created are let pass too (nobody else sees those tables yet); an
//! `UPDATE` of a whole existing table is `unbatched-update`. Everything else, and every
//! statement that does not parse, is `unknown-sql`: never passed in silence.
//!
//! A table the schema does not hold is taken to exist (a script is often linted with no
//! database at hand): lint errs on the side of a finding.

use super::rules::{unbatched_update, unknown_sql};
use super::{lint_op, track_created, Finding, LintContext, Location, TransactionMode};
use crate::op::{ColumnChange, Op};
use crate::revision::Direction;
use crate::schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, ForeignKey, Index, IndexKey,
    ReferentialAction, Schema, Table, TableName,
};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

/// Lints a SQL script against `schema` (the database it will run on, as far as known). Each
/// finding's location is the statement's position in the script, from 0.
pub fn lint_sql(text: &str, schema: &Schema, ctx: &LintContext) -> Vec<Finding> {
    let mut out = lint_statements(text, schema, ctx);
    // `lint_statements` numbers its findings; a script has no revision.
    for f in &mut out {
        if let Some(l) = &mut f.location {
            l.revision = None;
        }
    }
    out
}

/// What a statement is to lint.
enum Judged {
    /// It maps onto these ops.
    Ops(Vec<Op>),
    /// It reads, or changes session state only.
    Harmless,
    /// An `UPDATE` of every row of this table.
    WholeTableUpdate(TableName),
    /// A data change of this table (harmless if the script created it).
    DataChange(TableName, &'static str),
    /// Lint cannot judge it; what it is.
    Unknown(&'static str),
}

/// Lints statements, folding those that map onto ops into a copy of `schema`.
pub(crate) fn lint_statements(text: &str, schema: &Schema, ctx: &LintContext) -> Vec<Finding> {
    let parse = SourceFile::parse(text);
    let errors = parse.errors();
    let mut schema = schema.clone();
    let mut ctx = ctx.clone();
    let outer_mode = ctx.transaction;
    let mut out = Vec::new();
    for (i, stmt) in parse.tree().stmts().enumerate() {
        let syntax = stmt.syntax();
        let sql = syntax.text().to_string();
        let location = Some(Location {
            revision: None,
            direction: Direction::Up,
            index: i,
        });
        let found = if let Some(error) = errors
            .iter()
            .find(|e| syntax.text_range().contains_range(e.range()))
        {
            vec![unknown(
                &format!("a statement that does not parse ({})", error.message()),
                &sql,
            )]
        } else {
            match judge(&stmt, &schema, &mut ctx, outer_mode) {
                Judged::Ops(ops) => {
                    let mut found = Vec::new();
                    for op in ops {
                        found.extend(lint_op(&op, &schema, &ctx));
                        // A script may meet a schema that is not the whole truth: what does not
                        // apply is judged all the same, and left out of the fold.
                        let _ = op.apply(&mut schema);
                        track_created(&op, &mut ctx.created);
                    }
                    found
                }
                Judged::Harmless => Vec::new(),
                Judged::DataChange(table, _) if ctx.created.contains(&table) => Vec::new(),
                Judged::WholeTableUpdate(table) if ctx.created.contains(&table) => Vec::new(),
                Judged::WholeTableUpdate(table) => {
                    let sized = match ctx.sizes.get(&table) {
                        Some(size) => format!("{table} ({size})"),
                        None => table.to_string(),
                    };
                    let f = unbatched_update::whole_table(sized, &table);
                    vec![finding(unbatched_update::RULE_ID, f)]
                }
                Judged::DataChange(_, what) | Judged::Unknown(what) => {
                    vec![unknown(what, &sql)]
                }
            }
        };
        out.extend(found.into_iter().map(|mut f| {
            f.location = location.clone();
            f
        }));
    }
    out
}

fn finding(rule: &'static str, f: super::Found) -> Finding {
    let meta = super::rule(rule).expect("the rule exists");
    Finding {
        rule,
        severity: meta.severity,
        location: None,
        object: f.object,
        message: f.message,
        help: f.help,
        allowed: None,
    }
}

fn unknown(what: &str, sql: &str) -> Finding {
    finding(unknown_sql::RULE_ID, unknown_sql::statement(what, sql))
}

/// What a statement is, and the ops it maps onto.
fn judge(
    stmt: &ast::Stmt,
    schema: &Schema,
    ctx: &mut LintContext,
    outer_mode: TransactionMode,
) -> Judged {
    use ast::Stmt;
    match stmt {
        Stmt::Begin(_) => {
            ctx.transaction = TransactionMode::Single;
            Judged::Harmless
        }
        Stmt::Commit(_) | Stmt::Rollback(_) => {
            ctx.transaction = outer_mode;
            Judged::Harmless
        }
        Stmt::Select(_)
        | Stmt::CompoundSelect(_)
        | Stmt::ParenSelect(_)
        | Stmt::Set(_)
        | Stmt::Reset(_)
        | Stmt::Show(_)
        | Stmt::CommentOn(_)
        | Stmt::Analyze(_)
        | Stmt::Explain(_)
        | Stmt::SavepointCreate(_)
        | Stmt::ReleaseSavepoint(_)
        | Stmt::CreateFunction(_)
        | Stmt::DropFunction(_)
        | Stmt::CreateTrigger(_)
        | Stmt::DropTrigger(_)
        | Stmt::CreateSchema(_)
        | Stmt::DropSchema(_)
        | Stmt::EmptyStmt(_) => Judged::Harmless,
        Stmt::AlterTable(alter) => alter_table(alter),
        Stmt::CreateIndex(create) => create_index(create),
        Stmt::DropIndex(drop) => Judged::Ops(
            drop.index_refs()
                .map(|index| {
                    let (namespace, name) = split_name(&node_text(index.syntax()));
                    let table = schema
                        .relation_owner(namespace.as_deref(), &name)
                        .cloned()
                        .unwrap_or_else(|| TableName {
                            schema: namespace,
                            name: "(a table the schema does not hold)".to_owned(),
                        });
                    Op::DropIndex {
                        table,
                        name,
                        concurrently: drop.concurrently_token().is_some(),
                    }
                })
                .collect(),
        ),
        Stmt::CreateTable(create) => create_table(create),
        Stmt::DropTable(drop) => Judged::Ops(
            drop.table_name_refs()
                .map(|t| Op::DropTable {
                    table: table_name(&node_text(t.syntax())),
                })
                .collect(),
        ),
        Stmt::Update(update) => {
            let Some(table) = update.relation_name().map(|r| relation(r.syntax())) else {
                return Judged::Unknown("an UPDATE");
            };
            if update.where_clause_or_current_of().is_none() && update.from_clause().is_none() {
                Judged::WholeTableUpdate(table)
            } else {
                Judged::DataChange(
                    table,
                    "an UPDATE (how many rows it locks depends on the data)",
                )
            }
        }
        Stmt::Insert(insert) => match insert.relation_name_ref() {
            Some(r) => Judged::DataChange(table_name(&node_text(r.syntax())), "an INSERT"),
            None => Judged::Unknown("an INSERT"),
        },
        Stmt::Delete(delete) => match delete.relation_name() {
            Some(r) => Judged::DataChange(relation(r.syntax()), "a DELETE"),
            None => Judged::Unknown("a DELETE"),
        },
        Stmt::Do(_) => Judged::Unknown("a DO block"),
        Stmt::Lock(_) => Judged::Unknown("an explicit LOCK"),
        Stmt::Truncate(_) => Judged::Unknown("a TRUNCATE (ACCESS EXCLUSIVE, data gone)"),
        _ => Judged::Unknown("this kind of statement"),
    }
}

fn alter_table(alter: &ast::AlterTable) -> Judged {
    use ast::AlterTableAction as A;
    let Some(name) = alter.table_relation_name() else {
        return Judged::Unknown("an ALTER TABLE");
    };
    let table = relation(name.syntax());
    let mut ops = Vec::new();
    for action in alter.actions() {
        let op = match &action {
            A::AddColumn(add) => {
                add.column_name()
                    .zip(add.ty())
                    .map(|(column, ty)| Op::AddColumn {
                        table: table.clone(),
                        column: column_of(
                            &node_text(column.syntax()),
                            &node_text(ty.syntax()),
                            add.constraints().map(|c| c.syntax().clone()),
                        ),
                    })
            }
            A::DropColumn(drop) => drop.column_name_ref().map(|c| Op::DropColumn {
                table: table.clone(),
                column: ident(&node_text(c.syntax())),
            }),
            A::RenameColumn(rename) => {
                rename
                    .column_name_ref()
                    .zip(rename.column_name())
                    .map(|(from, to)| Op::RenameColumn {
                        table: table.clone(),
                        from: ident(&node_text(from.syntax())),
                        to: ident(&node_text(to.syntax())),
                    })
            }
            A::TableRenameTo(rename) => rename.table_name().map(|to| Op::RenameTable {
                table: table.clone(),
                to: ident(&node_text(to.syntax())),
            }),
            A::SetSchema(set) => set.schema_ref().map(|s| {
                let to = ident(&node_text(s.syntax()));
                Op::SetTableSchema {
                    table: table.clone(),
                    schema: (to != "public").then_some(to),
                }
            }),
            A::AlterColumn(alter) => alter_column(&table, alter),
            A::AddConstraint(add) => add
                .constraint()
                .and_then(|c| add_constraint(&table, &c, add.syntax())),
            A::ValidateConstraint(v) => v.constraint_name_ref().map(|c| Op::ValidateConstraint {
                table: table.clone(),
                name: ident(&node_text(c.syntax())),
            }),
            A::DropConstraint(drop) => drop.constraint_name_ref().map(|c| Op::DropConstraint {
                table: table.clone(),
                name: ident(&node_text(c.syntax())),
            }),
            _ => None,
        };
        match op {
            Some(op) => ops.push(op),
            None => return Judged::Unknown("an ALTER TABLE action the model has no op for"),
        }
    }
    Judged::Ops(ops)
}

fn alter_column(table: &TableName, alter: &ast::AlterColumn) -> Option<Op> {
    use ast::AlterColumnOption as O;
    let column = ident(&node_text(alter.column_name_ref()?.syntax()));
    let change = match alter.option()? {
        O::SetType(set) => ColumnChange {
            ty: Some((
                column_type(&node_text(set.ty()?.syntax())),
                set.using_expr()
                    .and_then(|u| u.expr())
                    .map(|e| node_text(e.syntax())),
            )),
            ..ColumnChange::default()
        },
        O::SetNotNull(_) => ColumnChange {
            nullable: Some(false),
            ..ColumnChange::default()
        },
        O::DropNotNull(_) => ColumnChange {
            nullable: Some(true),
            ..ColumnChange::default()
        },
        O::SetDefault(set) => ColumnChange {
            default: Some(Some(DefaultExpr::Sql(node_text(set.expr()?.syntax())))),
            ..ColumnChange::default()
        },
        O::DropDefault(_) => ColumnChange {
            default: Some(None),
            ..ColumnChange::default()
        },
        _ => return None,
    };
    Some(Op::AlterColumn {
        table: table.clone(),
        column,
        change,
    })
}

fn add_constraint(table: &TableName, c: &ast::Constraint, action: &SyntaxNode) -> Option<Op> {
    use ast::Constraint as C;
    let not_valid = has_kind(action, SyntaxKind::NOT_VALID);
    let text = node_text(c.syntax());
    let name = c
        .syntax()
        .children()
        .find(|n| n.kind() == SyntaxKind::CONSTRAINT_NAME_CLAUSE)
        .and_then(|n| {
            n.children()
                .find(|x| x.kind() == SyntaxKind::CONSTRAINT_NAME)
        })
        .map(|n| ident(&node_text(&n)))
        .unwrap_or_else(|| format!("{}_constraint", table.name));
    if let Some(using) = c
        .syntax()
        .descendants()
        .find(|n| n.kind() == SyntaxKind::USING_INDEX_NAME)
    {
        let index = using
            .children()
            .find(|n| n.kind() == SyntaxKind::INDEX_REF)
            .map(|n| ident(&node_text(&n)))?;
        return Some(Op::AddConstraintUsingIndex {
            table: table.clone(),
            name,
            index,
            primary_key: matches!(c, C::PrimaryKeyConstraint(_)),
        });
    }
    let kind = match c {
        C::CheckConstraint(check) => ConstraintKind::Check {
            expr: node_text(check.expr()?.syntax()),
            sqlite: None,
        },
        C::ForeignKeyConstraint(fk) => {
            let ref_table = table_name(&node_text(fk.table_name_ref()?.syntax()));
            let lists = paren_lists(&text);
            ConstraintKind::ForeignKey(ForeignKey {
                columns: lists.first().cloned().unwrap_or_default(),
                ref_table,
                ref_columns: lists.get(1).cloned().unwrap_or_default(),
                on_delete: ReferentialAction::NoAction,
                on_update: ReferentialAction::NoAction,
            })
        }
        C::UniqueConstraint(_) => ConstraintKind::Unique {
            columns: paren_lists(&text).first().cloned().unwrap_or_default(),
        },
        C::PrimaryKeyConstraint(_) => ConstraintKind::PrimaryKey {
            columns: paren_lists(&text).first().cloned().unwrap_or_default(),
        },
        _ => return None,
    };
    Some(Op::AddConstraint {
        table: table.clone(),
        constraint: Constraint { name, kind },
        not_valid,
    })
}

fn create_index(create: &ast::CreateIndex) -> Judged {
    let (Some(name), Some(on)) = (create.index(), create.table_relation_name()) else {
        return Judged::Unknown("a CREATE INDEX without a name");
    };
    let keys = create
        .partition_item_list()
        .map(|list| {
            list.partition_items()
                .map(|item| {
                    let key = node_text(item.syntax());
                    if is_plain_ident(&key) {
                        IndexKey::Column(ident(&key))
                    } else {
                        IndexKey::Expr(key)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut index = Index::on_keys(ident(&node_text(name.syntax())), keys);
    index.unique = create.unique_token().is_some();
    index.predicate = create
        .where_clause()
        .and_then(|w| w.expr())
        .map(|e| node_text(e.syntax()));
    Judged::Ops(vec![Op::CreateIndex {
        table: relation(on.syntax()),
        index,
        concurrently: create.concurrently_token().is_some(),
    }])
}

fn create_table(create: &ast::CreateTable) -> Judged {
    let Some(name) = create.table_name() else {
        return Judged::Unknown("a CREATE TABLE without a name");
    };
    let mut table = Table::new(table_name(&node_text(name.syntax())));
    if let Some(args) = create.table_arg_list() {
        for arg in args.args() {
            if let ast::TableArg::Column(column) = arg {
                if let (Some(n), Some(ty)) = (column.name(), column.ty()) {
                    table.columns.push(column_of(
                        &node_text(n.syntax()),
                        &node_text(ty.syntax()),
                        column.clauses().map(|c| c.syntax().clone()),
                    ));
                }
            }
        }
    }
    Judged::Ops(vec![Op::CreateTable(table)])
}

/// A column from its name, type and constraint clauses (NOT NULL, DEFAULT; the rest is not
/// needed to judge it).
fn column_of(name: &str, ty: &str, clauses: impl Iterator<Item = SyntaxNode>) -> Column {
    let mut column = Column::new(ident(name), column_type(ty));
    for clause in clauses {
        for node in clause.descendants_with_tokens() {
            match node.kind() {
                SyntaxKind::NOT_NULL_CONSTRAINT | SyntaxKind::PRIMARY_KEY_CONSTRAINT => {
                    column.nullable = false
                }
                _ => {}
            }
        }
        if let Some(default) = clause
            .descendants()
            .find(|n| n.kind() == SyntaxKind::DEFAULT_CONSTRAINT)
        {
            let text = node_text(&default);
            let expr = text
                .get(7..)
                .filter(|_| text.to_ascii_uppercase().starts_with("DEFAULT"))
                .unwrap_or(&text)
                .trim();
            column.default = Some(DefaultExpr::Sql(expr.to_owned()));
        }
    }
    column
}

/// The model's type for a SQL type name.
fn column_type(sql: &str) -> ColumnType {
    let t: String = sql
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let args: Vec<u32> = t
        .split_once('(')
        .map(|(_, rest)| {
            rest.trim_end_matches(')')
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let base = t.split('(').next().unwrap_or_default().trim();
    match base {
        "uuid" => ColumnType::Uuid,
        "varchar" | "character varying" => ColumnType::Varchar(args.first().copied()),
        "text" => ColumnType::Text,
        "boolean" | "bool" => ColumnType::Boolean,
        "smallint" | "int2" => ColumnType::SmallInt,
        "integer" | "int" | "int4" => ColumnType::Integer,
        "bigint" | "int8" => ColumnType::BigInt,
        "numeric" | "decimal" => ColumnType::Numeric(match args[..] {
            [p, s] => Some((p, s)),
            [p] => Some((p, 0)),
            _ => None,
        }),
        "double precision" | "float8" => ColumnType::Double,
        "timestamp" | "timestamp without time zone" => ColumnType::Timestamp,
        "timestamptz" | "timestamp with time zone" => ColumnType::TimestampTz,
        "date" => ColumnType::Date,
        "json" => ColumnType::Json,
        "jsonb" => ColumnType::Jsonb,
        "inet" => ColumnType::Inet,
        "bytea" => ColumnType::Bytea,
        _ => ColumnType::Other(sql.trim().to_owned()),
    }
}

/// A node's text, trimmed.
fn node_text(node: &SyntaxNode) -> String {
    node.text().to_string().trim().to_owned()
}

fn has_kind(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.descendants().any(|n| n.kind() == kind)
}

/// The table a `RELATION_NAME`-like node names (`ONLY`, `*` and parentheses dropped).
fn relation(node: &SyntaxNode) -> TableName {
    let path = node
        .descendants()
        .find(|n| n.kind() == SyntaxKind::PATH_REF || n.kind() == SyntaxKind::PATH)
        .map_or_else(|| node_text(node), |n| node_text(&n));
    table_name(&path)
}

/// `schema.name`, unquoted; `public` is the default schema, as in the model.
fn table_name(text: &str) -> TableName {
    let (schema, name) = split_name(text);
    TableName { schema, name }
}

fn split_name(text: &str) -> (Option<String>, String) {
    let parts = split_dotted(text);
    match parts.as_slice() {
        [.., schema, name] => {
            let schema = (schema != "public").then(|| schema.clone());
            (schema, name.clone())
        }
        [name] => (None, name.clone()),
        [] => (None, text.to_owned()),
    }
}

/// `a."B".c` as `["a", "B", "c"]`.
fn split_dotted(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().expect("never empty").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(String::new()),
            c if quoted => out.last_mut().expect("never empty").push(c),
            c if c.is_whitespace() => {}
            c => out
                .last_mut()
                .expect("never empty")
                .push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// An identifier as the database keeps it: unquoted, or folded to lower case.
fn ident(text: &str) -> String {
    split_dotted(text).pop().unwrap_or_default()
}

fn is_plain_ident(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with('"') && t.ends_with('"') && t.len() > 1)
        || (!t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The top-level parenthesised identifier lists in a constraint's text, in order
/// (`FOREIGN KEY (a, b) REFERENCES t (x, y)` gives `[[a, b], [x, y]]`).
fn paren_lists(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                if depth == 1 {
                    current.clear();
                    continue;
                }
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    out.push(current.split(',').map(ident).collect());
                    continue;
                }
            }
            _ => {}
        }
        if depth >= 1 {
            current.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lint_sql;
    use crate::lint::rules::test_support::{ctx, schema, text};

    #[test]
    fn a_script_is_judged_statement_by_statement() {
        let script = "\
SET lock_timeout = '1s';
ALTER TABLE users ALTER COLUMN email TYPE text;
ALTER TABLE users ALTER COLUMN age TYPE bigint;
CREATE INDEX ix_users_status ON users (status);
CREATE INDEX CONCURRENTLY ix_users_org ON users (org_id);
BEGIN;
CREATE INDEX CONCURRENTLY ix_users_age ON users (age);
COMMIT;
ALTER TABLE users ADD CONSTRAINT users_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_org_fkey;
ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age >= 0);
ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();
ALTER TABLE users ALTER COLUMN status SET NOT NULL;
CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
UPDATE users SET status = 'active';
CREATE TABLE notes (id uuid PRIMARY KEY, body text NOT NULL);
CREATE INDEX ix_notes_body ON notes (body);
INSERT INTO notes (id, body) SELECT id, email FROM users;
DROP INDEX ix_users_email;
ALTER TABLE users RENAME COLUMN email TO email_address;
DO $$ BEGIN PERFORM 1; END $$;
ALTER TABLE users DROP COLUMN age;
SELECT * FROM users WHERE;
";
        insta::assert_snapshot!(text(&lint_sql(script, &schema(), &ctx())));
    }

    #[test]
    fn the_renderers_own_safe_forms_lint_clean() {
        let script = "\
DROP INDEX CONCURRENTLY IF EXISTS ix_users_status;
CREATE INDEX CONCURRENTLY ix_users_status ON users (status);
ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age >= 0) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_age_check;
ALTER TABLE users ALTER COLUMN email TYPE varchar(500);
ALTER TABLE users ADD COLUMN note text DEFAULT 'none';
";
        assert_eq!(lint_sql(script, &schema(), &ctx()), vec![]);
    }
}

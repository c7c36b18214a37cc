//! Static lock profiles: what an op does to the tables it touches on PostgreSQL, known before
//! it runs.
//!
//! For each step of an op (one [`LockProfile`] per step, in order): the lock it takes on each
//! table, whether it rewrites a table (a new relfilenode for the table and its indexes), whether
//! it reads a whole table while holding that lock, and how it writes rows. Lint judges ops by
//! these profiles and nothing else about locks ([`crate::lint`]), so what lint says about an op
//! and what `trace` measures when it runs (stage 2: the `pg_locks` a statement holds, the
//! relfilenodes it changes, on a scratch copy) can be compared op kind by op kind: for every
//! table, the strongest mode measured during a step must equal [`LockProfile::mode_on`], and a
//! relfilenode must change exactly for [`LockProfile::rewrites`].
//!
//! The facts are PostgreSQL's (the lock levels of the `ALTER TABLE`, `CREATE INDEX` and
//! `CREATE TRIGGER` reference pages, and `ATColumnChangeRequiresRewrite` for type changes),
//! for the server version given (`pg_major`): before 11, `ADD COLUMN .. DEFAULT` rewrote the
//! table; before 12, `SET NOT NULL` scanned it even when a validated CHECK proved it.
//!
//! SQLite has no table locks to speak of (one writer for the whole database; readers in WAL
//! mode are never blocked), so there is no SQLite profile: see [`crate::lint`] for how SQLite
//! is judged.

use crate::op::{Backfill, Op};
use crate::schema::{ColumnType, ConstraintKind, DefaultExpr, Schema, Table, TableName};
use std::fmt;

/// PostgreSQL's table lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `SELECT`.
    AccessShare,
    /// `SELECT .. FOR UPDATE`, a foreign key's validation on the referenced table.
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`.
    RowExclusive,
    /// `VALIDATE CONSTRAINT`, `CREATE INDEX CONCURRENTLY`: blocks other DDL only.
    ShareUpdateExclusive,
    /// `CREATE INDEX`: blocks writes.
    Share,
    /// `CREATE TRIGGER`, `ADD FOREIGN KEY`: blocks writes.
    ShareRowExclusive,
    /// Blocks writes and `SELECT .. FOR UPDATE`.
    Exclusive,
    /// Most `ALTER TABLE`: blocks everything, reads included.
    AccessExclusive,
}

impl LockMode {
    /// As SQL spells it (`ACCESS EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// As `pg_locks.mode` spells it (`AccessExclusiveLock`), for comparing with a trace.
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The mode of that `pg_locks.mode` name.
    pub fn from_pg_locks_name(name: &str) -> Option<LockMode> {
        ALL_MODES.into_iter().find(|m| m.pg_locks_name() == name)
    }

    /// Whether a plain `SELECT` (ACCESS SHARE) waits for it.
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusive
    }

    /// Whether `INSERT`, `UPDATE` and `DELETE` (ROW EXCLUSIVE) wait for it.
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::Share
    }
}

const ALL_MODES: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// How a step writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowWrites {
    /// It writes no rows (catalog changes, scans, index builds).
    None,
    /// It updates rows in short batches, each its own transaction.
    Batches,
    /// It updates every row it selects in one statement, holding their row locks until commit.
    AllAtOnce,
}

/// What one step of an op does to the tables it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProfile {
    /// What the step is, in a few words (`add column`, `backfill batch`, `swap`).
    pub step: &'static str,
    /// The lock it takes on each table, strongest first, one entry per table.
    pub locks: Vec<(TableName, LockMode)>,
    /// The tables it rewrites whole.
    pub rewrites: Vec<TableName>,
    /// The tables it reads whole while holding its lock on them.
    pub scans: Vec<TableName>,
    /// How it writes rows.
    pub row_writes: RowWrites,
    /// Whether it runs outside a transaction block.
    pub autocommit: bool,
    /// Whether the model cannot tell (raw SQL): then nothing else here is known.
    pub unknown: bool,
}

impl LockProfile {
    fn new(step: &'static str) -> Self {
        LockProfile {
            step,
            locks: Vec::new(),
            rewrites: Vec::new(),
            scans: Vec::new(),
            row_writes: RowWrites::None,
            autocommit: false,
            unknown: false,
        }
    }

    fn lock(mut self, table: &TableName, mode: LockMode) -> Self {
        match self.locks.iter_mut().find(|(t, _)| t == table) {
            Some((_, m)) => *m = (*m).max(mode),
            None => self.locks.push((table.clone(), mode)),
        }
        self.locks
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self
    }

    fn rewrite_if(mut self, yes: bool, table: &TableName) -> Self {
        if yes {
            self.rewrites.push(table.clone());
        }
        self
    }

    fn scan_if(mut self, yes: bool, table: &TableName) -> Self {
        if yes && !self.scans.contains(table) {
            self.scans.push(table.clone());
        }
        self
    }

    /// The mode it takes on `table`, if it locks it.
    pub fn mode_on(&self, table: &TableName) -> Option<LockMode> {
        self.locks.iter().find(|(t, _)| t == table).map(|(_, m)| *m)
    }
}

/// The profile of each step of `op` applied to `before`, on PostgreSQL `pg_major`.
pub fn profile(op: &Op, before: &Schema, pg_major: u32) -> Vec<LockProfile> {
    use LockMode::*;
    let one = |p: LockProfile| vec![p];
    match op {
        Op::CreateSchema { .. } | Op::DropSchema { .. } => one(LockProfile::new("schema")),
        Op::CreateFunction(_) | Op::DropFunction { .. } => one(LockProfile::new("function")),
        Op::CreateTable(table) => {
            let mut p = LockProfile::new("create table").lock(&table.name, AccessExclusive);
            for c in table.constraints.values() {
                if let ConstraintKind::ForeignKey(fk) = &c.kind {
                    if fk.ref_table != table.name {
                        p = p.lock(&fk.ref_table, ShareRowExclusive);
                    }
                }
            }
            one(p)
        }
        Op::DropTable { table } => {
            // Dropping a foreign key drops its triggers on the referenced table too, under
            // ACCESS EXCLUSIVE there (measured by `trace`, PostgreSQL 15).
            let mut p = LockProfile::new("drop table").lock(table, AccessExclusive);
            for fk in foreign_keys(before, table) {
                if &fk != table {
                    p = p.lock(&fk, AccessExclusive);
                }
            }
            one(p)
        }
        Op::SetTableSchema { table, .. } | Op::RenameTable { table, .. } => {
            one(LockProfile::new("rename table").lock(table, AccessExclusive))
        }
        Op::AddColumn { table, column } => {
            let rewrite = match &column.default {
                None => false,
                Some(_) if pg_major < 11 => true,
                Some(d) => volatility(d) != Volatility::Constant,
            };
            // A NOT NULL column without a default is NULL in every row: the table is read to
            // find one (and the ALTER fails if there is any).
            let scan = !column.nullable && column.default.is_none();
            one(LockProfile::new("add column")
                .lock(table, AccessExclusive)
                .rewrite_if(rewrite, table)
                .scan_if(scan || rewrite, table))
        }
        Op::DropColumn { table, .. } => {
            one(LockProfile::new("drop column").lock(table, AccessExclusive))
        }
        Op::RenameColumn { table, .. } => {
            one(LockProfile::new("rename column").lock(table, AccessExclusive))
        }
        Op::AlterColumn {
            table,
            column,
            change,
        } => {
            let t = before.table(table);
            let old = t.and_then(|t| t.find_column(column));
            let rewrite = match (&change.ty, old) {
                (None, _) => false,
                (Some((ty, using)), Some(old)) => {
                    !binary_coercible(&old.ty, ty) || !using_is_plain(column, using.as_deref())
                }
                (Some(_), None) => true,
            };
            let was_nullable = old.is_none_or(|c| c.nullable);
            let scan = change.nullable == Some(false)
                && was_nullable
                && !(pg_major >= 12 && t.is_some_and(|t| proven_not_null(t, column)));
            one(LockProfile::new("alter column")
                .lock(table, AccessExclusive)
                .rewrite_if(rewrite, table)
                .scan_if(scan || rewrite, table))
        }
        Op::CreateIndex {
            table,
            concurrently,
            ..
        } => {
            let mode = if *concurrently {
                ShareUpdateExclusive
            } else {
                Share
            };
            let mut p = LockProfile::new("create index")
                .lock(table, mode)
                .scan_if(true, table);
            p.autocommit = *concurrently;
            one(p)
        }
        Op::DropIndex {
            table,
            concurrently,
            ..
        } => {
            let mode = if *concurrently {
                ShareUpdateExclusive
            } else {
                AccessExclusive
            };
            let mut p = LockProfile::new("drop index").lock(table, mode);
            p.autocommit = *concurrently;
            one(p)
        }
        Op::AddConstraint {
            table,
            constraint,
            not_valid,
        } => {
            let p = LockProfile::new("add constraint");
            one(match &constraint.kind {
                ConstraintKind::ForeignKey(fk) => p
                    .lock(table, ShareRowExclusive)
                    .lock(&fk.ref_table, ShareRowExclusive)
                    .scan_if(!not_valid, table),
                ConstraintKind::Check { .. } => {
                    p.lock(table, AccessExclusive).scan_if(!not_valid, table)
                }
                // Builds the index, and a primary key sets NOT NULL on its columns.
                ConstraintKind::PrimaryKey { .. } | ConstraintKind::Unique { .. } => {
                    p.lock(table, AccessExclusive).scan_if(true, table)
                }
            })
        }
        Op::ValidateConstraint { table, name } => {
            let mut p = LockProfile::new("validate constraint")
                .lock(table, ShareUpdateExclusive)
                .scan_if(true, table);
            if let Some(target) = referenced_by(before, table, name) {
                p = p.lock(&target, RowShare);
            }
            one(p)
        }
        Op::DropConstraint { table, name } => {
            // As for a dropped table: the referenced table loses triggers, under ACCESS EXCLUSIVE.
            let mut p = LockProfile::new("drop constraint").lock(table, AccessExclusive);
            if let Some(target) = referenced_by(before, table, name) {
                p = p.lock(&target, AccessExclusive);
            }
            one(p)
        }
        Op::CreateTrigger { table, .. } => {
            one(LockProfile::new("create trigger").lock(table, ShareRowExclusive))
        }
        Op::DropTrigger { table, .. } => {
            one(LockProfile::new("drop trigger").lock(table, AccessExclusive))
        }
        Op::Sql(_) => {
            let mut p = LockProfile::new("raw SQL");
            p.unknown = true;
            one(p)
        }
        Op::AddConstraintUsingIndex {
            table,
            index,
            primary_key,
            ..
        } => {
            let t = before.table(table);
            let scan = *primary_key
                && t.is_some_and(|t| {
                    t.indexes.get(index).is_some_and(|i| {
                        i.columns().any(|c| {
                            t.find_column(c).is_some_and(|col| col.nullable)
                                && !(pg_major >= 12 && proven_not_null(t, c))
                        })
                    })
                });
            one(LockProfile::new("add constraint using index")
                .lock(table, AccessExclusive)
                .scan_if(scan, table))
        }
        Op::Backfill(backfill) => one(batches(backfill)),
        Op::AlterColumnTypeOnline { table, column, .. } => {
            let t = before.table(table);
            let not_null = t
                .and_then(|t| t.find_column(column))
                .is_some_and(|c| !c.nullable);
            let indexes = t.map_or(0, |t| {
                t.indexes
                    .values()
                    .filter(|i| i.columns().any(|k| k == column))
                    .count()
            });
            // ADD COLUMN (no default: no rewrite) and CREATE TRIGGER, under one brief lock.
            let mut out = vec![LockProfile::new("expand").lock(table, AccessExclusive)];
            let mut fill = LockProfile::new("backfill batch").lock(table, RowExclusive);
            fill.row_writes = RowWrites::Batches;
            out.push(fill);
            for _ in 0..indexes {
                let mut build = LockProfile::new("build index")
                    .lock(table, ShareUpdateExclusive)
                    .scan_if(true, table);
                build.autocommit = true;
                out.push(build);
            }
            if not_null {
                out.push(
                    LockProfile::new("validate not null")
                        .lock(table, ShareUpdateExclusive)
                        .scan_if(true, table),
                );
            }
            // SET NOT NULL is proven by the validated CHECK from PostgreSQL 12 on.
            out.push(
                LockProfile::new("swap")
                    .lock(table, AccessExclusive)
                    .scan_if(not_null && pg_major < 12, table),
            );
            out.push(LockProfile::new("contract").lock(table, AccessExclusive));
            out
        }
    }
}

fn batches(backfill: &Backfill) -> LockProfile {
    let mut p = LockProfile::new("backfill batch").lock(&backfill.table, LockMode::RowExclusive);
    p.row_writes = RowWrites::Batches;
    p
}

/// The other table that constraint `name` of `table` references, if it is a foreign key.
fn referenced_by(schema: &Schema, table: &TableName, name: &str) -> Option<TableName> {
    match &schema.table(table)?.constraints.get(name)?.kind {
        ConstraintKind::ForeignKey(fk) if &fk.ref_table != table => Some(fk.ref_table.clone()),
        _ => None,
    }
}

/// The tables that `table`'s own foreign keys reference.
fn foreign_keys(schema: &Schema, table: &TableName) -> Vec<TableName> {
    schema
        .table(table)
        .map(|t| {
            t.constraints
                .values()
                .filter_map(|c| match &c.kind {
                    ConstraintKind::ForeignKey(fk) => Some(fk.ref_table.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a validated CHECK of `table` proves `column IS NOT NULL`, which lets PostgreSQL 12
/// and later set NOT NULL without a scan.
pub fn proven_not_null(table: &Table, column: &str) -> bool {
    table.constraints.values().any(|c| {
        !table.not_valid.contains(&c.name)
            && matches!(&c.kind, ConstraintKind::Check { expr, .. } if is_not_null_check(expr, column))
    })
}

/// Whether `expr` is exactly `column IS NOT NULL` (parenthesised, quoted or not).
pub fn is_not_null_check(expr: &str, column: &str) -> bool {
    let mut e = expr.trim();
    while let Some(inner) = e.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        e = inner.trim();
    }
    let words: Vec<String> = e
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let name = words.first().map(|w| w.trim_matches('"').to_owned());
    words.len() == 4
        && name.as_deref() == Some(&column.to_ascii_lowercase())
        && words[1..] == ["is", "not", "null"]
}

/// How a column default behaves when `ADD COLUMN` fills it into existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    /// One value for every row (a literal, `now()`): stored once in the catalog, no rewrite.
    Constant,
    /// A value per row (`gen_random_uuid()`): the table is rewritten.
    Volatile,
    /// A function the model does not know: it may be volatile.
    Unknown,
}

/// Functions whose value changes from row to row.
const VOLATILE: &[&str] = &[
    "clock_timestamp",
    "gen_random_uuid",
    "nextval",
    "random",
    "timeofday",
    "txid_current",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
];

/// Functions that are stable or immutable, as `ADD COLUMN` sees them (one value per statement).
const NOT_VOLATILE: &[&str] = &[
    "now",
    "statement_timestamp",
    "transaction_timestamp",
    "lower",
    "upper",
    "to_jsonb",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "array",
];

/// How a default behaves when filled into existing rows (see [`Volatility`]).
pub fn volatility(default: &DefaultExpr) -> Volatility {
    match default {
        DefaultExpr::Bool(_)
        | DefaultExpr::Int(_)
        | DefaultExpr::Text(_)
        | DefaultExpr::Json(_)
        | DefaultExpr::Now
        // `now() AT TIME ZONE 'utc'` is stable, like `now()`: one value fills every row.
        | DefaultExpr::UtcNow => Volatility::Constant,
        DefaultExpr::RandomUuid | DefaultExpr::RandomUuidHex => Volatility::Volatile,
        DefaultExpr::Sql(sql) => sql_volatility(sql),
    }
}

/// The volatility of a default written in SQL: any call of a function in [`VOLATILE`] makes it
/// volatile, any call of one the model does not know makes it unknown.
pub fn sql_volatility(sql: &str) -> Volatility {
    let lower = sql.to_ascii_lowercase();
    let mut result = Volatility::Constant;
    for (at, _) in lower.match_indices('(') {
        let name: String = lower[..at]
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let name = name.rsplit('.').next().unwrap_or_default().to_owned();
        if name.is_empty() {
            continue;
        }
        if VOLATILE.contains(&name.as_str()) {
            return Volatility::Volatile;
        }
        if !NOT_VOLATILE.contains(&name.as_str()) {
            result = Volatility::Unknown;
        }
    }
    result
}

/// Whether PostgreSQL changes a column from `from` to `to` without rewriting the table (the
/// old values are valid values of the new type, stored the same way).
pub fn binary_coercible(from: &ColumnType, to: &ColumnType) -> bool {
    use ColumnType::*;
    match (from, to) {
        _ if from == to => true,
        (Varchar(Some(n)), Varchar(Some(m))) => m >= n,
        (Varchar(_) | Text, Varchar(None) | Text) => true,
        (Numeric(Some((p, s))), Numeric(Some((p2, s2)))) => p2 >= p && s2 == s,
        (Numeric(_), Numeric(None)) => true,
        _ => false,
    }
}

/// Whether a `USING` conversion of `column` is the column itself (bare, quoted, or cast), which
/// leaves the choice between rewrite and no rewrite to the types alone.
pub fn using_is_plain(column: &str, using: Option<&str>) -> bool {
    let Some(using) = using else { return true };
    let mut e = using.trim();
    while let Some(inner) = e.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        e = inner.trim();
    }
    let head = e.split("::").next().unwrap_or_default().trim();
    let head = head.trim_matches('"');
    head == column && e.matches("::").count() <= 1
}

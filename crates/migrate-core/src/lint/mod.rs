//! Lint: each op judged against the schema it applies to, before anything runs.
//!
//! [`lint_op`] is a pure function of an op, the schema before it, and a [`LintContext`]: the
//! dialect, the PostgreSQL major version, how the run groups its transactions, which tables the
//! revision itself created (they are empty: nothing waits for them, so most rules let them
//! be), and, when the caller read them from the live database, table sizes, which go into the
//! message ("rewrites users (1.0 M rows, 610 MB) under ACCESS EXCLUSIVE"). What an op does to
//! locks comes from one place, its [`lock::profile`](crate::lock::profile); the rules add what
//! a reader needs: the object, the danger, and what to write instead.
//!
//! Rules live one a file under `rules/`, each with a kebab-case id that configuration, flags,
//! allowances and output share, a severity, and the ids of the same check in Atlas, squawk,
//! strong_migrations and eugene ([`Peers`]), so a team that knows one of those can map it. Each
//! rule's tests show it firing and its safe form passing.
//!
//! # Severities
//!
//! - **error**: blocks reads or writes of an existing table for a time that grows with the
//!   table, fails on existing data, breaks the release of the service that is still running,
//!   or loses data. `migrate` refuses to run it unless the revision allows it (stage 2).
//! - **warning**: a risk that depends on what the model cannot see (raw SQL), or a lock that
//!   is brief but queues everyone behind it when it waits.
//! - **info**: worth knowing, no action needed.
//!
//! # Allowances
//!
//! A revision accepts a rule's findings with [`Revision::allow`]`("rule-id", "why")`: the reason
//! is mandatory and the id must be one lint knows ([`check_allowances`]; a unit test over the
//! revision list catches a typo). An allowance that matched nothing is reported
//! (`unused-allowance`), so that allowances do not outlive what they excused.
//!
//! # SQLite
//!
//! SQLite has one writer for the whole database and no concurrent DDL; the renderer rebuilds a
//! table for most changes, inside the revision's transaction. Readers (WAL mode) are never
//! blocked, and there is no online form to recommend: the lock and rewrite rules (those marked
//! `postgres_only`) do not apply there. What breaks the running release, fails on existing rows,
//! or loses data is the same on both, and so are those rules; raw SQL is unknown on both.

mod rules;
pub mod sql;

use crate::lock::{profile, LockProfile};
use crate::op::{ModelError, Op};
use crate::render::Dialect;
use crate::revision::{Direction, Revision};
use crate::schema::{Schema, TableName};
use crate::RevisionGraph;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// A risk the reviewer should weigh.
    Warning,
    /// A danger to the running service or its data: refused unless allowed.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The ids of the same check in other tools, for users who know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peers {
    /// Atlas analyzers (`PG301`, `BC102`, `DS103`, `MF103`).
    pub atlas: &'static [&'static str],
    /// squawk rule names.
    pub squawk: &'static [&'static str],
    /// strong_migrations check keys.
    pub strong_migrations: &'static [&'static str],
    /// eugene hints (`E5`).
    pub eugene: &'static [&'static str],
}

/// What a rule found, before lint adds the rule's id and severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    object: String,
    message: String,
    help: String,
}

/// The op a rule judges, and everything it may look at.
pub(crate) struct Subject<'a> {
    op: &'a Op,
    before: &'a Schema,
    ctx: &'a LintContext,
    profile: &'a [LockProfile],
}

impl Subject<'_> {
    /// Whether `table` existed before this revision (rules let new, empty tables be).
    fn existed(&self, table: &TableName) -> bool {
        !self.ctx.created.contains(table)
    }

    /// `users`, or `users (1.0 M rows, 610 MB)` when its size is known.
    fn sized(&self, table: &TableName) -> String {
        match self.ctx.sizes.get(table) {
            Some(size) => format!("{table} ({size})"),
            None => table.to_string(),
        }
    }
}

/// One lint rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its id, shared by configuration, flags, allowances and output.
    pub id: &'static str,
    /// How much its findings matter.
    pub severity: Severity,
    /// What it flags, in one line.
    pub summary: &'static str,
    /// Whether it judges PostgreSQL's locks, and so does not apply to SQLite.
    pub postgres_only: bool,
    /// The same check in other tools.
    pub peers: Peers,
    check: fn(&Subject<'_>) -> Vec<Found>,
}

/// Every rule, in the order findings are reported.
pub fn rules() -> &'static [Rule] {
    rules::ALL
}

/// The rule of that id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    rules::ALL.iter().find(|r| r.id == id)
}

/// The id of the finding that reports an allowance no finding used.
pub const UNUSED_ALLOWANCE: &str = "unused-allowance";

/// A table's size, read from the live database (`pg_class.reltuples`, the relation's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    /// Rows (an estimate).
    pub rows: u64,
    /// Bytes on disk, indexes and TOAST included.
    pub bytes: u64,
}

impl fmt::Display for TableSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = match self.rows {
            n if n >= 1_000_000 => format!("{:.1} M rows", n as f64 / 1e6),
            n if n >= 10_000 => format!("{:.0} k rows", n as f64 / 1e3),
            1 => "1 row".to_owned(),
            n => format!("{n} rows"),
        };
        const KB: u64 = 1024;
        let bytes = match self.bytes {
            b if b >= KB * KB * KB => format!("{:.1} GB", b as f64 / (KB * KB * KB) as f64),
            b if b >= KB * KB => format!("{} MB", b / (KB * KB)),
            b if b >= KB => format!("{} kB", b / KB),
            b => format!("{b} bytes"),
        };
        write!(f, "{rows}, {bytes}")
    }
}

/// How the run groups statements into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransactionMode {
    /// One transaction per revision; phases that need their own run in their own (the default).
    #[default]
    PerRevision,
    /// One transaction for the whole run: nothing commits until the end.
    Single,
}

/// What lint knows beyond the op and the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintContext {
    /// The database the op will run on.
    pub dialect: Dialect,
    /// PostgreSQL's major version (12 by default, the oldest the tool supports: what is safe
    /// there is safe everywhere).
    pub pg_major: u32,
    /// How the run groups transactions.
    pub transaction: TransactionMode,
    /// Live table sizes, when the caller read them.
    pub sizes: BTreeMap<TableName, TableSize>,
    /// Tables created earlier in the same revision (or script): empty, so nobody waits.
    pub created: BTreeSet<TableName>,
}

impl LintContext {
    /// PostgreSQL 12, one transaction per revision, no sizes.
    pub fn postgres() -> Self {
        LintContext {
            dialect: Dialect::Postgres,
            pg_major: 12,
            transaction: TransactionMode::PerRevision,
            sizes: BTreeMap::new(),
            created: BTreeSet::new(),
        }
    }

    /// The same context for `dialect`.
    pub fn for_dialect(dialect: Dialect) -> Self {
        LintContext {
            dialect,
            ..LintContext::postgres()
        }
    }
}

/// The context of a judgement for no database in particular: the oldest PostgreSQL the tool
/// supports, whose locks are the strictest (what passes there passes everywhere).
impl Default for LintContext {
    fn default() -> Self {
        LintContext::postgres()
    }
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The revision, when linting revisions.
    pub revision: Option<String>,
    /// Which way.
    pub direction: Direction,
    /// The op's position in its list (from 0), or the statement's in a script.
    pub index: usize,
}

/// One thing lint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's id.
    pub rule: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// Where it is, when known.
    pub location: Option<Location>,
    /// The object (`users.email`, `index ix_users_email`).
    pub object: String,
    /// What the op does and why that is a danger.
    pub message: String,
    /// What to write instead.
    pub help: String,
    /// The revision's reason for accepting it, if it does.
    pub allowed: Option<String>,
}

impl Finding {
    /// Whether it stops `migrate`: an error that no allowance covers.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Error && self.allowed.is_none()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.rule)?;
        if let Some(l) = &self.location {
            match &l.revision {
                Some(r) => write!(f, " {r} {} op {}", l.direction.as_str(), l.index + 1)?,
                None => write!(f, " statement {}", l.index + 1)?,
            }
        }
        write!(f, ": {}: {}", self.object, self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        if let Some(reason) = &self.allowed {
            write!(f, "\n  allowed: {reason}")?;
        }
        Ok(())
    }
}

/// Judges one op against the schema it applies to.
pub fn lint_op(op: &Op, before: &Schema, ctx: &LintContext) -> Vec<Finding> {
    if let Op::Sql(raw) = op {
        // Raw SQL is parsed (SQLite's with the same grammar: the statements a revision writes
        // for it are plain enough), and what maps onto ops is judged like them.
        let body = match ctx.dialect {
            Dialect::Sqlite => &raw.sqlite,
            _ => &raw.postgres,
        };
        return match body {
            Some(body) => sql::lint_statements(body, before, ctx),
            None => Vec::new(),
        };
    }
    let profile = match ctx.dialect {
        Dialect::Postgres => profile(op, before, ctx.pg_major),
        _ => Vec::new(),
    };
    let subject = Subject {
        op,
        before,
        ctx,
        profile: &profile,
    };
    rules::ALL
        .iter()
        .filter(|r| ctx.dialect == Dialect::Postgres || !r.postgres_only)
        .flat_map(|r| {
            (r.check)(&subject).into_iter().map(|found| Finding {
                rule: r.id,
                severity: r.severity,
                location: None,
                object: found.object,
                message: found.message,
                help: found.help,
                allowed: None,
            })
        })
        .collect()
}

/// Lints a list of ops in order, folding each into `schema`, and tracking the tables they
/// create in `ctx.created`. Each finding's location holds the op's position.
pub fn lint_ops(
    ops: &[Op],
    schema: &mut Schema,
    ctx: &mut LintContext,
) -> Result<Vec<Finding>, (usize, Box<ModelError>)> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        for mut finding in lint_op(op, schema, ctx) {
            finding.location = Some(Location {
                revision: None,
                direction: Direction::Up,
                index: i,
            });
            out.push(finding);
        }
        op.apply(schema).map_err(|e| (i, Box::new(e)))?;
        track_created(op, &mut ctx.created);
    }
    Ok(out)
}

/// Keeps `created` naming the tables created in this revision through renames and drops.
pub(crate) fn track_created(op: &Op, created: &mut BTreeSet<TableName>) {
    match op {
        Op::CreateTable(table) => {
            created.insert(table.name.clone());
        }
        Op::DropTable { table } => {
            created.remove(table);
        }
        Op::RenameTable { table, to } if created.remove(table) => {
            created.insert(TableName {
                schema: table.schema.clone(),
                name: to.clone(),
            });
        }
        Op::SetTableSchema { table, schema } if created.remove(table) => {
            created.insert(TableName {
                schema: schema.clone(),
                name: table.name.clone(),
            });
        }
        _ => {}
    }
}

/// Why a revision's allowances are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowanceError {
    /// No rule has that id.
    UnknownRule {
        /// The revision.
        revision: String,
        /// The id it gave.
        rule: String,
    },
    /// The allowance gives no reason.
    NoReason {
        /// The revision.
        revision: String,
        /// The rule.
        rule: String,
    },
}

impl fmt::Display for AllowanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowanceError::UnknownRule { revision, rule } => {
                let known: Vec<&str> = rules::ALL.iter().map(|r| r.id).collect();
                write!(
                    f,
                    "revision {revision} allows \"{rule}\", which is no lint rule; the rules are: {}",
                    known.join(", ")
                )
            }
            AllowanceError::NoReason { revision, rule } => write!(
                f,
                "revision {revision} allows \"{rule}\" without a reason: say why the danger is \
                 accepted"
            ),
        }
    }
}

impl std::error::Error for AllowanceError {}

/// Checks that every allowance of `revision` names a rule lint has and gives a reason.
pub fn check_allowances(revision: &Revision) -> Result<(), AllowanceError> {
    for a in &revision.allowances {
        if rule(&a.rule).is_none() {
            return Err(AllowanceError::UnknownRule {
                revision: revision.id.clone(),
                rule: a.rule.clone(),
            });
        }
        if a.reason.trim().is_empty() {
            return Err(AllowanceError::NoReason {
                revision: revision.id.clone(),
                rule: a.rule.clone(),
            });
        }
    }
    Ok(())
}

/// Why a revision could not be linted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LintError {
    /// An allowance is wrong.
    Allowance(AllowanceError),
    /// An op does not apply to the schema it meets.
    Model {
        /// The revision.
        revision: String,
        /// Which way.
        direction: Direction,
        /// The op's position, from 0.
        op: usize,
        /// What is wrong.
        error: Box<ModelError>,
    },
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LintError::Allowance(e) => e.fmt(f),
            LintError::Model {
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
        }
    }
}

impl std::error::Error for LintError {}

/// Lints one direction of a revision against the schema before it, which it folds into
/// `schema`; findings its allowances cover carry their reason, and an allowance that covered
/// nothing is reported.
pub fn lint_revision(
    revision: &Revision,
    direction: Direction,
    schema: &mut Schema,
    ctx: &LintContext,
) -> Result<Vec<Finding>, LintError> {
    check_allowances(revision).map_err(LintError::Allowance)?;
    let mut ctx = LintContext {
        created: BTreeSet::new(),
        ..ctx.clone()
    };
    let mut findings =
        lint_ops(revision.ops(direction), schema, &mut ctx).map_err(|(op, error)| {
            LintError::Model {
                revision: revision.id.clone(),
                direction,
                op,
                error,
            }
        })?;
    for f in &mut findings {
        if let Some(l) = &mut f.location {
            l.revision = Some(revision.id.clone());
            l.direction = direction;
        }
        f.allowed = revision
            .allowances
            .iter()
            .find(|a| a.rule == f.rule)
            .map(|a| a.reason.clone());
    }
    // Both directions share the allowances, so an allowance is unused only if neither uses it;
    // the upgrade is where that is reported. Only on PostgreSQL: SQLite is judged by fewer rules
    // and has no body for most raw SQL, so an allowance PostgreSQL needs is often idle there.
    if direction == Direction::Up && ctx.dialect == Dialect::Postgres {
        for a in &revision.allowances {
            let used = |fs: &[Finding]| fs.iter().any(|f| f.rule == a.rule);
            if used(&findings) {
                continue;
            }
            let mut after = schema.clone();
            let down = lint_ops(
                revision.ops(Direction::Down),
                &mut after,
                &mut LintContext {
                    created: BTreeSet::new(),
                    ..ctx.clone()
                },
            )
            .unwrap_or_default();
            if !used(&down) {
                findings.push(Finding {
                    rule: UNUSED_ALLOWANCE,
                    severity: Severity::Warning,
                    location: None,
                    object: format!("revision {}", revision.id),
                    message: format!("allows \"{}\", but no op of it has such a finding", a.rule),
                    help: "remove the allowance".to_owned(),
                    allowed: None,
                });
            }
        }
    }
    Ok(findings)
}

/// Lints the upgrade of every revision of `graph`, in its stable order, each against the
/// schema the revisions before it leave (as checksums are computed).
pub fn lint_graph(graph: &RevisionGraph, ctx: &LintContext) -> Result<Vec<Finding>, LintError> {
    let mut schema = Schema::new();
    let mut out = Vec::new();
    for r in graph.revisions() {
        out.extend(lint_revision(r, Direction::Up, &mut schema, ctx)?);
    }
    Ok(out)
}

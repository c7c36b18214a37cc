//! Measured lock profiles: run statements and record, for each, the table locks its own
//! backend took (`pg_locks`), the relations it rewrote (a changed `relfilenode`), and how long
//! each lock was held.
//!
//! Inside a transaction a lock is held until the transaction ends, so after each statement
//! the backend's own `pg_locks` rows that were not there before it are exactly what it took,
//! and each is held from the statement's start until the commit. A statement that runs outside
//! a transaction block (`CREATE INDEX CONCURRENTLY`) releases its locks before anyone could ask
//! its backend, so a second session watches it: that monitor opens a `REPEATABLE READ`
//! transaction with an xid and holds `ACCESS SHARE` on every table, which `CONCURRENTLY`
//! builds and drops must wait for (they wait for older snapshots and for every locker of the
//! table) while holding their own lock. The monitor reads the worker's `pg_locks` rows until it
//! sees it waiting, lets go, and keeps watching until the statement ends. Only statements that
//! never wait (a quick autocommit `UPDATE`) can slip between two looks; those are sampled every
//! millisecond.
//!
//! This measures what PostgreSQL does, to compare with what [`migrate_core::lock::profile`]
//! says it does. It must run on a scratch copy: on a live database it would take the very locks
//! it measures.

use migrate_core::lock::LockMode;
use postgres::Client;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// A relation (table, index, sequence...) as `pg_class` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Relation {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// `pg_class.relkind`: `r` table, `p` partitioned table, `i` index, `S` sequence...
    pub kind: char,
}

impl Relation {
    /// Whether it is a table.
    pub fn is_table(&self) -> bool {
        matches!(self.kind, 'r' | 'p')
    }

    /// What kind of relation it is, in a word.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            'r' | 'p' => "table",
            'i' | 'I' => "index",
            'S' => "sequence",
            'v' | 'm' => "view",
            _ => "relation",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One lock a statement took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenLock {
    /// On what.
    pub relation: Relation,
    /// The strongest mode it took on it.
    pub mode: LockMode,
    /// From the statement's start until the lock was released (the end of its transaction,
    /// or of the statement outside one).
    pub held: Duration,
}

/// What one statement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementTrace {
    /// The statement.
    pub sql: String,
    /// Whether it ran inside a transaction block.
    pub transactional: bool,
    /// How long it ran.
    pub elapsed: Duration,
    /// The locks it took, strongest first.
    pub locks: Vec<TakenLock>,
    /// The relations it gave a new relfilenode (rewrote).
    pub rewritten: Vec<Relation>,
}

/// Why a trace stopped.
#[derive(Debug)]
pub struct TraceError {
    /// The statement that failed, if one did.
    pub statement: Option<String>,
    /// What PostgreSQL said.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.statement {
            Some(sql) => write!(f, "{} (in: {})", self.message, first_line(sql)),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TraceError {}

fn error(statement: Option<&str>, e: &postgres::Error) -> TraceError {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    };
    TraceError {
        statement: statement.map(str::to_owned),
        message,
    }
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or_default()
}

/// A relation's identity and its relfilenode.
type Catalog = HashMap<u32, (Relation, u32)>;

const CATALOG_SQL: &str = "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
        c.relfilenode \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

fn catalog(client: &mut Client) -> Result<Catalog, TraceError> {
    let rows = client
        .query(CATALOG_SQL, &[])
        .map_err(|e| error(None, &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind: String = r.get(3);
            (
                r.get::<_, u32>(0),
                (
                    Relation {
                        schema: r.get(1),
                        name: r.get(2),
                        kind: kind.chars().next().unwrap_or('?'),
                    },
                    r.get::<_, u32>(4),
                ),
            )
        })
        .collect())
}

/// The relation locks of backend `pid` in this database: (oid, mode, granted), and whether
/// it waits for any lock at all.
fn locks_of(client: &mut Client, pid: i32) -> Result<(Vec<(u32, LockMode)>, bool), TraceError> {
    let rows = client
        .query(
            "SELECT l.locktype, l.relation, l.mode, l.granted FROM pg_locks l \
             WHERE l.pid = $1 AND (l.locktype <> 'relation' OR l.database = \
               (SELECT oid FROM pg_database WHERE datname = current_database()))",
            &[&pid],
        )
        .map_err(|e| error(None, &e))?;
    let mut out = Vec::new();
    let mut waiting = false;
    for r in rows {
        let granted: bool = r.get(3);
        waiting |= !granted;
        let locktype: String = r.get(0);
        let relation: Option<u32> = r.get(1);
        let mode: String = r.get(2);
        if let (true, Some(oid), Some(mode)) = (
            locktype == "relation",
            relation,
            LockMode::from_pg_locks_name(&mode),
        ) {
            out.push((oid, mode));
        }
    }
    Ok((out, waiting))
}

fn backend_pid(client: &mut Client) -> Result<i32, TraceError> {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .map(|r| r.get(0))
        .map_err(|e| error(None, &e))
}

/// The strongest mode per relation among `taken` that `before` did not hold already, named by
/// the catalogs before and after: a relation keeps the name it had when the statement began
/// (a renamed table is reported under its old name, a created one under its new name).
fn strongest_new(
    taken: &[(u32, LockMode)],
    before: &BTreeSet<(u32, LockMode)>,
    names: &[&Catalog],
) -> Vec<(Relation, LockMode)> {
    let mut best: BTreeMap<u32, LockMode> = BTreeMap::new();
    for (oid, mode) in taken {
        if before.contains(&(*oid, *mode)) {
            continue;
        }
        let e = best.entry(*oid).or_insert(*mode);
        *e = (*e).max(*mode);
    }
    let mut out: Vec<(Relation, LockMode)> = best
        .into_iter()
        .filter_map(|(oid, mode)| {
            names
                .iter()
                .find_map(|c| c.get(&oid))
                .map(|(rel, _)| (rel.clone(), mode))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn rewritten(before: &Catalog, after: &Catalog) -> Vec<Relation> {
    let mut out: Vec<Relation> = before
        .iter()
        .filter_map(|(oid, (rel, node))| match after.get(oid) {
            Some((_, new)) if new != node && *node != 0 => Some(rel.clone()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Runs `statements` in one transaction on `worker`, tracing each, then `untraced` (the tool's
/// bookkeeping), then commits (or rolls back, with `commit` false). Held times run to the end of
/// the transaction.
pub fn trace_transaction(
    worker: &mut Client,
    statements: &[String],
    untraced: &[String],
    commit: bool,
) -> Result<Vec<StatementTrace>, TraceError> {
    worker.batch_execute("BEGIN").map_err(|e| error(None, &e))?;
    let result = trace_in_transaction(worker, statements, untraced);
    let traced = match result {
        Ok(traced) => traced,
        Err(e) => {
            let _ = worker.batch_execute("ROLLBACK");
            return Err(e);
        }
    };
    let end = if commit { "COMMIT" } else { "ROLLBACK" };
    worker.batch_execute(end).map_err(|e| error(None, &e))?;
    let ended = Instant::now();
    Ok(traced
        .into_iter()
        .map(|(started, mut t)| {
            for lock in &mut t.locks {
                lock.held = ended.duration_since(started);
            }
            t
        })
        .collect())
}

fn trace_in_transaction(
    worker: &mut Client,
    statements: &[String],
    untraced: &[String],
) -> Result<Vec<(Instant, StatementTrace)>, TraceError> {
    let pid = backend_pid(worker)?;
    let mut out = Vec::with_capacity(statements.len());
    for sql in statements {
        let before = catalog(worker)?;
        let held: BTreeSet<(u32, LockMode)> = locks_of(worker, pid)?.0.into_iter().collect();
        let started = Instant::now();
        worker
            .batch_execute(sql)
            .map_err(|e| error(Some(sql), &e))?;
        let elapsed = started.elapsed();
        let after = catalog(worker)?;
        let (taken, _) = locks_of(worker, pid)?;
        out.push((
            started,
            StatementTrace {
                sql: sql.clone(),
                transactional: true,
                elapsed,
                locks: strongest_new(&taken, &held, &[&before, &after])
                    .into_iter()
                    .map(|(relation, mode)| TakenLock {
                        relation,
                        mode,
                        held: Duration::ZERO,
                    })
                    .collect(),
                rewritten: rewritten(&before, &after),
            },
        ));
    }
    for sql in untraced {
        worker
            .batch_execute(sql)
            .map_err(|e| error(Some(sql), &e))?;
    }
    Ok(out)
}

/// Runs one statement outside a transaction block on `worker`, watched from `monitor` (a
/// second session to the same database; see the module's documentation).
pub fn trace_autocommit(
    worker: &mut Client,
    monitor: &mut Client,
    sql: &str,
) -> Result<StatementTrace, TraceError> {
    let pid = backend_pid(worker)?;
    let before = catalog(worker)?;
    let tables: Vec<String> = before
        .values()
        .filter(|(r, _)| r.is_table())
        .map(|(r, _)| {
            format!(
                "{}.{}",
                migrate_core::render::quote_ident(&r.schema),
                migrate_core::render::quote_ident(&r.name)
            )
        })
        .collect();
    monitor
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current();")
        .map_err(|e| error(None, &e))?;
    if !tables.is_empty() {
        if let Err(e) = monitor.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE",
            tables.join(", ")
        )) {
            let _ = monitor.batch_execute("ROLLBACK");
            return Err(error(None, &e));
        }
    }
    let mut seen: Vec<(u32, LockMode)> = Vec::new();
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let r = worker.batch_execute(sql);
            (r, started.elapsed())
        });
        let mut in_transaction = true;
        let mut watch = || -> Result<(), TraceError> {
            while !running.is_finished() {
                let (locks, waiting) = locks_of(monitor, pid)?;
                seen.extend(locks);
                if waiting && in_transaction {
                    monitor
                        .batch_execute("ROLLBACK")
                        .map_err(|e| error(None, &e))?;
                    in_transaction = false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        };
        let watched = watch();
        if in_transaction {
            let _ = monitor.batch_execute("ROLLBACK");
        }
        let ran = running
            .join()
            .expect("the traced statement's thread does not panic");
        (watched, ran)
    });
    let (watched, (ran, elapsed)) = outcome;
    ran.map_err(|e| error(Some(sql), &e))?;
    watched?;
    let after = catalog(worker)?;
    Ok(StatementTrace {
        sql: sql.to_owned(),
        transactional: false,
        elapsed,
        locks: strongest_new(&seen, &BTreeSet::new(), &[&before, &after])
            .into_iter()
            .map(|(relation, mode)| TakenLock {
                relation,
                mode,
                held: elapsed,
            })
            .collect(),
        rewritten: rewritten(&before, &after),
    })
}

//! Phases: how an op runs when it needs more than one transaction.
//!
//! [`crate::render::render`] gives an op's statements as one list, which the engine runs in the
//! revision's transaction (or one by one, for `CONCURRENTLY`). That is right for a catalog
//! change, and wrong for what must not hold a lock while it works: a `VALIDATE` that scans the
//! table, a backfill of a million rows, the swap of an online type change. For those,
//! [`crate::render::phases`] gives the op as a list of [`Phase`]s, and an executor that knows
//! phases runs them in order:
//!
//! | phase | how it runs | if the run dies inside it |
//! |---|---|---|
//! | [`Phase::Transaction`] | in the current transaction, which may hold earlier ops' statements | rolled back with it |
//! | [`Phase::OwnTransaction`] | commits what came before, then runs in a transaction of its own, committed at its end | rolled back; the earlier phases stay committed |
//! | [`Phase::Autocommit`] | commits what came before, then runs outside any transaction block | leaves what its `cleanup` removes (an INVALID index) |
//! | [`Phase::Batches`] | commits what came before, then runs [`BatchJob::batch`] in a loop, one transaction per batch | every committed batch stays; the next run resumes after the last one |
//!
//! # Resuming (for the engine, stage 2)
//!
//! A revision whose ops have phases other than `Transaction` is no longer atomic, so the engine
//! records progress in the database, not in the process, and a second `migrate` finishes what a
//! `kill -9` or a lost connection interrupted:
//!
//! - A *phase* is named by `(revision, direction, op index, phase index)`, positions in the
//!   revision's op list and in the op's phase list, both stable since the revision's checksum
//!   pins its ops. The engine keeps one row per phase begun in a progress table of its own
//!   (beside the history table): `state` (`running`, `done`), and for batches `last_key` (the
//!   key of the last row of the last committed batch, as text) and `rows_done`.
//! - `OwnTransaction` and each batch write their progress row **in their own transaction**, so
//!   a phase is done exactly when its row says so, and a batch's rows are updated exactly once.
//! - `Autocommit` phases cannot share a transaction with their progress row: they are written
//!   to be run again (`cleanup` first, then the statement), and their row is written after.
//! - On the next run the engine skips the phases marked done, resumes a `Batches` phase after
//!   `last_key`, and re-runs an unfinished `Autocommit` after its cleanup. The version and
//!   history rows are written with the last phase, so `status` shows the revision as applied
//!   only when all of it is; until then it shows it in progress (the progress rows say where).
//! - Each batch binds two parameters: `$1`, the last key done, as text, `NULL` for the first
//!   batch, and `$2`, the most rows to take (at most [`BatchJob::rows`]; the executor lowers it
//!   when a batch runs too long). It returns one row: the key of the last row it took, as
//!   text, or `NULL` when no row was left (then the phase is done), and how many rows it took. The bound is a keyset over
//!   the primary key (`key > $1 ORDER BY key LIMIT n`), so a batch costs one index range scan
//!   wherever the job is, and rows inserted behind the cursor by the application are left to the
//!   triggers or defaults that the op put in place before the backfill began.
//! - [`Batching::rows_per_second`](crate::op::Batching) bounds the pace: after a batch of `n`
//!   rows that took `t`, the executor sleeps `n / rate - t` when positive.
//! - Lock waits: every phase's statements run with the session's short `lock_timeout`, and a
//!   phase that lost a race for a lock is retried whole (a batch is retried alone).
//!
//! # Executors without phases
//!
//! Every phase also has a form that runs inside one transaction, its *fallback*
//! ([`Phase::fallback`]): a batch job becomes one `UPDATE` of all its rows, an index that a
//! phased op builds `CONCURRENTLY` becomes a plain `CREATE INDEX`. [`crate::render::render`]
//! is the concatenation of the fallbacks, so an executor that runs a revision as one
//! transaction (today's engine, `--single-transaction`, SQLite, a reviewer reading
//! `generate-sql`) gets the same end state, blocking as `ALTER TABLE` would, and the checksum,
//! computed from that rendering, does not change when the engine learns to run phases. A
//! `CONCURRENTLY` that the revision asked for itself (an `Op::CreateIndex` with `concurrently`)
//! stays concurrent in the fallback too: that is what the revision says, and what its checksum
//! was recorded over.
//!
//! SQLite has a single writer and no concurrent DDL: every op renders as one `Transaction`
//! phase there, the blocking form, which is correct and, for the embedded database of one
//! process, fast enough.

use crate::render::Statement;
use crate::schema::TableName;

/// One step of an op (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Statements that may share the transaction of what comes before them.
    Transaction(Vec<Statement>),
    /// Statements that must not share a transaction with what comes before them: the locks of
    /// earlier statements would be held while these work (a `VALIDATE` scan), or earlier work
    /// must be committed first (a swap after a backfill).
    OwnTransaction(Vec<Statement>),
    /// One statement that cannot run inside a transaction block (`CREATE INDEX CONCURRENTLY`).
    Autocommit {
        /// The statement.
        statement: Statement,
        /// What removes its leftovers after a failure (and makes it safe to run again).
        cleanup: Vec<Statement>,
        /// Its blocking equivalent inside a transaction, when the op that asked for it is one
        /// that falls back to a transaction (see [`Phase::fallback`]); `None`: the statement
        /// itself, outside a transaction, even in the fallback.
        in_transaction: Option<Statement>,
    },
    /// A batched update: a loop of short transactions.
    Batches(BatchJob),
}

/// A loop of batches over a table's primary key (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchJob {
    /// The table.
    pub table: TableName,
    /// Its primary key column, which the batches range over.
    pub key: String,
    /// Rows per batch.
    pub rows: u32,
    /// Rows per second at most, if limited.
    pub rows_per_second: Option<u32>,
    /// One batch: takes `$1` (the last key done, as text, or `NULL`) and `$2` (the most rows to
    /// take), returns the last key it took, as text, or `NULL` when nothing was left, and the
    /// number of rows it took.
    pub batch: Statement,
    /// The whole job as one statement, for an executor without batches.
    pub whole: Statement,
}

impl Phase {
    /// The statements this phase runs as part of one transaction (see the module's
    /// documentation).
    pub fn fallback(&self) -> Vec<Statement> {
        match self {
            Phase::Transaction(statements) | Phase::OwnTransaction(statements) => {
                statements.clone()
            }
            Phase::Autocommit {
                statement,
                in_transaction,
                ..
            } => vec![in_transaction.clone().unwrap_or_else(|| statement.clone())],
            Phase::Batches(job) => vec![job.whole.clone()],
        }
    }

    /// Whether this phase commits what came before it.
    pub fn commits_before(&self) -> bool {
        !matches!(self, Phase::Transaction(_))
    }

    /// The statements an executor with phases runs, in order (a batch job: its batch).
    pub fn statements(&self) -> Vec<&Statement> {
        match self {
            Phase::Transaction(statements) | Phase::OwnTransaction(statements) => {
                statements.iter().collect()
            }
            Phase::Autocommit { statement, .. } => vec![statement],
            Phase::Batches(job) => vec![&job.batch],
        }
    }
}

/// The statements of `phases` run as one transaction: each phase's fallback, in order.
pub fn flatten(phases: &[Phase]) -> Vec<Statement> {
    phases.iter().flat_map(Phase::fallback).collect()
}

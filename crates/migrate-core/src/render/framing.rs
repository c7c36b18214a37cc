//! How each dialect frames one transaction of a run: the statements around the revision's own.
//! The driver executes them and a script prints them, from this one place, so that a dry run
//! shows what really runs.

use super::Dialect;

/// The statements around one transaction, for one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionFraming {
    /// Run before the transaction, outside it: settings that a transaction cannot change.
    pub before: &'static [&'static str],
    /// Opens the transaction.
    pub begin: &'static str,
    /// Queries run after the revision's statements, before `commit`: a check fails (and the
    /// transaction is rolled back) when it returns a row.
    pub checks: &'static [&'static str],
    /// Commits the transaction.
    pub commit: &'static str,
}

/// PostgreSQL enforces every constraint itself: a plain transaction.
const POSTGRES: TransactionFraming = TransactionFraming {
    before: &[],
    begin: "BEGIN",
    checks: &[],
    commit: "COMMIT",
};

/// SQLite: a table rebuild drops a table that others reference, so foreign keys are off during
/// the transaction (the pragma has no effect inside one) and checked before it commits; the
/// write lock is taken at `BEGIN`, so that the application's writers wait rather than
/// interleave.
const SQLITE: TransactionFraming = TransactionFraming {
    before: &["PRAGMA foreign_keys = OFF"],
    begin: "BEGIN IMMEDIATE",
    checks: &[FOREIGN_KEY_CHECK],
    commit: "COMMIT",
};

/// The rows of the SQLite database that break a foreign key: table, rowid, referenced table.
pub const FOREIGN_KEY_CHECK: &str = "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check";

/// The framing of a transaction in `dialect`.
pub fn transaction_framing(dialect: Dialect) -> TransactionFraming {
    match dialect {
        Dialect::Postgres => POSTGRES,
        Dialect::Sqlite => SQLITE,
    }
}

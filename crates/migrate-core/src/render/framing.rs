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
    /// Statements run after the revision's own, before `commit`, that fail (and so roll the
    /// transaction back, in the driver as in a shell run with `-bail`) when the transaction
    /// broke what the database did not enforce meanwhile.
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
    checks: &FOREIGN_KEY_GUARD,
    commit: "COMMIT",
};

/// SQLite's foreign-key check as statements that fail when a row breaks a foreign key: a row
/// inserted for each broken one into a temporary table whose CHECK refuses it, naming the
/// failure (the renderer's refusals work the same way). A query alone would only list the rows
/// in a shell, which would then commit.
pub const FOREIGN_KEY_GUARD: [&str; 3] = [
    "CREATE TEMP TABLE _identity_migrate_foreign_keys (broken BOOLEAN CONSTRAINT \"a row references a missing row: PRAGMA foreign_key_check lists them\" CHECK (NOT broken))",
    "INSERT INTO temp._identity_migrate_foreign_keys (broken) SELECT TRUE FROM pragma_foreign_key_check LIMIT 1",
    "DROP TABLE temp._identity_migrate_foreign_keys",
];

/// The rows of the SQLite database that break a foreign key: table, rowid, referenced table.
pub const FOREIGN_KEY_CHECK: &str = "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check";

/// The framing of a transaction in `dialect`.
pub fn transaction_framing(dialect: Dialect) -> TransactionFraming {
    match dialect {
        Dialect::Postgres => POSTGRES,
        Dialect::Sqlite => SQLITE,
    }
}

/// How an operator applies a script of one dialect with the database's own shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellApplication {
    /// The shell's command line and what it makes of the script, for the script's header.
    pub apply_with: &'static str,
    /// Whether the script carries each transaction's own framing (`BEGIN` .. `COMMIT`); if not,
    /// the shell makes the whole script one transaction.
    pub framed: bool,
}

impl Dialect {
    /// How a script of this dialect is applied by hand; `one_transaction` when every step of it
    /// can run in one transaction.
    pub fn shell_application(self, one_transaction: bool) -> ShellApplication {
        match self {
            // SQLite's framing runs a pragma outside the transaction: the script frames itself
            // (one transaction, since SQLite builds no index concurrently).
            Dialect::Sqlite => ShellApplication {
                apply_with: "Apply with: sqlite3 -bail DATABASE < FILE (the script is one transaction: all or nothing)",
                framed: true,
            },
            Dialect::Postgres if one_transaction => ShellApplication {
                apply_with: "Apply with: psql -v ON_ERROR_STOP=1 -1 -f FILE (one transaction: all or nothing)",
                framed: false,
            },
            Dialect::Postgres => ShellApplication {
                apply_with: "Apply with: psql -v ON_ERROR_STOP=1 -f FILE (each revision in its own transaction, as `migrate` runs them; a concurrent index build outside any)",
                framed: true,
            },
        }
    }
}

#[cfg(test)]
mod shell_application_tests {
    use super::*;

    #[test]
    fn a_script_frames_itself_unless_the_shell_makes_it_one_transaction() {
        assert!(!Dialect::Postgres.shell_application(true).framed);
        assert!(Dialect::Postgres.shell_application(false).framed);
        assert!(Dialect::Sqlite.shell_application(true).framed);
        assert!(Dialect::Postgres
            .shell_application(true)
            .apply_with
            .contains(" -1 "));
    }
}

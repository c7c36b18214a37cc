//! Deterministic synthetic data for the identity schema (the 10 tables of revision
//! `68d314520251` and whatever later revisions keep of them, under the names they gave), for
//! exercising migrations on realistic volumes.
//!
//! - The same seed gives the same rows, byte for byte: values come from a SplitMix64 stream per
//!   (purpose, row), and the calendar is fixed (2018 to 2025), never `now()`.
//! - Rows are referentially valid and respect every unique constraint by construction:
//!   identifiers, emails, usernames, slugs and token hashes embed a bijection of the row index.
//! - Values are written to survive the type changes later revisions plan: timestamps as
//!   `YYYY-MM-DD HH:MM:SS` UTC, JSON as valid JSON, IP addresses as valid `inet` text.
//! - Loading uses COPY (text format) in one transaction, streamed in chunks: a million users
//!   and their ~12 million related rows need no more memory than a few hundred kilobytes here.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = postgres::Client::connect("host=localhost user=postgres", postgres::NoTls)?;
//! let report = identity_seed::seed(&mut client, &identity_seed::Scale::users(10_000), 42)?;
//! println!("{} rows", report.total());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

mod bulk;
mod copy;
mod gen;
mod tables;
mod words;

use copy::{copy_table, Out};
use tables::Ctx;

/// How much to generate. Related tables scale with `users` (see [`seed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Number of organizations; users are spread over them. With 0, no user has one.
    pub organizations: u64,
    /// Number of users.
    pub users: u64,
}

impl Scale {
    /// `n` users and `n / 100` organizations (at least 1).
    pub fn users(n: u64) -> Scale {
        Scale {
            organizations: (n / 100).max(1),
            users: n,
        }
    }
}

/// What was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Rows per table, in load order, as the server counted them.
    pub rows: Vec<(String, u64)>,
}

impl SeedReport {
    /// The row count of one table, if it was seeded.
    pub fn get(&self, table: &str) -> Option<u64> {
        self.rows.iter().find(|(t, _)| t == table).map(|(_, n)| *n)
    }

    /// All rows, all tables.
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}

/// Why seeding did not happen. In every case the transaction was rolled back: the database is
/// as it was.
#[derive(Debug)]
pub enum SeedError {
    /// These tables do not exist (the database is not at the identity schema's head).
    MissingTables(Vec<String>),
    /// These columns (`table.column`) exist under neither their name at `68d314520251` nor
    /// the model's name a later revision gave them.
    MissingColumns(Vec<String>),
    /// These tables already have rows; seeding only fills an empty schema, so the result is
    /// known and repeatable.
    NotEmpty(Vec<String>),
    /// The server refused something (connection, a check, a COPY row).
    Postgres(postgres::Error),
    /// Writing to the COPY stream failed for a reason that is not a server error.
    Io(std::io::Error),
}

impl SeedError {
    /// The COPY writer reports server errors as `io::Error`; unwrap them back, so callers see
    /// the SQLSTATE and message.
    fn from_io(e: std::io::Error) -> SeedError {
        match e
            .into_inner()
            .map(|inner| inner.downcast::<postgres::Error>())
        {
            Some(Ok(pg)) => SeedError::Postgres(*pg),
            Some(Err(other)) => SeedError::Io(std::io::Error::other(other)),
            None => SeedError::Io(std::io::Error::other("COPY write failed")),
        }
    }
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedError::MissingTables(t) => write!(
                f,
                "cannot seed: missing tables {} (upgrade the database to head first)",
                t.join(", ")
            ),
            SeedError::MissingColumns(c) => write!(
                f,
                "cannot seed: missing columns {} (upgrade the database to 68d314520251 or later first)",
                c.join(", ")
            ),
            SeedError::NotEmpty(t) => {
                write!(f, "cannot seed: tables already have rows: {}", t.join(", "))
            }
            // postgres::Error's own text is just "db error": show the server's message.
            SeedError::Postgres(e) => match e.as_db_error() {
                Some(db) => {
                    write!(f, "seeding failed: {} ({})", db.message(), db.code().code())?;
                    match db.detail() {
                        Some(detail) => write!(f, ": {detail}"),
                        None => Ok(()),
                    }
                }
                None => write!(f, "seeding failed: {e}"),
            },
            SeedError::Io(e) => write!(f, "seeding failed while streaming COPY data: {e}"),
        }
    }
}

impl std::error::Error for SeedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SeedError::Postgres(e) => Some(e),
            SeedError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<postgres::Error> for SeedError {
    fn from(e: postgres::Error) -> Self {
        SeedError::Postgres(e)
    }
}

/// The seeded tables, in load order (parents before children).
pub use identity_schema::TABLES;

/// A table: its columns, and the rows generated for one parent index.
type Generator = (&'static [&'static str], fn(&Ctx, u64, &mut Out));

/// The generator of each of [`TABLES`], same order.
const GENERATORS: [Generator; 10] = [
    (tables::ORGANIZATIONS, tables::organization),
    (tables::USERS, tables::user),
    (tables::USER_PROFILES, tables::user_profile),
    (tables::USER_SESSIONS, tables::user_sessions),
    (tables::MFA_METHODS, tables::mfa_methods),
    (tables::MFA_CHALLENGES, tables::mfa_challenges),
    (tables::EMAIL_VERIFICATIONS, tables::email_verifications),
    (tables::PASSWORD_RESETS, tables::password_resets),
    (tables::USER_ACTIVITY_LOGS, tables::user_activity_logs),
    (tables::USER_PREFERENCES, tables::user_preferences),
];

/// Fills the 10 identity tables with deterministic data, in one transaction.
///
/// Per user, on average: 0.5 profile (30 % of them with a manager), 2 sessions, 0.4 MFA
/// methods (30 % of users have some), 0.4 challenges (about one per method), 1.05 email
/// verifications, 0.12 password resets, 5 activity log entries and 2 preferences. About 90 %
/// of users belong to an organization; statuses follow the application's value set, and
/// `deleted` users carry `deleted_at`.
///
/// Refuses, changing nothing, when a table is missing ([`SeedError::MissingTables`]) or has
/// rows ([`SeedError::NotEmpty`]); any failure mid-way rolls everything back. The tables are
/// locked from the emptiness check to the commit, so no concurrent writer can slip rows in
/// between (and, once loading starts, no reader sees them half-built either).
///
/// Loading is done the way `pg_restore` does it: the tables' indexes, primary and unique keys
/// and the foreign keys that involve them are dropped, the rows copied (frozen), then all of
/// them recreated from their catalog definitions, which checks every key at once, and the
/// tables analyzed. The schema after the commit is the schema before it. So the role must own
/// the tables, and other sessions wait (reads included) until the seed commits or fails.
pub fn seed(
    client: &mut postgres::Client,
    scale: &Scale,
    seed: u64,
) -> Result<SeedReport, SeedError> {
    seed_with_progress(client, scale, seed, &mut |_| {})
}

/// The names the seeded columns have in the database: the generators write the columns of
/// `68d314520251`, some of which a later revision renamed to the identity service's names
/// (`identity_schema`'s list of renames); the data is the same.
struct ColumnNames {
    renamed: Vec<(&'static str, &'static str, &'static str)>,
}

impl ColumnNames {
    fn get(&self, table: &str, column: &'static str) -> &'static str {
        self.renamed
            .iter()
            .find(|(t, from, _)| *t == table && *from == column)
            .map_or(column, |(_, _, to)| to)
    }
}

/// Reads which of the seeded columns the database has under which name; refuses when one is
/// under neither.
fn column_names(tx: &mut postgres::Transaction<'_>) -> Result<ColumnNames, SeedError> {
    use identity_schema::revisions::r3ffba08b0d3f_align_with_the_service_models::RENAMES;
    let present: std::collections::BTreeSet<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ANY($1)",
            &[&TABLES.to_vec()],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let has = |t: &str, c: &str| present.contains(&(t.to_owned(), c.to_owned()));
    let renamed: Vec<_> = RENAMES
        .iter()
        .copied()
        .filter(|(t, from, to)| !has(t, from) && has(t, to))
        .collect();
    let names = ColumnNames { renamed };
    let missing: Vec<String> = TABLES
        .iter()
        .zip(GENERATORS)
        .flat_map(|(table, (columns, _))| {
            columns
                .iter()
                .filter(|c| !has(table, names.get(table, c)))
                .map(move |c| format!("{table}.{c}"))
        })
        .collect();
    if missing.is_empty() {
        Ok(names)
    } else {
        Err(SeedError::MissingColumns(missing))
    }
}

/// A finished step of [`seed_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A table's rows were copied.
    Loaded {
        /// The table.
        table: &'a str,
        /// Rows copied.
        rows: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// Indexes and keys were recreated (and validated) and the tables analyzed; only the
    /// commit is left.
    Rebuilt {
        /// Indexes and constraints recreated.
        objects: usize,
        /// How long it took.
        elapsed: Duration,
    },
}

/// [`seed`], reporting each step as it finishes (a million users take minutes; a caller may
/// want to say where it is). Nothing is committed until the last step is done.
pub fn seed_with_progress(
    client: &mut postgres::Client,
    scale: &Scale,
    seed: u64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SeedReport, SeedError> {
    let mut tx = client.transaction()?;
    // Timestamps are written without an offset: pin their meaning to UTC in case a later
    // revision made the columns timestamptz.
    tx.batch_execute("SET LOCAL TIME ZONE 'UTC'")?;
    let names: Vec<&str> = TABLES.to_vec();
    let missing: Vec<String> = tx
        .query(
            "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) \
             WHERE to_regclass(quote_ident(t)) IS NULL ORDER BY n",
            &[&names],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !missing.is_empty() {
        return Err(SeedError::MissingTables(missing));
    }
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        TABLES.join(", ")
    ))?;
    let names = column_names(&mut tx)?;
    let probe = TABLES
        .iter()
        .map(|t| format!("SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let not_empty: Vec<String> = tx.query(&probe, &[])?.iter().map(|r| r.get(0)).collect();
    if !not_empty.is_empty() {
        return Err(SeedError::NotEmpty(not_empty));
    }

    // Index builds sort; more memory means fewer passes (only for this transaction).
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")?;
    let restore = bulk::defer_indexes_and_keys(&mut tx, &TABLES)?;
    // The tables are empty already; truncating them in this transaction is what lets COPY
    // write frozen rows.
    tx.batch_execute(&format!("TRUNCATE {}", TABLES.join(", ")))?;

    let ctx = Ctx {
        keys: gen::Keys::new(seed),
        users: scale.users,
        orgs: scale.organizations,
    };
    let mut rows = Vec::with_capacity(TABLES.len());
    for (table, (columns, generate)) in TABLES.iter().zip(GENERATORS) {
        let parents = if *table == "organizations" {
            scale.organizations
        } else {
            scale.users
        };
        let started = Instant::now();
        let columns: Vec<&str> = columns.iter().map(|c| names.get(table, c)).collect();
        let loaded = copy_table(&mut tx, table, &columns, parents, |i, out| {
            generate(&ctx, i, out)
        })?;
        progress(Progress::Loaded {
            table,
            rows: loaded,
            elapsed: started.elapsed(),
        });
        rows.push((table.to_string(), loaded));
    }
    let started = Instant::now();
    for sql in &restore {
        tx.batch_execute(sql)?;
    }
    // Planner statistics now, so that what runs next on the data is planned on its real size.
    tx.batch_execute(&format!("ANALYZE {}", TABLES.join(", ")))?;
    progress(Progress::Rebuilt {
        objects: restore.iter().filter(|s| !s.starts_with("COMMENT")).count(),
        elapsed: started.elapsed(),
    });
    tx.commit()?;
    Ok(SeedReport { rows })
}

//! The backup half of the driver contract: take a snapshot, read an archive, restore from one,
//! count a database's rows. A driver holds the SQL, the sessions and the client tools; the
//! policy above it (staging, manifest, verification, restore decisions) names no database.

use crate::driver::DriverError;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What a database or an archive holds of one table: its row count and a SHA-256 over its data,
/// so that any change to the data is caught even where a file's own checksum was rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableData {
    /// Rows.
    pub rows: u64,
    /// SHA-256 of the table's data as the driver renders it (COPY text lines), lowercase hex.
    pub sha256: String,
}

/// One file of an archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Path relative to the archive (the file's own name for a one-file archive).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// How far a long operation has come, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written so far (0 when unknown).
    pub bytes: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// The archive a snapshot writes, as the driver understood the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFormat {
    /// The format's name, as the manifest records it.
    pub name: String,
    /// The default file name's extension (empty for a directory).
    pub extension: &'static str,
    /// The compression level, where the format compresses.
    pub compression: Option<u32>,
}

/// What a snapshot is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The format's name; `None` takes the driver's default.
    pub format: Option<String>,
    /// With no format named: prefer one that is a single file (a safety backup).
    pub one_file: bool,
    /// Parallel jobs, where the format allows them.
    pub jobs: u32,
    /// The compression level; `None` takes the format's default.
    pub compress: Option<u32>,
}

/// What a snapshot wrote and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The archive's format.
    pub format: ArchiveFormat,
    /// When the snapshot was taken, by the database's clock (UTC, ISO 8601).
    pub created_at: String,
    /// The server's (or library's) version.
    pub server_version: String,
    /// The version of the client tool that wrote the archive; empty when none did.
    pub tool_version: String,
    /// The database's revision(s) in the snapshot.
    pub revisions: Vec<String>,
    /// Rows per table, counted by the database in the snapshot.
    pub counted: BTreeMap<String, u64>,
    /// Per table, what the archive itself holds, read back from the bytes written.
    pub archived: BTreeMap<String, TableData>,
    /// Every file of the archive, where the pass that wrote it hashed them; `None` leaves the
    /// hashing to the caller.
    pub files: Option<Vec<ArchiveFile>>,
    /// How the archive was checked as it was written, for the operator.
    pub checked: String,
}

/// How a restore replaces the target's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Restored with parallel sessions into a scratch database, checked, and renamed into
    /// place in one transaction.
    Swap,
    /// Restored in one transaction into the target itself, for the reason given.
    InPlace(String),
}

/// What a restore is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// Restore in one transaction into the target itself even where a swap is possible.
    pub in_place: bool,
    /// Parallel sessions, where the method allows them.
    pub jobs: u32,
    /// How long a swap waits for other sessions to leave the target.
    pub session_wait: Duration,
}

/// What the restored database must hold: the manifest's row counts and data digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// Data digest per table.
    pub table_sha256: BTreeMap<String, String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// How the target was replaced.
    pub method: Method,
    /// The previous database, renamed and kept, when the target held anything (swap only).
    pub previous: Option<String>,
    /// The revision(s) the database is at now.
    pub revisions: Vec<String>,
    /// Rows now in the database, per table.
    pub tables: BTreeMap<String, u64>,
}

/// Why a restore stopped. Every variant leaves the target as it was, except where the
/// message says otherwise ([`RestoreError::Differs`] comes after the content landed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The database or a client tool failed.
    Driver(DriverError),
    /// The archive decoded to something else than its manifest says; nothing was restored.
    Corrupt(String),
    /// The restore finished but the database does not hold what the manifest says.
    Differs(String),
    /// Other sessions are connected to the target, and the method needs none.
    SessionsConnected {
        /// The target database.
        database: String,
        /// The sessions, as the driver names them.
        sessions: Vec<String>,
    },
}

impl From<DriverError> for RestoreError {
    fn from(e: DriverError) -> Self {
        RestoreError::Driver(e)
    }
}

/// Reads archives of one kind of database; needs no connection.
pub trait ArchiveReader {
    /// The names of the tables the archive's table of contents holds data for, or `None` when
    /// the format has no table of contents to read apart from the data (then [`Self::read`]).
    fn table_of_contents(
        &self,
        archive: &Path,
        format: &str,
    ) -> Result<Option<Vec<String>>, DriverError>;
    /// Decodes the whole archive: per table, its rows and data digest.
    fn read(
        &self,
        archive: &Path,
        format: &str,
    ) -> Result<BTreeMap<String, TableData>, DriverError>;
    /// Whether a table of the manifest (`schema.table`, quoted where needed) is an entry of
    /// [`Self::table_of_contents`].
    fn lists(&self, entries: &[String], table: &str) -> bool {
        entries.iter().any(|e| e == table)
    }
}

/// The backup half of a driver.
pub trait BackupDriver {
    /// The database as it may be printed: never a password.
    fn redacted(&self) -> String;
    /// The format a snapshot of `request` writes; `Err` is a one-line refusal of bad input.
    fn archive_format(&self, request: &SnapshotRequest) -> Result<ArchiveFormat, String>;
    /// The database's clock as `YYYYMMDD_HHMMSS` (UTC), for default file names.
    fn stamp(&mut self) -> Result<String, DriverError>;
    /// Writes a consistent snapshot of the database to `staged` (which does not exist yet),
    /// counting rows and reading the archive back in the same snapshot.
    fn snapshot(
        &mut self,
        request: &SnapshotRequest,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Snapshot, DriverError>;
    /// A reader of this driver's archives (PostgreSQL: the tools matching the server).
    fn archive_reader(&mut self) -> Result<Box<dyn ArchiveReader>, DriverError>;
    /// How many relations (tables, sequences, views...) a restore would replace.
    fn relation_count(&mut self) -> Result<usize, DriverError>;
    /// Rows per table, now.
    fn count_rows(&mut self) -> Result<BTreeMap<String, u64>, DriverError>;
    /// How [`Self::restore`] would replace the content, given `request` and the role's rights.
    fn restore_method(&mut self, request: &RestoreRequest) -> Result<Method, DriverError>;
    /// Replaces the database's content by the archive, atomically, by `method`, checking what
    /// it restores against `expected` before anything becomes visible where it can.
    #[allow(clippy::too_many_arguments)]
    fn restore(
        &mut self,
        archive: &Path,
        format: &str,
        method: &Method,
        request: &RestoreRequest,
        expected: &Expected,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RestoreOutcome, RestoreError>;
}

/// Compares row counts table by table: what is missing, differs, or is not expected.
pub fn compare_counts(
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (table, want) in expected {
        match found.get(table) {
            None => problems.push(format!("{table} is missing")),
            Some(got) if got != want => {
                problems.push(format!("{table} has {got} rows, expected {want}"))
            }
            Some(_) => {}
        }
    }
    for table in found.keys().filter(|t| !expected.contains_key(*t)) {
        problems.push(format!("{table} is not in the manifest"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Whether row counts and data digests, table by table, are exactly the expected ones.
pub fn check_content(
    expected: &Expected,
    found: &BTreeMap<String, TableData>,
) -> Result<(), String> {
    let rows = found.iter().map(|(t, d)| (t.clone(), d.rows)).collect();
    compare_counts(&expected.tables, &rows)?;
    let altered: Vec<&str> = expected
        .table_sha256
        .iter()
        .filter(|(table, sha)| found.get(*table).map(|d| &d.sha256) != Some(*sha))
        .map(|(table, _)| table.as_str())
        .collect();
    if altered.is_empty() && found.len() == expected.table_sha256.len() {
        return Ok(());
    }
    Err(format!(
        "the data of {} differs from what was backed up",
        if altered.is_empty() {
            "some table".to_owned()
        } else {
            altered.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: u64, sha: &str) -> TableData {
        TableData {
            rows,
            sha256: sha.to_owned(),
        }
    }

    #[test]
    fn content_must_match_counts_and_digests() {
        let expected = Expected {
            tables: [("a".to_owned(), 2)].into(),
            table_sha256: [("a".to_owned(), "x".to_owned())].into(),
        };
        assert_eq!(
            check_content(&expected, &[("a".to_owned(), data(2, "x"))].into()),
            Ok(())
        );
        assert_eq!(
            check_content(&expected, &[("a".to_owned(), data(3, "x"))].into()),
            Err("a has 3 rows, expected 2".to_owned())
        );
        assert_eq!(
            check_content(&expected, &[("a".to_owned(), data(2, "y"))].into()),
            Err("the data of a differs from what was backed up".to_owned())
        );
        assert_eq!(
            check_content(&expected, &BTreeMap::new()),
            Err("a is missing".to_owned())
        );
    }
}

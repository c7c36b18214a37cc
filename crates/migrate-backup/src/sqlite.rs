//! Backups of a SQLite database, under the same rules as PostgreSQL's.
//!
//! - The archive is one SQLite database file (`.db`), copied with SQLite's online backup API in
//!   one snapshot (writers go on meanwhile), written 0600 under a private name, checked
//!   (`quick_check`) and linked into place only when complete; the manifest follows it, so an
//!   archive without one is never trusted.
//! - The manifest has the PostgreSQL layout with format `sqlite`: the file's SHA-256, SQLite's
//!   version as the server's, no `pg_dump` version, the revision(s) and, per table, the row count
//!   and a SHA-256 of the data, all read back from the copy itself.
//! - `verify` checks the SHA-256, the file's structure, and reads every row back, comparing the
//!   counts and digests with the manifest: a truncated, altered or foreign file is refused.
//! - `restore` verifies first and touches nothing if that fails; a database that holds tables is
//!   refused unless `replace` is set, and then a safety backup of it is taken first. The copy
//!   into the database is one write transaction: other connections see the old database or the
//!   new one, never a mix. The result is read back and compared with the manifest.

use crate::{check_content, check_files, hash_files, manifest_path, read_manifest, write_private};
use crate::{nothing_restored, Backup, BackupError, Manifest, Method, Restored};
use migrate_core::driver::Driver;
use migrate_sqlite::backup::{file_revisions, file_table_stats};
use migrate_sqlite::{SqliteDriver, TableStats};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The manifest's `format` of a SQLite backup.
pub const FORMAT: &str = "sqlite";

/// The extension of a SQLite backup's default name.
const EXTENSION: &str = ".db";

/// Where a SQLite backup goes.
#[derive(Debug, Clone)]
pub struct SqliteBackupRequest {
    /// Directory for a backup with a default name.
    pub dir: PathBuf,
    /// Exact destination, if given.
    pub output: Option<PathBuf>,
    /// This tool's version, for the manifest.
    pub tool_version: String,
}

/// Whether the manifest beside `path` describes a SQLite backup.
pub fn is_sqlite_backup(path: &Path) -> bool {
    read_manifest(path).is_ok_and(|m| m.format == FORMAT)
}

/// Backs up the database of `driver` (a file) and writes its manifest.
pub fn backup(
    driver: &mut SqliteDriver,
    request: &SqliteBackupRequest,
) -> Result<Backup, BackupError> {
    if driver.target().path().is_none() {
        return Err(BackupError::Io(
            "an in-memory database cannot be backed up: it lives only in its own connection"
                .to_owned(),
        ));
    }
    let server_version = driver.server_version()?;
    let (stamp, created_at): (String, String) = driver
        .connection()
        .query_row(
            "SELECT strftime('%Y%m%d_%H%M%S', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| BackupError::Io(format!("cannot read the clock of SQLite: {e}")))?;
    let path = match &request.output {
        Some(p) => p.clone(),
        None => crate::free_default_name(&request.dir, &stamp, EXTENSION),
    };
    for existing in [&path, &manifest_path(&path)] {
        if existing.exists() {
            return Err(BackupError::Exists(existing.clone()));
        }
    }
    let stats = driver.backup_to(&path)?;
    // The archive is in place; without its manifest it is not a backup, so it goes on failure.
    let described = describe(driver, &path, stats, server_version, created_at, request);
    match described {
        Ok(manifest) => Ok(Backup { path, manifest }),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Writes the manifest of the archive just written at `path`.
fn describe(
    driver: &SqliteDriver,
    path: &Path,
    stats: BTreeMap<String, TableStats>,
    server_version: String,
    created_at: String,
    request: &SqliteBackupRequest,
) -> Result<Manifest, BackupError> {
    let (tables, table_sha256) = split(stats);
    let manifest = Manifest {
        format_version: 1,
        tool: "identity-migrate".to_owned(),
        tool_version: request.tool_version.clone(),
        created_at,
        database: driver.target().to_string(),
        server_version,
        pg_dump_version: String::new(),
        format: FORMAT.to_owned(),
        revisions: file_revisions(path)?,
        tables,
        table_sha256,
        files: hash_files(path)?,
    };
    let destination = manifest_path(path);
    let staged = destination.with_file_name(format!(
        ".{}.partial-{}",
        destination
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        std::process::id()
    ));
    write_private(&staged, &manifest.to_json())?;
    fs::rename(&staged, &destination).map_err(|e| {
        let _ = fs::remove_file(&staged);
        BackupError::Io(format!(
            "cannot move the manifest to {}: {e}",
            destination.display()
        ))
    })?;
    Ok(manifest)
}

/// Checks a SQLite backup: its manifest, the file's SHA-256, its structure, and every row read
/// back against the manifest's counts and digests.
pub fn verify(path: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(path)?;
    if manifest.format != FORMAT {
        return Err(BackupError::Corrupt(format!(
            "{} is a PostgreSQL backup (format {}), not a SQLite one: restore it into a PostgreSQL database",
            path.display(),
            manifest.format
        )));
    }
    check_files(path, &manifest)?;
    let stats = file_table_stats(path)
        .map_err(|e| BackupError::Corrupt(format!("the archive cannot be read whole ({e})")))?;
    let (rows, digests) = split(stats);
    check_content(&manifest, &rows, &digests).map_err(BackupError::Corrupt)?;
    Ok(manifest)
}

/// Restores a verified SQLite backup into the database of `driver`, atomically.
pub fn restore(
    driver: &mut SqliteDriver,
    path: &Path,
    replace: bool,
    safety: &SqliteBackupRequest,
) -> Result<Restored, BackupError> {
    let manifest = verify(path).map_err(nothing_restored)?;
    let existing = driver.table_stats()?.len();
    let mut safety_backup = None;
    if existing > 0 {
        if !replace {
            return Err(BackupError::NotEmpty { tables: existing });
        }
        log::info!("taking a safety backup of the {existing} table(s) in the target first");
        safety_backup = Some(backup(driver, safety)?);
    }
    let after = driver.restore_from(path)?;
    let (tables, digests) = split(after);
    check_content(&manifest, &tables, &digests).map_err(BackupError::RestoredCountsDiffer)?;
    Ok(Restored {
        method: Method::InPlace(
            "SQLite copies the backup in as one write transaction of the database".to_owned(),
        ),
        previous: None,
        revisions: driver.read_heads()?.into_iter().collect(),
        manifest,
        safety_backup,
        tables,
    })
}

/// Row counts and data digests, as two maps.
fn split(stats: BTreeMap<String, TableStats>) -> (BTreeMap<String, u64>, BTreeMap<String, String>) {
    let rows = stats.iter().map(|(t, s)| (t.clone(), s.rows)).collect();
    let digests = stats.into_iter().map(|(t, s)| (t, s.sha256)).collect();
    (rows, digests)
}

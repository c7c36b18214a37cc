//! `backup`, `backup verify` and `restore` of a SQLite database: the same commands, manifest and
//! output as PostgreSQL's, through SQLite's online backup API instead of `pg_dump`.

use crate::args::BackupArgs;
use crate::commands::io_error;
use crate::config::Resolved;
use crate::database::{Connected, Database};
use crate::error::CliError;
use crate::report::{self, Format};
use migrate_backup::sqlite::{self as lite, SqliteBackupRequest};
use migrate_backup::Backup;
use migrate_sqlite::{SqliteDriver, SqliteTarget};
use std::io::Write;
use std::path::Path;

/// Whether `path` is a SQLite backup (by its manifest).
pub fn is_sqlite_backup(path: &Path) -> bool {
    lite::is_sqlite_backup(path)
}

/// Refuses a SQLite backup on the way into a PostgreSQL database.
pub fn refuse_sqlite_backup(path: &Path) -> Result<(), CliError> {
    if is_sqlite_backup(path) {
        return Err(CliError::Config(format!(
            "{} is a SQLite backup: restore it into a SQLite database (--database-url sqlite:PATH)",
            path.display()
        )));
    }
    Ok(())
}

fn request(cfg: &Resolved, output: Option<&Path>) -> SqliteBackupRequest {
    SqliteBackupRequest {
        dir: cfg.backup_dir.clone(),
        output: output.map(Path::to_owned),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn open(cfg: &Resolved, target: &SqliteTarget, create: bool) -> Result<SqliteDriver, CliError> {
    match Database::Sqlite(target.clone()).connect(cfg, create)? {
        Connected::Sqlite(driver) => Ok(driver),
        Connected::Postgres(_) => unreachable!("a SQLite target connects to SQLite"),
    }
}

/// Takes a verified backup of the SQLite database `target`.
pub fn take(
    cfg: &Resolved,
    target: &SqliteTarget,
    output: Option<&Path>,
) -> Result<Backup, CliError> {
    let mut driver = open(cfg, target, false)?;
    let taken = lite::backup(&mut driver, &request(cfg, output))?;
    log::info!(
        "backup {} written and verified: {} table(s), {} row(s), {:.1} MB",
        taken.path.display(),
        taken.manifest.tables.len(),
        taken.manifest.tables.values().sum::<u64>(),
        taken.manifest.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
    );
    Ok(taken)
}

/// `backup` on SQLite.
pub fn backup(
    out: &mut dyn Write,
    cfg: &Resolved,
    target: &SqliteTarget,
    args: &BackupArgs,
) -> Result<(), CliError> {
    // Refused rather than ignored: the operator asked for something a SQLite backup is not.
    if let Some(format) = &args.format {
        return Err(CliError::Config(format!(
            "--format {format} applies to PostgreSQL: a SQLite backup is always a copy of the database file"
        )));
    }
    if args.compress.is_some() {
        return Err(CliError::Config(
            "--compress applies to PostgreSQL: a SQLite backup is a plain copy of the database file"
                .to_owned(),
        ));
    }
    let taken = take(cfg, target, args.output.as_deref())?;
    let report = crate::commands::backup_report(
        &taken,
        None,
        "quick_check, SHA-256, and every row read back from the copy",
    );
    report::emit(out, &report, Format::json(args.json)).map_err(io_error)
}

/// `backup verify` of a SQLite backup.
pub fn verify(out: &mut dyn Write, path: &Path, format: Format) -> Result<(), CliError> {
    let manifest = lite::verify(path)?;
    let report = report::BackupVerified {
        backup: path.display().to_string(),
        intact: true,
        files: manifest.files.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.values().sum::<u64>(),
        depth: report::Depth::RowsReadBack,
    };
    report::emit(out, &report, format).map_err(io_error)
}

/// `restore` into a SQLite database (a missing file is created).
pub fn restore(
    out: &mut dyn Write,
    cfg: &Resolved,
    target: &SqliteTarget,
    path: &Path,
    yes: bool,
    format: Format,
) -> Result<(), CliError> {
    if let Ok(manifest) = migrate_backup::read_manifest(path) {
        if manifest.format != lite::FORMAT {
            return Err(CliError::Config(format!(
                "{} is a PostgreSQL backup (format {}): restore it into a PostgreSQL database (--database-url postgresql://...)",
                path.display(),
                manifest.format
            )));
        }
    }
    // Checked before the target is opened, so a bad archive never creates a file.
    lite::verify(path).map_err(migrate_backup::nothing_restored)?;
    let mut driver = open(cfg, target, true)?;
    let restored = lite::restore(&mut driver, path, yes, &request(cfg, None))?;
    let report = report::Restore {
        backup: path.display().to_string(),
        database: target.to_string(),
        method: "file".to_owned(),
        in_place_reason: None,
        jobs: None,
        previous_database: None,
        safety_backup: restored
            .safety_backup
            .as_ref()
            .map(|b| b.path.display().to_string()),
        tables: restored.manifest.tables.len(),
        rows: restored.manifest.tables.values().sum::<u64>(),
        revisions: restored.revisions.clone(),
    };
    report::emit(out, &report, format).map_err(io_error)
}

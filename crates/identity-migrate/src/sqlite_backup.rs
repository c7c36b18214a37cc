//! `backup`, `backup verify` and `restore` of a SQLite database: the same commands, manifest and
//! output as PostgreSQL's, through SQLite's online backup API instead of `pg_dump`.

use crate::args::BackupArgs;
use crate::commands::io_error;
use crate::config::Resolved;
use crate::database::{Connected, Database};
use crate::error::CliError;
use crate::output;
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
    let m = &taken.manifest;
    let rows = [
        ("backup", taken.path.display().to_string()),
        (
            "manifest",
            migrate_backup::manifest_path(&taken.path)
                .display()
                .to_string(),
        ),
        ("format", m.format.clone()),
        ("revision", revisions_text(&m.revisions)),
        ("tables", m.tables.len().to_string()),
        ("rows", m.tables.values().sum::<u64>().to_string()),
        (
            "size",
            format!(
                "{:.1} MB",
                m.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
            ),
        ),
        (
            "verified",
            "quick_check, SHA-256, and every row read back from the copy".to_owned(),
        ),
    ];
    output::key_values(out, &rows).map_err(io_error)
}

/// `backup verify` of a SQLite backup.
pub fn verify(out: &mut dyn Write, path: &Path) -> Result<(), CliError> {
    let manifest = lite::verify(path)?;
    writeln!(
        out,
        "{}: intact ({} file(s) match their SHA-256, {} row(s) in {} table(s) read back)",
        path.display(),
        manifest.files.len(),
        manifest.tables.values().sum::<u64>(),
        manifest.tables.len()
    )
    .map_err(io_error)
}

/// `restore` into a SQLite database (a missing file is created).
pub fn restore(
    out: &mut dyn Write,
    cfg: &Resolved,
    target: &SqliteTarget,
    path: &Path,
    yes: bool,
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
    if let Some(safety) = &restored.safety_backup {
        writeln!(
            out,
            "safety backup of the previous content: {}",
            safety.path.display()
        )
        .map_err(io_error)?;
    }
    writeln!(
        out,
        "restored {} into {target}: {} row(s) in {} table(s), matching the manifest; the database is at {}",
        path.display(),
        restored.manifest.tables.values().sum::<u64>(),
        restored.manifest.tables.len(),
        revisions_text(&restored.revisions)
    )
    .map_err(io_error)
}

fn revisions_text(revisions: &[String]) -> String {
    if revisions.is_empty() {
        "base".to_owned()
    } else {
        revisions.join(", ")
    }
}

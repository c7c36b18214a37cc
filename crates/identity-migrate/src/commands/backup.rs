//! `backup`, `backup verify` and `restore`: one function each, whatever the database; the
//! policy is `migrate-backup`'s, the database's part its driver's (see `open`).

use crate::args::BackupArgs;
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::{self, Database};
use crate::report::{self, Format};
use migrate_backup::{
    Backup, BackupError, BackupRequest, Check, Method, RestoreOptions, SnapshotRequest,
};
use std::io::Write;
use std::path::Path;

/// A backup of `snapshot` into the configured backup directory (or `output`).
fn request(cfg: &Resolved, output: Option<&Path>, snapshot: SnapshotRequest) -> BackupRequest {
    BackupRequest {
        dir: cfg.backup_dir.clone(),
        output: output.map(Path::to_owned),
        snapshot,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The backup taken before a change (`migrate --backup`, `promote`, a restore that replaces
/// content): one file, in the driver's own format, into the backup directory.
pub(crate) fn safety_request(cfg: &Resolved) -> BackupRequest {
    request(
        cfg,
        None,
        SnapshotRequest {
            format: None,
            one_file: true,
            jobs: 1,
            compress: None,
        },
    )
}

/// Takes a verified backup of `database`, with a progress line on a terminal.
pub(crate) fn take_backup(
    cfg: &Resolved,
    database: &Database,
    request: &BackupRequest,
) -> Result<Backup, CliError> {
    let mut driver = database.backup_driver(cfg, false)?;
    let mut line = crate::progress::Transfer::new("backup");
    let taken = migrate_backup::backup(driver.as_mut(), request, &mut |p| line.update(p));
    drop(line);
    let taken = taken.map_err(|e| match e {
        // A format or an option this database's backups do not have: bad input.
        BackupError::Refused(m) => CliError::Config(m),
        other => other.into(),
    })?;
    log::info!(
        "backup {} written and verified: {} table(s), {} row(s), {}",
        taken.path.display(),
        taken.manifest.tables.len(),
        taken.rows(),
        megabytes(taken.bytes())
    );
    Ok(taken)
}

/// Bytes as megabytes with one decimal, `12.3 MB`.
fn megabytes(bytes: u64) -> String {
    // Precision lost above 2^53 bytes (8 PB) does not show in one decimal of a megabyte.
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    format!("{mb:.1} MB")
}

pub(super) fn backup(
    out: &mut dyn Write,
    cfg: &Resolved,
    args: &BackupArgs,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let snapshot = SnapshotRequest {
        format: args.format.clone(),
        one_file: false,
        jobs: args.jobs,
        compress: args.compress,
    };
    let taken = take_backup(
        cfg,
        &database,
        &request(cfg, args.output.as_deref(), snapshot),
    )?;
    report::emit(out, &backup_report(&taken), Format::json(args.json)).map_err(io_error)
}

/// The report of a backup taken (`backup`, and the one `migrate --backup` takes first).
fn backup_report(taken: &Backup) -> report::Backup {
    let m = &taken.manifest;
    report::Backup {
        backup: taken.path.display().to_string(),
        manifest: migrate_backup::manifest_path(&taken.path)
            .display()
            .to_string(),
        format: m.format.clone(),
        compression: taken.compression,
        revisions: m.revisions.clone(),
        tables: m.tables.len(),
        rows: taken.rows(),
        bytes: taken.bytes(),
        verified: taken.checked.clone(),
    }
}

pub(super) fn backup_verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &Path,
    full: bool,
    format: Format,
) -> Result<(), CliError> {
    let manifest = migrate_backup::read_manifest(path)?;
    let reader = open::archive_reader(cfg, &manifest)?;
    let check = if full { Check::Full } else { Check::Fast };
    let spinner = crate::progress::spinner(
        format == Format::Json,
        &format!("verifying {}", path.display()),
    );
    let verified = migrate_backup::verify(path, reader.as_ref(), check);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let verified = verified?;
    let manifest = &verified.manifest;
    let report = report::BackupVerified {
        backup: path.display().to_string(),
        intact: true,
        files: manifest.files.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.values().sum::<u64>(),
        depth: if verified.decoded {
            report::Depth::FullDecode
        } else {
            report::Depth::TableOfContents
        },
    };
    report::emit(out, &report, format).map_err(io_error)
}

pub(super) fn restore(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &Path,
    options: &RestoreOptions,
    format: Format,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let manifest = migrate_backup::read_manifest(path)?;
    database.refuse_foreign_archive(path, &manifest)?;
    // Checked before the target is opened, so a bad archive never creates anything.
    let reader = open::archive_reader(cfg, &manifest)?;
    let verified = migrate_backup::verify(path, reader.as_ref(), Check::Fast)
        .map_err(migrate_backup::nothing_restored)?;
    let mut driver = database.backup_driver(cfg, true)?;
    let mut line = crate::progress::Transfer::new("restore");
    let restored = migrate_backup::restore(
        driver.as_mut(),
        &verified,
        options,
        &safety_request(cfg),
        &mut |p| line.update(p),
    );
    drop(line);
    let restored = restored?;
    let (method, in_place_reason) = match &restored.method {
        Method::Swap => ("swap", None),
        Method::InPlace(why) => ("in_place", Some(why.to_string())),
    };
    let report = report::Restore {
        backup: path.display().to_string(),
        database: database.redacted(),
        method: method.to_owned(),
        in_place_reason,
        jobs: (method == "swap").then_some(options.request.jobs),
        previous_database: restored.previous.clone(),
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

//! `backup`, `backup verify` and `restore`.

use super::{io_error, settings};
use crate::args::BackupArgs;
use crate::config::Resolved;
use crate::error::CliError;
use crate::report::{self, Format};
use migrate_postgres::url::ConnectionSettings;
use std::io::Write;

pub(crate) fn backup_request(
    cfg: &Resolved,
    output: Option<&std::path::Path>,
    format: &str,
    jobs: u32,
) -> Result<migrate_backup::BackupRequest, CliError> {
    Ok(migrate_backup::BackupRequest {
        dir: cfg.backup_dir.clone(),
        output: output.map(std::path::Path::to_owned),
        format: migrate_backup::Format::parse(format)
            .ok_or_else(|| CliError::Config(format!("unknown backup format {format:?}")))?,
        jobs,
        compress: None,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

pub(crate) fn take_backup(
    settings: &ConnectionSettings,
    request: &migrate_backup::BackupRequest,
) -> Result<migrate_backup::Backup, CliError> {
    let mut line = crate::progress::Transfer::new("backup");
    let taken = migrate_backup::backup(settings, request, &mut |p| line.update(p))?;
    drop(line);
    log::info!(
        "backup {} written and verified: {} table(s), {} row(s), {:.1} MB",
        taken.path.display(),
        taken.manifest.tables.len(),
        taken.manifest.tables.values().sum::<u64>(),
        taken.manifest.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
    );
    Ok(taken)
}

pub(super) fn backup(
    out: &mut dyn Write,
    cfg: &Resolved,
    args: &BackupArgs,
) -> Result<(), CliError> {
    let settings = settings(cfg)?;
    let format = Format::json(args.json);
    let archive_format = args.format.as_deref().unwrap_or("directory");
    let mut request = backup_request(cfg, args.output.as_deref(), archive_format, args.jobs)?;
    if args.compress.is_some() && request.format == migrate_backup::Format::Plain {
        return Err(CliError::Config(
            "--compress applies to the custom and directory formats, not to plain".to_owned(),
        ));
    }
    request.compress = args.compress;
    let taken = take_backup(&settings, &request)?;
    let report = backup_report(
        &taken,
        (request.format != migrate_backup::Format::Plain).then(|| {
            request
                .compress
                .unwrap_or_else(|| migrate_backup::default_compression(request.format))
        }),
        "a full read of the archive as it was written: every table's rows and data digest",
    );
    report::emit(out, &report, format).map_err(io_error)
}

/// The report of a backup taken, whatever the database.
pub(crate) fn backup_report(
    taken: &migrate_backup::Backup,
    compression: Option<u32>,
    verified: &str,
) -> report::Backup {
    let m = &taken.manifest;
    report::Backup {
        backup: taken.path.display().to_string(),
        manifest: migrate_backup::manifest_path(&taken.path)
            .display()
            .to_string(),
        format: m.format.clone(),
        compression,
        revisions: m.revisions.clone(),
        tables: m.tables.len(),
        rows: m.tables.values().sum::<u64>(),
        bytes: m.files.iter().map(|f| f.bytes).sum::<u64>(),
        verified: verified.to_owned(),
    }
}

pub(super) fn backup_verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &std::path::Path,
    full: bool,
    format: Format,
) -> Result<(), CliError> {
    // The archive is read with the client tools of the server it came from, found by the manifest.
    let manifest = migrate_backup::read_manifest(path)?;
    let major = manifest
        .server_version
        .split(['.', ' '])
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    let tools = match migrate_postgres::backup::find_tools(major) {
        Ok(tools) => tools,
        Err(e) if cfg.database_url.is_some() => {
            log::debug!("{e}; using the tools of the configured server");
            migrate_backup::tools_for(&settings(cfg)?)?
        }
        Err(e) => return Err(e.into()),
    };
    let check = if full {
        migrate_backup::Check::Full
    } else {
        migrate_backup::Check::Fast
    };
    let spinner = crate::progress::spinner(
        format == Format::Json,
        &format!("verifying {}", path.display()),
    );
    let manifest = migrate_backup::verify(path, &tools, check);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let manifest = manifest?;
    let report = report::BackupVerified {
        backup: path.display().to_string(),
        intact: true,
        files: manifest.files.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.values().sum::<u64>(),
        depth: if full || manifest.format == "plain" {
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
    path: &std::path::Path,
    options: &migrate_backup::RestoreOptions,
    format: Format,
) -> Result<(), CliError> {
    let settings = settings(cfg)?;
    let safety = backup_request(cfg, None, "custom", 1)?;
    let mut line = crate::progress::Transfer::new("restore");
    let restored =
        migrate_backup::restore(&settings, path, options, &safety, &mut |p| line.update(p))?;
    drop(line);
    let (method, in_place_reason) = match &restored.method {
        migrate_backup::Method::Swap => ("swap", None),
        migrate_backup::Method::InPlace(why) => ("in_place", Some(why.to_string())),
    };
    let report = report::Restore {
        backup: path.display().to_string(),
        database: settings.redacted(),
        method: method.to_owned(),
        in_place_reason,
        jobs: (method == "swap").then_some(options.jobs),
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

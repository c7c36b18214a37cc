//! `backup`, `backup verify` and `restore`.

use super::{io_error, settings};
use crate::args::BackupArgs;
use crate::config::Resolved;
use crate::error::CliError;
use crate::output;
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
    let format = args.format.as_deref().unwrap_or("directory");
    let mut request = backup_request(cfg, args.output.as_deref(), format, args.jobs)?;
    if args.compress.is_some() && request.format == migrate_backup::Format::Plain {
        return Err(CliError::Config(
            "--compress applies to the custom and directory formats, not to plain".to_owned(),
        ));
    }
    request.compress = args.compress;
    let taken = take_backup(&settings, &request)?;
    let m = &taken.manifest;
    let rows = [
        ("backup", taken.path.display().to_string()),
        (
            "manifest",
            migrate_backup::manifest_path(&taken.path)
                .display()
                .to_string(),
        ),
        (
            "format",
            format!(
                "{}{}",
                m.format,
                if request.format == migrate_backup::Format::Plain {
                    String::new()
                } else {
                    format!(
                        ", zlib level {}",
                        request
                            .compress
                            .unwrap_or_else(|| migrate_backup::default_compression(request.format))
                    )
                }
            ),
        ),
        (
            "revision",
            if m.revisions.is_empty() {
                "base".to_owned()
            } else {
                m.revisions.join(", ")
            },
        ),
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
            "a full read of the archive as it was written: every table's rows and data digest"
                .to_owned(),
        ),
    ];
    output::key_values(out, &rows).map_err(io_error)
}

pub(super) fn backup_verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &std::path::Path,
    full: bool,
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
    let spinner = crate::progress::spinner(false, &format!("verifying {}", path.display()));
    let manifest = migrate_backup::verify(path, &tools, check);
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let manifest = manifest?;
    let files = manifest.files.len();
    let rows = manifest.tables.values().sum::<u64>();
    let tables = manifest.tables.len();
    if full || manifest.format == "plain" {
        writeln!(
            out,
            "{}: intact ({files} file(s) match their SHA-256; {rows} row(s) in {tables} table(s) read back, every table's data digest matching)",
            path.display()
        )
    } else {
        writeln!(
            out,
            "{}: intact ({files} file(s) match their SHA-256, decoded in full when written; table of contents readable, with the {tables} table(s) of the manifest; --full decodes it again)",
            path.display()
        )
    }
    .map_err(io_error)
}

pub(super) fn restore(
    out: &mut dyn Write,
    cfg: &Resolved,
    path: &std::path::Path,
    options: &migrate_backup::RestoreOptions,
) -> Result<(), CliError> {
    let settings = settings(cfg)?;
    let safety = backup_request(cfg, None, "custom", 1)?;
    let mut line = crate::progress::Transfer::new("restore");
    let restored =
        migrate_backup::restore(&settings, path, options, &safety, &mut |p| line.update(p))?;
    drop(line);
    match &restored.method {
        migrate_backup::Method::Swap => writeln!(
            out,
            "restored with {} parallel session(s) into a scratch database, checked, and swapped in atomically",
            options.jobs
        ),
        migrate_backup::Method::InPlace(why) => writeln!(
            out,
            "restored in place in one transaction ({why})"
        ),
    }
    .map_err(io_error)?;
    if let Some(previous) = &restored.previous {
        writeln!(
            out,
            "previous database kept as {previous} (DROP DATABASE \"{previous}\" once it is no longer needed)"
        )
        .map_err(io_error)?;
    }
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
        "restored {} into {}: {} row(s) in {} table(s), matching the manifest; the database is at {}",
        path.display(),
        settings.redacted(),
        restored.manifest.tables.values().sum::<u64>(),
        restored.manifest.tables.len(),
        if restored.revisions.is_empty() { "base".to_owned() } else { restored.revisions.join(", ") }
    )
    .map_err(io_error)
}

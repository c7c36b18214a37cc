//! `check` and `verify`: the live schema against the one the history says.

use super::{connect, engine, io_error, message_of};
use crate::config::Resolved;
use crate::error::CliError;
use crate::output::heads_text;
use migrate_core::RevisionGraph;
use serde_json::json;
use std::io::Write;

pub(super) fn check(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (connected, database) = connect(cfg)?;
    let report = engine(connected, graph, cfg, None).check()?;
    if json {
        let value = json!({
            "database": database.redacted(),
            "current": report.current,
            "clean": report.is_clean(),
            "pending": report.pending,
            "changed": report.changed,
            "differences": report.differences.iter().map(|d| json!({
                "change": d.change.to_string(),
                "object": d.object.to_string(),
                "name": d.name,
                "detail": d.detail,
                "text": d.to_string(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}").map_err(io_error)?;
    } else {
        writeln!(out, "database  {}", database.redacted()).map_err(io_error)?;
        writeln!(out, "revision  {}", heads_text(&report.current)).map_err(io_error)?;
        for d in &report.differences {
            writeln!(out, "drift     {d}").map_err(io_error)?;
        }
        for id in &report.pending {
            writeln!(out, "pending   {id} {}", message_of(graph, id)).map_err(io_error)?;
        }
        for id in &report.changed {
            writeln!(
                out,
                "changed   {id}: edited after it was applied (checksum differs)"
            )
            .map_err(io_error)?;
        }
        if report.is_clean() {
            writeln!(
                out,
                "clean     the schema is exactly what revision {} defines",
                heads_text(&report.current)
            )
            .map_err(io_error)?;
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Drift(format!(
            "not clean: {} difference(s), {} pending revision(s), {} changed revision(s)",
            report.differences.len(),
            report.pending.len(),
            report.changed.len()
        )))
    }
}

pub(super) fn verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (mut connected, database) = connect(cfg)?;
    let mut items: Vec<(&str, bool, String)> = vec![("connect", true, database.redacted())];
    let security = connected.security()?;
    if let Some(security) = &security {
        if security.weak_for_remote() {
            log::warn!(
                "{} is not this machine, and sslmode={} does not check that the server is the one named: use sslmode=verify-full with sslrootcert",
                database.redacted(),
                security.mode
            );
        }
        items.push(("tls", true, security.to_string()));
    }
    let version = connected.driver().server_version()?;
    items.push(("server", true, version));
    let health = connected.health()?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    items.push((
        "revision",
        status.at_head,
        if status.at_head {
            format!("{} (head)", heads_text(&status.current))
        } else {
            format!(
                "{} with {} pending: run `identity-migrate migrate`",
                heads_text(&status.current),
                status.pending
            )
        },
    ));
    let report = engine.check()?;
    let drift = report.differences.len() + report.changed.len();
    items.push((
        "schema",
        drift == 0,
        if drift == 0 {
            "matches its revision".to_owned()
        } else {
            format!("{drift} difference(s): run `identity-migrate check`")
        },
    ));
    items.push(health);
    let ok = items.iter().all(|(_, ok, _)| *ok);
    if json {
        let value = json!({
            "ok": ok,
            "checks": items.iter().map(|(name, ok, detail)| json!({"check": name, "ok": ok, "detail": detail})).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}").map_err(io_error)?;
    } else {
        for (name, ok, detail) in &items {
            writeln!(
                out,
                "{:<5} {name:<9} {detail}",
                if *ok { "ok" } else { "FAIL" }
            )
            .map_err(io_error)?;
        }
    }
    if ok {
        Ok(())
    } else {
        let failed: Vec<&str> = items
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(n, _, _)| *n)
            .collect();
        Err(CliError::Drift(format!(
            "verify failed: {}",
            failed.join(", ")
        )))
    }
}

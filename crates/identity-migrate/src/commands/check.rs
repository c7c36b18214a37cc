//! `check` and `verify`: the live schema against the one the history says.

use super::session::{connect, engine, message_of};
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::output::heads_text;
use crate::report::{self, Format};
use migrate_core::RevisionGraph;
use std::io::Write;

pub(super) fn check(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    format: Format,
) -> Result<(), CliError> {
    let (connected, database) = connect(cfg)?;
    let found = engine(connected, graph, cfg, None).check()?;
    let report = report::Check {
        database: database.redacted(),
        current: found.current.iter().cloned().collect(),
        clean: found.is_clean(),
        pending: found.pending.clone(),
        changed: found.changed.clone(),
        differences: found
            .differences
            .iter()
            .map(report::Difference::of)
            .collect(),
        pending_messages: found
            .pending
            .iter()
            .map(|id| message_of(graph, id).to_owned())
            .collect(),
    };
    report::emit(out, &report, format).map_err(io_error)?;
    if report.clean {
        Ok(())
    } else {
        Err(CliError::Drift(format!(
            "not clean: {} difference(s), {} pending revision(s), {} changed revision(s)",
            found.differences.len(),
            found.pending.len(),
            found.changed.len()
        )))
    }
}

pub(super) fn verify(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    format: Format,
) -> Result<(), CliError> {
    let (mut connected, database) = connect(cfg)?;
    let mut checks = vec![passed("connect", true, database.redacted())];
    let security = connected.protection()?;
    if let Some(security) = &security {
        if security.weak_for_remote {
            log::warn!(
                "{} is not this machine, and sslmode={} does not check that the server is the one named: use sslmode=verify-full with sslrootcert",
                database.redacted(),
                security.sslmode
            );
        }
        checks.push(passed("tls", true, security.summary.clone()));
    }
    let version = connected.driver().server_version()?;
    checks.push(passed("server", true, version));
    let (health, healthy, found) = connected.health()?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    checks.push(passed(
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
    let drift = engine.check()?;
    let drift = drift.differences.len() + drift.changed.len();
    checks.push(passed(
        "schema",
        drift == 0,
        if drift == 0 {
            "matches its revision".to_owned()
        } else {
            format!("{drift} difference(s): run `identity-migrate check`")
        },
    ));
    checks.push(passed(health, healthy, found));
    let report = report::Verify {
        ok: checks.iter().all(|c| c.ok),
        checks,
    };
    report::emit(out, &report, format).map_err(io_error)?;
    if report.ok {
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check.as_str())
            .collect();
        Err(CliError::Drift(format!(
            "verify failed: {}",
            failed.join(", ")
        )))
    }
}

fn passed(check: &str, ok: bool, detail: String) -> report::VerifyCheck {
    report::VerifyCheck {
        check: check.to_owned(),
        ok,
        detail,
    }
}

//! `status` and `list`: where the database stands and what each revision is.

use super::{connect, engine, io_error, message_of};
use crate::config::Resolved;
use crate::error::CliError;
use crate::output::{self, duration_text};
use migrate_core::driver::HistoryRecord;
use migrate_core::{Direction, RevisionGraph};
use migrate_engine::EngineError;
use serde_json::json;
use std::io::Write;

/// Prints where the database stands; returns the number of pending revisions when it is not
/// at head.
pub(super) fn status(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<Option<usize>, CliError> {
    let (mut connected, database) = connect(cfg)?;
    let security = connected.security()?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    let half_way = engine.half_way()?;
    let current: Vec<_> = status
        .current
        .iter()
        .map(|id| json!({"revision": id, "message": message_of(graph, id), "head": status.heads.contains(id)}))
        .collect();
    if json {
        let value = json!({
            "database": database.redacted(),
            "current": current,
            "heads": status.heads,
            "pending": status.pending,
            "at_head": status.at_head,
            "half_way": half_way.iter().map(|h| json!({
                "revision": h.revision,
                "direction": h.direction.as_str(),
                "phases_done": h.phases_done,
                "rows_done": h.rows_done,
            })).collect::<Vec<_>>(),
            "connection": security.as_ref().map(security_json),
        });
        writeln!(out, "{value}").map_err(io_error)?;
        return Ok((!status.at_head).then_some(status.pending));
    }
    let current_text = if status.current.is_empty() {
        "base (no revision applied)".to_owned()
    } else {
        status
            .current
            .iter()
            .map(|id| {
                let head = if status.heads.contains(id) {
                    " (head)"
                } else {
                    ""
                };
                format!("{id}{head} {}", message_of(graph, id))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let state = if let Some(h) = half_way.first() {
        // A phased run stopped inside this revision: it is neither applied nor untouched.
        let rows = if h.rows_done > 0 {
            format!(", {} row(s) backfilled", h.rows_done)
        } else {
            String::new()
        };
        let resume = match h.direction {
            Direction::Up => "run `identity-migrate migrate` to resume it".to_owned(),
            Direction::Down => {
                "run the same `identity-migrate rollback` again to finish it".to_owned()
            }
        };
        let way = match h.direction {
            Direction::Up => "upgrade",
            Direction::Down => "downgrade",
        };
        format!(
            "{} stopped half-way through its {way} ({} phase(s) committed{rows}): {resume}",
            h.revision, h.phases_done
        )
    } else if status.at_head {
        "up to date".to_owned()
    } else {
        format!(
            "{} revision(s) pending: run `identity-migrate migrate`",
            status.pending
        )
    };
    let mut rows = vec![("database", database.redacted())];
    if let Some(security) = &security {
        rows.push(("tls", security.to_string()));
    }
    rows.extend([
        ("current", current_text),
        ("head", status.heads.join(", ")),
        ("pending", status.pending.to_string()),
        ("state", state),
    ]);
    output::key_values(out, &rows).map_err(io_error)?;
    Ok((!status.at_head).then_some(status.pending))
}

/// The connection's protection as `status --json` and `verify --json` report it.
pub(super) fn security_json(security: &migrate_postgres::Security) -> serde_json::Value {
    json!({
        "encrypted": security.encrypted(),
        "protocol": security.protocol,
        "cipher": security.cipher,
        "sslmode": security.mode.as_str(),
        "certificate_chain_verified": security.verification != migrate_postgres::tls::Verification::None,
        "host_name_verified": security.verification == migrate_postgres::tls::Verification::ChainAndHost,
    })
}

pub(super) fn list(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    json: bool,
) -> Result<(), CliError> {
    let (connected, _) = connect(cfg)?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    let history = engine.history()?;
    let applied = graph.applied(&status.current).map_err(EngineError::from)?;
    let last_applied = |id: &str| -> Option<&HistoryRecord> {
        history
            .iter()
            .rev()
            .find(|h| h.revision == id && h.direction == Direction::Up && h.outcome == "applied")
    };
    if json {
        let items: Vec<_> = graph
            .revisions()
            .iter()
            .map(|r| {
                let record = applied
                    .contains(&r.id)
                    .then(|| last_applied(&r.id))
                    .flatten();
                json!({
                    "revision": r.id,
                    "down_revisions": r.down,
                    "message": r.message,
                    "created": r.created,
                    "applied": applied.contains(&r.id),
                    "current": status.current.contains(&r.id),
                    "head": status.heads.contains(&r.id),
                    "applied_at": record.map(|h| h.finished_at.clone()),
                    "duration_ms": record.map(|h| h.duration_ms),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items)).map_err(io_error)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = graph
        .revisions()
        .iter()
        .map(|r| {
            let record = applied
                .contains(&r.id)
                .then(|| last_applied(&r.id))
                .flatten();
            let mut marks = Vec::new();
            if status.current.contains(&r.id) {
                marks.push("current");
            }
            if status.heads.contains(&r.id) {
                marks.push("head");
            }
            vec![
                r.id.clone(),
                if r.down.is_empty() {
                    "-".to_owned()
                } else {
                    r.down.join(",")
                },
                if applied.contains(&r.id) { "yes" } else { "no" }.to_owned(),
                marks.join(","),
                record.map_or_else(String::new, |h| h.finished_at.clone()),
                record.map_or_else(String::new, |h| duration_text(h.duration_ms)),
                r.message.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "REVISION",
            "DOWN",
            "APPLIED",
            "MARK",
            "APPLIED AT",
            "TOOK",
            "MESSAGE",
        ],
        &rows,
    )
    .map_err(io_error)
}

//! `status` and `list`: where the database stands and what each revision is.

use super::session::{connect, engine, message_of};
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::report::{self, Format};
use migrate_core::driver::HistoryRecord;
use migrate_core::{Direction, RevisionGraph};
use migrate_engine::EngineError;
use std::io::Write;

/// Reports where the database stands; returns the number of pending revisions when it is not
/// at head.
pub(super) fn status(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    format: Format,
) -> Result<Option<usize>, CliError> {
    let (mut connected, database) = connect(cfg)?;
    let security = connected.protection()?;
    let mut engine = engine(connected, graph, cfg, None);
    let status = engine.status()?;
    let half_way = engine.half_way()?;
    let report = report::Status {
        database: database.redacted(),
        current: status
            .current
            .iter()
            .map(|id| report::CurrentRevision {
                revision: id.clone(),
                message: message_of(graph, id).to_owned(),
                head: status.heads.contains(id),
            })
            .collect(),
        heads: status.heads.clone(),
        pending: status.pending,
        at_head: status.at_head,
        half_way: half_way.iter().map(report::HalfWay::of).collect(),
        connection: security,
    };
    report::emit(out, &report, format).map_err(io_error)?;
    Ok((!status.at_head).then_some(status.pending))
}

pub(super) fn list(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    format: Format,
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
    let revisions = graph
        .revisions()
        .iter()
        .map(|r| {
            let record = applied
                .contains(&r.id)
                .then(|| last_applied(&r.id))
                .flatten();
            report::ListedRevision {
                revision: r.id.clone(),
                down_revisions: r.down.clone(),
                message: r.message.clone(),
                created: r.created.clone(),
                applied: applied.contains(&r.id),
                current: status.current.contains(&r.id),
                head: status.heads.contains(&r.id),
                applied_at: record.map(|h| h.finished_at.clone()),
                duration_ms: record.map(|h| h.duration_ms),
            }
        })
        .collect();
    report::emit(out, &report::List { revisions }, format).map_err(io_error)
}

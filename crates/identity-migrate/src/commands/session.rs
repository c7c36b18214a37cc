//! What every command starts from: the configured database and a connection to it, the engine
//! over that connection, and who runs it.

use crate::args::MigrateArgs;
use crate::config::Resolved;
use crate::error::CliError;
use crate::open::{Connected, Database};
use migrate_core::RevisionGraph;
use migrate_engine::{Engine, Options, RunIdentity};

/// The configured database and a connection to it, for a command that only reads (a database
/// file not created yet reads as the empty database it would start as, and is not created).
pub(crate) fn connect(cfg: &Resolved) -> Result<(Connected, Database), CliError> {
    let database = Database::resolve(cfg)?;
    Ok((database.connect_to_read(cfg)?, database))
}

pub(crate) fn engine<'g>(
    connected: Connected,
    graph: &'g RevisionGraph,
    cfg: &Resolved,
    run: Option<&MigrateArgs>,
) -> Engine<'g> {
    let mut options = Options::new(identity());
    options.lock_wait = cfg.lock_wait;
    options.retry_budget = cfg.lock_budget;
    if let Some(run) = run {
        options.single_transaction = run.single_transaction;
        options.accept_changed = run.accept_changed;
    }
    let driver = Box::new(crate::signals::Interruptible::new(connected.into_driver()));
    // A database that ran the series 0.1.0 released and 0.2.0 withdrew is told the way forward
    // (and `rollback` takes it back down that series).
    Engine::new(driver, graph, options).with_withdrawal(identity_schema::withdrawal())
}

pub(crate) fn identity() -> RunIdentity {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    RunIdentity {
        os_user,
        host,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The message of revision `id`, or nothing for an id the graph does not know.
pub(crate) fn message_of<'g>(graph: &'g RevisionGraph, id: &str) -> &'g str {
    graph.get(id).map_or("", |r| r.message.as_str())
}

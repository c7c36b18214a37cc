//! `wait`: block until the database is at a revision or a descendant of it (a service's pods
//! waiting for the migration Job).
//!
//! Polls `alembic_version` with one short query per second on a connection of its own, and
//! never takes the migration lock: a waiter must not delay the migration it waits for. A
//! database *ahead* of the revision (a rolling deploy's older pods restarting after the new
//! release migrated) is ready, and so is one at a revision this binary does not know (migrated
//! by a newer release), which is said on stderr.
//!
//! Connection failures are retried for the whole `--timeout`: in a cluster the database (or a
//! proxy sidecar in front of it) often comes up after the pods that need it. A server never
//! reached by then is exit 1 with the last connection error; a server reached whose database
//! never got to the revision is exit 5. The polls run on a thread of their own and the command
//! keeps the deadline, so a server that accepts connections and never answers cannot hold a pod
//! past its `--timeout`.

use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::{Connected, Database};
use crate::output::heads_text;
use migrate_core::{Heads, ResolveError, RevisionGraph};
use serde_json::json;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Time between two polls.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Where the database stands against the awaited revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not there yet.
    Behind,
    /// Exactly there.
    At,
    /// Past it (the revision is applied, and more).
    Ahead,
    /// At a revision this binary does not know: a newer release migrated it.
    Unknown,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Behind => "behind",
            State::At => "at",
            State::Ahead => "ahead",
            State::Unknown => "unknown",
        }
    }

    fn ready(self) -> bool {
        self != State::Behind
    }
}

/// The awaited revisions: `head` is every head of the graph; otherwise one id or unique prefix.
fn awaited(graph: &RevisionGraph, given: &str) -> Result<Heads, CliError> {
    if given == "head" || given == "heads" {
        return Ok(graph.heads().into_iter().map(str::to_owned).collect());
    }
    graph
        .resolve_id(given)
        .map(|id| Heads::from([id]))
        .map_err(|e| CliError::Engine(e.into()))
}

/// Where `current` stands against `awaited`.
fn state_of(graph: &RevisionGraph, awaited: &Heads, current: &Heads) -> State {
    match identity_schema::withdrawal().applied(graph, current) {
        Ok(applied) if awaited.iter().all(|id| applied.contains(id)) => {
            if current == awaited {
                State::At
            } else {
                State::Ahead
            }
        }
        Ok(_) => State::Behind,
        Err(ResolveError::UnknownCurrent(_)) => State::Unknown,
        // A database on the withdrawn series is not where the service expects it: it needs
        // `migrate` (which says how), so it is not ready.
        Err(_) => State::Behind,
    }
}

/// One look at the database: its current revisions, reconnecting if needed.
fn poll(
    cfg: &Resolved,
    database: &Database,
    connection: &mut Option<Connected>,
) -> Result<Heads, CliError> {
    if database.is_missing_file() {
        // The migration has not created the SQLite file yet: base.
        return Ok(Heads::new());
    }
    if connection.is_none() {
        *connection = Some(database.connect(cfg, false)?);
    }
    let Some(connected) = connection.as_mut() else {
        return Ok(Heads::new());
    };
    match connected.driver().read_heads() {
        Ok(heads) => Ok(heads),
        Err(e) => {
            // Dropped: the next poll connects again.
            *connection = None;
            Err(e.into())
        }
    }
}

/// What the polling thread found at one poll.
enum Polled {
    /// The database's current revisions.
    At(Heads),
    /// No answer: why (a connection refused, a database not created yet...).
    Failed(String),
}

/// Polls on a thread of its own until `ready` says so or the receiver is gone. The caller
/// keeps the deadline: a server that accepts a connection and never answers blocks this
/// thread, not the command (the process ends with it).
fn start_polling(
    cfg: Resolved,
    database: Database,
    ready: impl Fn(&Heads) -> bool + Send + 'static,
) -> mpsc::Receiver<Polled> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut connection: Option<Connected> = None;
        loop {
            let (polled, done) = match poll(&cfg, &database, &mut connection) {
                Ok(current) => {
                    let done = ready(&current);
                    (Polled::At(current), done)
                }
                Err(e) => (Polled::Failed(e.to_string()), false),
            };
            if tx.send(polled).is_err() || done {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    });
    rx
}

/// Runs `wait`.
pub fn wait(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    target: &str,
    timeout: Duration,
    json: bool,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let awaited = awaited(graph, target)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let polled = {
        let (graph, awaited) = (graph.clone(), awaited.clone());
        start_polling(cfg.clone(), database.clone(), move |current| {
            state_of(&graph, &awaited, current).ready()
        })
    };
    let mut last_error: Option<String> = None;
    let mut last_state: Option<(State, Heads)> = None;
    let spinner = crate::progress::spinner(json, "waiting for the schema");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match polled.recv_timeout(left) {
            Ok(Polled::At(current)) => {
                let state = state_of(graph, &awaited, &current);
                if last_state.as_ref().map(|(s, c)| (*s, c)) != Some((state, &current)) {
                    log::info!(
                        "{} is at {}: {} {}",
                        database.redacted(),
                        heads_text(&current),
                        state.name(),
                        heads_text(&awaited)
                    );
                }
                if let Some(bar) = &spinner {
                    bar.set_message(format!(
                        "waiting for {}: the database is at {}",
                        heads_text(&awaited),
                        heads_text(&current)
                    ));
                }
                last_state = Some((state, current));
                if state.ready() {
                    break;
                }
            }
            Ok(Polled::Failed(e)) => {
                log::debug!("no answer yet: {e}");
                if let Some(bar) = &spinner {
                    bar.set_message("waiting for the database to accept connections");
                }
                last_error = Some(e);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let waited = started.elapsed().as_secs_f64();
    let Some((state, current)) = last_state else {
        let error = last_error
            .unwrap_or_else(|| "no answer (a connection attempt was still pending)".to_owned());
        if json {
            let value = json!({
                "ready": false,
                "state": "unreachable",
                "database": database.redacted(),
                "for": awaited,
                "current": null,
                "waited_s": round(waited),
                "error": error,
            });
            writeln!(out, "{value}").map_err(io_error)?;
        }
        return Err(CliError::Unreachable(format!(
            "{} did not accept a connection within {} s: {error}",
            database.redacted(),
            timeout.as_secs()
        )));
    };
    if state == State::Unknown {
        log::warn!(
            "{} is at {}, a revision this identity-migrate does not know: taken as migrated by a newer release (ready)",
            database.redacted(),
            heads_text(&current)
        );
    }
    if json {
        let value = json!({
            "ready": state.ready(),
            "state": state.name(),
            "database": database.redacted(),
            "for": awaited,
            "current": current,
            "waited_s": round(waited),
        });
        writeln!(out, "{value}").map_err(io_error)?;
    } else if state.ready() {
        writeln!(
            out,
            "ready: {} is at {} ({} {}) after {waited:.1} s",
            database.redacted(),
            heads_text(&current),
            state.name(),
            heads_text(&awaited)
        )
        .map_err(io_error)?;
    }
    if state.ready() {
        Ok(())
    } else {
        Err(CliError::WaitTimedOut(format!(
            "{} still at {} after {} s, waiting for {}: has the migration run? (`identity-migrate status`)",
            database.redacted(),
            heads_text(&current),
            timeout.as_secs(),
            heads_text(&awaited)
        )))
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

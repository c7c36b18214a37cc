//! Phased execution on PostgreSQL: the progress table, one batch of a batched update in a
//! transaction of its own, and the sessions that block a statement waiting for a table lock.
//!
//! The engine decides what runs when and how often it is retried; this module only says what
//! the database did, and who stood in the way.

use crate::{classify, open, PostgresDriver, PostgresStateSql};
use migrate_core::driver::{
    BatchOutcome, DriverError, ExecError, PhaseProgress, PhasedDriver, ProgressSql,
};
use migrate_core::render::quote_literal;
use migrate_core::Direction;
use postgres::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The progress table of revisions under way (see `migrate_core::phase`).
pub const PROGRESS_TABLE: &str = "identity_migrate_progress";

/// How often the watcher session looks for the sessions blocking the work session.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

impl ProgressSql for PostgresStateSql {
    fn progress_bootstrap(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\n    revision varchar(32) NOT NULL,\n    \
             direction varchar(4) NOT NULL CHECK (direction IN ('up', 'down')),\n    op integer NOT NULL,\n    \
             phase integer NOT NULL,\n    state varchar(8) NOT NULL CHECK (state IN ('running', 'done')),\n    \
             last_key text,\n    rows_done bigint NOT NULL DEFAULT 0,\n    \
             updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             PRIMARY KEY (revision, direction, op, phase)\n)"
        )
    }

    fn progress_statement(
        &self,
        revision: &str,
        direction: Direction,
        progress: &PhaseProgress,
    ) -> String {
        format!(
            "INSERT INTO {PROGRESS_TABLE} (revision, direction, op, phase, state, last_key, rows_done) \
             VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (revision, direction, op, phase) DO UPDATE \
             SET state = EXCLUDED.state, last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, \
             updated_at = clock_timestamp()",
            quote_literal(revision),
            quote_literal(direction.as_str()),
            progress.op,
            progress.phase,
            quote_literal(if progress.done { "done" } else { "running" }),
            progress
                .last_key
                .as_deref()
                .map_or_else(|| "NULL".to_owned(), quote_literal),
            progress.rows_done
        )
    }

    fn progress_clear(&self, revision: &str, direction: Direction) -> String {
        format!(
            "DELETE FROM {PROGRESS_TABLE} WHERE revision = {} AND direction = {}",
            quote_literal(revision),
            quote_literal(direction.as_str())
        )
    }
}

impl PhasedDriver for PostgresDriver {
    fn progress_sql(&self) -> &'static dyn ProgressSql {
        &PostgresStateSql
    }

    fn read_progress(
        &mut self,
        revision: &str,
        direction: Direction,
    ) -> Result<Vec<PhaseProgress>, DriverError> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.qualified(PROGRESS_TABLE)],
            )
            .map_err(classify)?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT op, phase, state = 'done', last_key, rows_done FROM {PROGRESS_TABLE} \
                     WHERE revision = $1 AND direction = $2 ORDER BY op, phase"
                ),
                &[&revision, &direction.as_str()],
            )
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|r| PhaseProgress {
                op: usize::try_from(r.get::<_, i32>(0)).unwrap_or_default(),
                phase: usize::try_from(r.get::<_, i32>(1)).unwrap_or_default(),
                done: r.get(2),
                last_key: r.get(3),
                rows_done: r.get(4),
            })
            .collect())
    }

    fn execute_batch(
        &mut self,
        batch: &str,
        after: Option<&str>,
        limit: i64,
        time_limit: Duration,
        record: &dyn Fn(&BatchOutcome) -> String,
    ) -> Result<BatchOutcome, ExecError> {
        // The session's own statement_timeout, when shorter, still wins.
        let ms = match self.session.statement_timeout {
            Some(own) if own < time_limit => own.as_millis(),
            _ => time_limit.as_millis(),
        };
        self.watched(|client| {
            let run = |client: &mut Client| -> Result<BatchOutcome, (usize, postgres::Error)> {
                let mut tx = client.transaction().map_err(|e| (0, e))?;
                tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
                    .map_err(|e| (0, e))?;
                let row = tx.query_one(batch, &[&after, &limit]).map_err(|e| (0, e))?;
                let outcome = BatchOutcome {
                    last_key: row.get(0),
                    rows: row.get(1),
                };
                tx.batch_execute(&record(&outcome)).map_err(|e| (1, e))?;
                tx.commit().map_err(|e| (1, e))?;
                Ok(outcome)
            };
            run(client).map_err(|(i, e)| ExecError {
                statement: Some(i),
                error: classify(e),
            })
        })
    }

    fn estimate_rows(&mut self, table: &str) -> Result<Option<i64>, DriverError> {
        let row = self
            .client
            .query_one(
                "SELECT c.reltuples::float8 FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[&table],
            )
            .map_err(classify);
        Ok(match row {
            Ok(r) => {
                let n: f64 = r.get(0);
                // -1: never vacuumed or analyzed (PostgreSQL 14 and later).
                // A row estimate: far below i64::MAX, and a fraction is meaningless anyway.
                #[allow(clippy::cast_possible_truncation)]
                let rows = n as i64;
                (n >= 0.0).then_some(rows)
            }
            Err(_) => None,
        })
    }
}

/// A session that holds a lock the work session waits for.
#[derive(Debug, Clone)]
struct Blocker {
    pid: i32,
    application: String,
    user: String,
    state: String,
    transaction_age: Option<f64>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} (", self.pid)?;
        if !self.application.is_empty() {
            write!(f, "application {:?}, ", self.application)?;
        }
        write!(f, "user {}, {}", self.user, self.state)?;
        if let Some(age) = self.transaction_age {
            write!(f, ", transaction open {age:.1} s")?;
        }
        f.write_str(")")
    }
}

impl PostgresDriver {
    /// Runs `work` on the work session while the watcher session (when open) looks, every
    /// [`WATCH_INTERVAL`], for the sessions blocking it (`pg_blocking_pids`). When `work` gives
    /// up waiting for a table lock, its error names them: the operator learns who to ask, or
    /// what to end, without a second query that would come too late to see them.
    ///
    /// Only the pid, application, user, state and transaction age are reported: a blocker's
    /// query text may hold a secret.
    pub(crate) fn watched<T>(
        &mut self,
        work: impl FnOnce(&mut Client) -> Result<T, ExecError>,
    ) -> Result<T, ExecError> {
        let pid = match self.backend_pid {
            Some(pid) => pid,
            None => {
                let pid: i32 = match self.client.query_one("SELECT pg_backend_pid()", &[]) {
                    Ok(row) => row.get(0),
                    Err(e) => {
                        return Err(ExecError {
                            statement: None,
                            error: classify(e),
                        })
                    }
                };
                self.backend_pid = Some(pid);
                pid
            }
        };
        let Some(watcher) = self.watcher.as_mut() else {
            let result = work(&mut self.client);
            // The first lock timeout of the lock holder opens the watcher, so that its
            // retries name their blockers; without a blocker nobody pays for a second session.
            if self.locked
                && matches!(&result, Err(e) if matches!(e.error, DriverError::LockTimeout(_)))
            {
                match open(&self.settings, &self.session) {
                    Ok(watcher) => self.watcher = Some(watcher),
                    Err(e) => log::debug!("no session to name the blockers: {e}"),
                }
            }
            return result;
        };
        let seen: Mutex<Vec<Blocker>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(WATCH_INTERVAL);
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(found) = blockers_of(watcher, pid) {
                        if !found.is_empty() {
                            *seen.lock().unwrap_or_else(|p| p.into_inner()) = found;
                        }
                    }
                }
            });
            let result = work(&mut self.client);
            stop.store(true, Ordering::Release);
            handle.thread().unpark();
            let _ = handle.join();
            result
        });
        result.map_err(|mut e| {
            if let DriverError::LockTimeout(message) = &mut e.error {
                let blockers = seen.into_inner().unwrap_or_else(|p| p.into_inner());
                if !blockers.is_empty() {
                    let named: Vec<String> =
                        blockers.iter().take(3).map(|b| b.to_string()).collect();
                    message.push_str("; blocked by ");
                    message.push_str(&named.join(", "));
                    if blockers.len() > 3 {
                        message.push_str(&format!(" and {} more", blockers.len() - 3));
                    }
                }
            }
            e
        })
    }
}

fn blockers_of(client: &mut Client, pid: i32) -> Result<Vec<Blocker>, postgres::Error> {
    let rows = client.query(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
         coalesce(a.state, 'unknown'), extract(epoch FROM clock_timestamp() - a.xact_start)::float8 \
         FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.xact_start",
        &[&pid],
    )?;
    Ok(rows
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            application: r.get(1),
            user: r.get(2),
            state: r.get(3),
            transaction_age: r.get(4),
        })
        .collect())
}

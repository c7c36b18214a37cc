//! `migrate-bench --online`: `migrate` 68d314520251 → head under a steady login workload, in
//! the naive mode (one transaction per revision, no lock timeout, as Alembic runs it) and in
//! the online mode (the engine's default on PostgreSQL: short lock timeout, retries within the
//! lock budget, phases, batched backfills), side by side in one run.
//!
//! One database is migrated to `68d314520251` and seeded with N users (`identity_seed`); a
//! second is copied from it (`CREATE DATABASE .. TEMPLATE`), so both sides start from the same
//! bytes. On each side in turn, a workload of logins runs at a fixed rate: a few workers, each
//! with its own connection, each login one transaction that looks a user up by email, updates
//! its `last_login_at` and inserts an activity row. Its latency is measured from the login's
//! scheduled start (so a login that waited behind a blocked one counts its wait: no coordinated
//! omission), failed logins are counted, and both are reported for a window before the
//! migration and for the migration itself, with the migration's total time.
//!
//! The workload names only columns that keep their names through the series (`users.email`,
//! `users.last_login_at`, `user_activity_logs.id, user_id, action, session_id`): the series
//! renames other columns, which no running release of the service uses. At `68d314520251`,
//! `user_activity_logs.details` and `timestamp` have no default, so the benchmark gives them the
//! defaults `3ffba08b0d3f` gives them, before the copy.
//!
//! `--quick` seeds 2,000 users and runs a few seconds: a check that the harness works.

use super::{environment, fmt_ms, loadavg, progress, Res};
use identity_schema::{graph, WITHDRAWN_AFTER};
use migrate_engine::{Engine, Intent, Options, RunIdentity};
use migrate_postgres::{PostgresDriver, SessionSettings};
use migrate_testkit::{ensure_server, TestDb};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much the online benchmark does.
pub(crate) struct OnlinePlan {
    pub(crate) users: u64,
    /// Logins per second, all workers together.
    pub(crate) rate: u32,
    /// Workers (connections).
    pub(crate) workers: u32,
    /// The window measured before each migration.
    pub(crate) before: Duration,
    /// The online side's lock timeout.
    pub(crate) lock_timeout: Duration,
}

impl OnlinePlan {
    pub(crate) fn new(quick: bool, users: Option<u64>) -> OnlinePlan {
        OnlinePlan {
            users: users.unwrap_or(if quick { 2_000 } else { 1_000_000 }),
            rate: if quick { 50 } else { 100 },
            workers: 4,
            before: Duration::from_secs(if quick { 2 } else { 20 }),
            lock_timeout: Duration::from_millis(500),
        }
    }
}

/// One login's outcome: when it ended (since the workload began), how long it took from its
/// scheduled start, and whether it failed.
#[derive(Clone, Copy)]
struct Login {
    ended: Duration,
    latency: Duration,
    failed: bool,
}

/// Latency percentiles and failures of the logins that ended within a window.
struct Window {
    logins: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Window {
    fn of(logins: &[Login], from: Duration, to: Duration) -> Window {
        let inside: Vec<&Login> = logins
            .iter()
            .filter(|l| l.ended >= from && l.ended < to)
            .collect();
        let mut latencies: Vec<Duration> = inside.iter().map(|l| l.latency).collect();
        latencies.sort();
        let at = |q: f64| -> Duration {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            // q is in 0..=1: an index of the slice.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[i]
        };
        Window {
            logins: inside.len(),
            failed: inside.iter().filter(|l| l.failed).count(),
            p50: at(0.5),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

/// One side's results.
struct Side {
    label: &'static str,
    before: Window,
    during: Window,
    migration: Duration,
    errors: Vec<String>,
    /// The slowest logins of the migration window, with what the migration ran meanwhile.
    slowest: Vec<(Login, Vec<Seen>)>,
}

/// A statement of the migration's sessions, as the sampler saw it: from when it was first
/// seen running to when it was last seen (since the workload began; the sampler polls every
/// [`SAMPLE_EVERY`]), and whether it was seen waiting for a lock.
#[derive(Clone)]
struct Seen {
    first: Duration,
    last: Duration,
    waited: bool,
    query: String,
}

/// The workload sessions' `application_name`, by which the sampler tells them apart.
const LOGIN_APPLICATION: &str = "migrate-bench-login";

/// How often the sampler reads `pg_stat_activity`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// How many of the slowest logins the report explains.
const SLOWEST: usize = 5;

/// Polls `pg_stat_activity` for the migration's sessions (application `identity-migrate`) of
/// `db` until `stop`, and returns each statement seen (a diagnostic: which statement a slow
/// login waited behind; the server keeps no such log unless configured to).
fn sample_statements(
    db: &TestDb,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Seen>> {
    let mut client = db.client();
    let name = db.name().to_owned();
    std::thread::spawn(move || {
        let mut seen: Vec<Seen> = Vec::new();
        let mut open: std::collections::HashMap<(i32, String), usize> =
            std::collections::HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            let rows = client
                .query(
                    "SELECT pid, state || query_start::text || coalesce(wait_event, ''), wait_event_type = 'Lock', \
                     CASE WHEN backend_type = 'checkpointer' THEN 'checkpointer: ' || wait_event \
                     WHEN application_name = $2 THEN 'a login, waiting on ' || wait_event_type || ' ' || wait_event || ': ' \
                     || left(query, 60) \
                     ELSE CASE WHEN state = 'active' THEN '' ELSE '(idle in transaction after) ' END \
                     || regexp_replace(left(query, 160), '\\s+', ' ', 'g') END \
                     FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND ( \
                     (datname = $1 AND application_name = 'identity-migrate' \
                     AND state IN ('active', 'idle in transaction')) \
                     OR (datname = $1 AND application_name = $2 AND state = 'active' AND wait_event IS NOT NULL \
                     AND clock_timestamp() - query_start > interval '50 milliseconds') \
                     OR (backend_type = 'checkpointer' AND wait_event <> 'CheckpointerMain'))",
                    &[&name, &LOGIN_APPLICATION],
                )
                .unwrap_or_default();
            let now = epoch.elapsed();
            // A key not seen in this poll is over: seen again later, it is a new span (the
            // checkpointer has no query_start to tell its rounds apart).
            let polled: std::collections::HashSet<(i32, String)> = rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
                .collect();
            open.retain(|key, _| polled.contains(key));
            for r in rows {
                let key: (i32, String) =
                    (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default());
                let waited: bool = r.get::<_, Option<bool>>(2).unwrap_or(false);
                match open.get(&key) {
                    Some(&i) => {
                        seen[i].last = now;
                        seen[i].waited |= waited;
                    }
                    None => {
                        open.insert(key, seen.len());
                        seen.push(Seen {
                            first: now,
                            last: now,
                            waited,
                            query: r.get(3),
                        });
                    }
                }
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
        seen
    })
}

pub(crate) fn run(plan: &OnlinePlan) -> Res<String> {
    let mut out = String::new();
    environment(&mut out, None)?;
    let load_start = loadavg();
    let graph = graph();

    progress(&format!(
        "seed {} users at {WITHDRAWN_AFTER} (the naive side)",
        plan.users
    ));
    let naive_db = TestDb::new();
    migrate(&naive_db, &graph, WITHDRAWN_AFTER, None)?;
    let started = Instant::now();
    let mut client = naive_db.client();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(plan.users), 42)
        .map_err(|e| format!("seed: {e}"))?;
    client
        .batch_execute(
            "ALTER TABLE user_activity_logs ALTER COLUMN details SET DEFAULT '{}', \
             ALTER COLUMN \"timestamp\" SET DEFAULT (now() AT TIME ZONE 'utc')",
        )
        .and_then(|()| client.batch_execute("VACUUM (ANALYZE)"))
        .map_err(|e| format!("prepare: {e}"))?;
    let seeded = started.elapsed();
    let emails: Vec<String> = client
        .query(
            "SELECT email::text FROM users ORDER BY md5(id::text) LIMIT 10000",
            &[],
        )
        .map_err(|e| format!("sample emails: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows: i64 = client
        .query_one(
            "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables",
            &[],
        )
        .map_err(|e| format!("count rows: {e}"))?
        .get(0);
    drop(client);
    progress("copy it (the online side)");
    let started = Instant::now();
    let online_db = TestDb::new();
    let mut admin = postgres::Client::connect(&ensure_server().url("postgres"), postgres::NoTls)
        .map_err(|e| format!("admin connection: {e}"))?;
    // Two statements: several in one message would be one transaction, which neither allows.
    admin
        .batch_execute(&format!("DROP DATABASE \"{}\"", online_db.name()))
        .and_then(|()| {
            admin.batch_execute(&format!(
                "CREATE DATABASE \"{}\" TEMPLATE \"{}\"",
                online_db.name(),
                naive_db.name()
            ))
        })
        .map_err(|e| format!("copy the database: {e:?}"))?;
    let copied = started.elapsed();
    let size: String = admin
        .query_one(
            "SELECT pg_size_pretty(pg_database_size($1))",
            &[&naive_db.name()],
        )
        .map_err(|e| format!("size: {e}"))?
        .get(0);

    let mut sides = Vec::new();
    for (label, db, online) in [("naive", &naive_db, false), ("online", &online_db, true)] {
        progress(&format!("{label}: workload, then migrate to head under it"));
        sides.push(side(plan, label, db, &graph, online, &emails)?);
        // Check the end state: at head, no drift.
        let mut engine = engine(db, &graph, None)?;
        let report = engine.check().map_err(|e| format!("check: {e}"))?;
        if !report.is_clean() {
            return Err(format!(
                "{label}: check is not clean after the migration: {report:?}"
            ));
        }
    }

    let _ = writeln!(
        out,
        "\n**Setup.** {} users ({rows} rows in the ten tables, {size}) seeded at `{WITHDRAWN_AFTER}` in {:.1} s, \
         copied for the other side in {:.1} s. Workload: {} logins/s over {} connections (look a user \
         up by email, update `last_login_at`, insert an activity row; one transaction each), latency \
         from each login's scheduled start. Online side: lock timeout {} ms, lock budget 60 s. \
         Load average at start {load_start}, at end {}.\n",
        plan.users,
        seeded.as_secs_f64(),
        copied.as_secs_f64(),
        plan.rate,
        plan.workers,
        plan.lock_timeout.as_millis(),
        loadavg()
    );
    let _ = writeln!(
        out,
        "| mode | window | logins | failed | p50 | p99 | max | migration |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for s in &sides {
        for (window, w, migration) in [
            ("before", &s.before, String::new()),
            (
                "during",
                &s.during,
                format!("{:.1} s", s.migration.as_secs_f64()),
            ),
        ] {
            let _ = writeln!(
                out,
                "| {} | {window} | {} | {} | {} | {} | {} | {migration} |",
                s.label,
                w.logins,
                w.failed,
                fmt_ms(w.p50),
                fmt_ms(w.p99),
                fmt_ms(w.max)
            );
        }
    }
    for s in sides.iter().filter(|s| s.label == "online") {
        let _ = writeln!(
            out,
            "\n**The {} side's slowest logins**, and the migration's statements running meanwhile \
             (times in seconds since the migration started; a statement's span is when a sampler \
             polling `pg_stat_activity` every {} ms first and last saw it; \"waited\" = seen waiting \
             for a lock; also the logins seen waiting for more than 50 ms, on what, and the \
             checkpointer when it was busy):\n",
            s.label,
            SAMPLE_EVERY.as_millis()
        );
        for (login, meanwhile) in &s.slowest {
            let start = login.ended.saturating_sub(login.latency);
            let _ = writeln!(
                out,
                "- {} from {:.3} to {:.3}{}",
                fmt_ms(login.latency),
                start.as_secs_f64(),
                login.ended.as_secs_f64(),
                if login.failed { " (failed)" } else { "" }
            );
            for seen in meanwhile.iter().take(12) {
                let _ = writeln!(
                    out,
                    "  - {:.3}-{:.3}{}: `{}`",
                    seen.first.as_secs_f64(),
                    seen.last.as_secs_f64(),
                    if seen.waited { " waited" } else { "" },
                    seen.query.replace('`', "'")
                );
            }
            if meanwhile.len() > 12 {
                let _ = writeln!(out, "  - and {} more", meanwhile.len() - 12);
            }
        }
    }
    for s in &sides {
        if !s.errors.is_empty() {
            let _ = writeln!(
                out,
                "\n{} side, first errors: {}",
                s.label,
                s.errors.join("; ")
            );
        }
    }
    Ok(out)
}

fn engine<'g>(
    db: &TestDb,
    graph: &'g migrate_core::RevisionGraph,
    mode: Option<(bool, Duration)>,
) -> Res<Engine<'g>> {
    let settings = migrate_postgres::url::parse_with_process_env(&db.url())
        .map_err(|e| format!("URL: {e}"))?;
    let mut session = SessionSettings::default();
    let mut options = Options::new(RunIdentity {
        os_user: "bench".into(),
        host: "bench".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    });
    if let Some((online, lock_timeout)) = mode {
        options.phased = online;
        // The naive mode waits for its locks as long as it takes, as Alembic does.
        session.lock_timeout = if online { lock_timeout } else { Duration::ZERO };
    }
    let driver =
        PostgresDriver::connect(&settings, session).map_err(|e| format!("connect: {e}"))?;
    Ok(Engine::new(Box::new(driver), graph, options))
}

fn migrate(
    db: &TestDb,
    graph: &migrate_core::RevisionGraph,
    target: &str,
    mode: Option<(bool, Duration)>,
) -> Res<()> {
    engine(db, graph, mode)?
        .run(&Intent::Upgrade(target.to_owned()), &mut |_| {})
        .map(|_| ())
        .map_err(|e| format!("migrate to {target}: {e}"))
}

/// Runs the workload on `db`, migrates it to head after the `before` window, and stops the
/// workload one second after the migration.
fn side(
    plan: &OnlinePlan,
    label: &'static str,
    db: &TestDb,
    graph: &migrate_core::RevisionGraph,
    online: bool,
    emails: &[String],
) -> Res<Side> {
    let stop = Arc::new(AtomicBool::new(false));
    let logins: Arc<Mutex<Vec<Login>>> = Arc::new(Mutex::new(Vec::new()));
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let epoch = Instant::now();
    let interval = Duration::from_secs_f64(f64::from(plan.workers) / f64::from(plan.rate));
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_statements(db, epoch, sampling.clone());
    let mut handles = Vec::new();
    for w in 0..plan.workers {
        let mut client = db.client();
        client
            .batch_execute(&format!("SET application_name = '{LOGIN_APPLICATION}'"))
            .map_err(|e| format!("application_name: {e}"))?;
        let stop = stop.clone();
        let logins = logins.clone();
        let errors = errors.clone();
        let emails: Vec<String> = emails
            .iter()
            .skip(w as usize)
            .step_by(plan.workers as usize)
            .cloned()
            .collect();
        let offset = interval * w / plan.workers;
        handles.push(std::thread::spawn(move || {
            let mut i: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                let scheduled = offset + interval * i;
                let now = epoch.elapsed();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                let email = &emails[i as usize % emails.len().max(1)];
                let result = login(&mut client, email);
                let ended = epoch.elapsed();
                if let Err(e) = &result {
                    let _ = client.batch_execute("ROLLBACK");
                    let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                    if errors.len() < 3 {
                        errors.push(e.clone());
                    }
                }
                logins
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Login {
                        ended,
                        latency: ended.saturating_sub(scheduled),
                        failed: result.is_err(),
                    });
                i += 1;
            }
        }));
    }
    std::thread::sleep(plan.before);
    let started = epoch.elapsed();
    let result = migrate(db, graph, "head", Some((online, plan.lock_timeout)));
    let finished = epoch.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    sampling.store(true, Ordering::Relaxed);
    let statements = sampler.join().unwrap_or_default();
    result?;
    let logins = logins.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut during: Vec<Login> = logins
        .iter()
        .filter(|l| l.ended >= started && l.ended < finished)
        .copied()
        .collect();
    during.sort_by_key(|l| std::cmp::Reverse(l.latency));
    let slowest = during
        .into_iter()
        .take(SLOWEST)
        .map(|l| {
            let (from, to) = (l.ended.saturating_sub(l.latency), l.ended);
            let meanwhile: Vec<Seen> = statements
                .iter()
                .filter(|s| s.last + SAMPLE_EVERY >= from && s.first <= to)
                .map(|s| Seen {
                    first: s.first.saturating_sub(started),
                    last: s.last.saturating_sub(started),
                    ..s.clone()
                })
                .collect();
            let l = Login {
                ended: l.ended.saturating_sub(started),
                ..l
            };
            (l, meanwhile)
        })
        .collect();
    Ok(Side {
        label,
        before: Window::of(&logins, Duration::from_millis(500), started),
        during: Window::of(&logins, started, finished),
        migration: finished - started,
        errors,
        slowest,
    })
}

/// One login: look the user up by email, stamp `last_login_at`, record the activity.
fn login(client: &mut postgres::Client, email: &str) -> Result<(), String> {
    let db = |e: postgres::Error| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    };
    let mut tx = client.transaction().map_err(db)?;
    let row = tx
        .query_opt("SELECT id::text FROM users WHERE email = $1", &[&email])
        .map_err(db)?;
    let Some(row) = row else {
        return Err(format!("no user {email}"));
    };
    let id: String = row.get(0);
    tx.execute(
        "UPDATE users SET last_login_at = now() AT TIME ZONE 'utc' WHERE id = $1::text::uuid",
        &[&id],
    )
    .map_err(db)?;
    tx.execute(
        "INSERT INTO user_activity_logs (id, user_id, action, session_id) \
         VALUES (gen_random_uuid(), $1::text::uuid, 'login', gen_random_uuid())",
        &[&id],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

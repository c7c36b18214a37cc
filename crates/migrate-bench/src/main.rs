//! `migrate-bench`: measures identity-migrate side by side with `psql`, in one run.
//!
//! 1. `identity-migrate status` on a database at head (the release binary, as a child process),
//!    with `psql -c 'select 1'` and `identity-migrate --version` as floors.
//! 2. `identity-migrate migrate` from base to head against `psql -1 -f` of the SQL that
//!    `identity-migrate generate-sql` writes, each on a fresh database.
//! 3. 1,000 synthetic no-op revisions applied through [`Engine::run`] (one transaction each, and
//!    in one transaction for comparison), then `status` and a no-op `migrate` on that database,
//!    plus the wire-level floor of the same statements sent without the engine.
//!
//! With `--backup`, it measures `backup`, `backup verify` and `restore` of a seeded database
//! instead, side by side with plain `pg_dump` and `pg_restore` (see [`backup`]). With
//! `--service`, the identity service's login lookup and user insert at `68d314520251` and at
//! head, side by side (see [`service`]; in-process, no binary needed). With `--tls`, `status`
//! over `verify-full` beside `status` without TLS and `psql` over the same TLS (see [`tls`]).
//!
//! Usage: `migrate-bench PATH/TO/identity-migrate [--quick]`, or
//! `migrate-bench PATH/TO/identity-migrate --backup [--quick] [--users N] [--runs N] [--no-diagnose]`, or
//! `migrate-bench --service [--quick] [--users N]`.
//! Results go to stdout as markdown; progress to stderr. This is a benchmark, not a test: it
//! asserts correctness (exit codes, resulting state, restored row counts), never timings.

use migrate_core::checksum::checksums;
use migrate_core::driver::{Driver, StateSql};
use migrate_core::{Heads, Op, RawSql, Revision, RevisionGraph};
use migrate_engine::{Engine, Intent, Options, RunIdentity};
use migrate_postgres::url::{self, ConnectionSettings};
use migrate_postgres::{PostgresDriver, PostgresStateSql, SessionSettings};
use migrate_testkit::{describe_schema, ensure_server, TestDb};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod backup;
mod online;
mod service;
mod tls;

type Res<T> = Result<T, String>;

const USAGE: &str = "usage: migrate-bench PATH/TO/identity-migrate [--quick]\n       migrate-bench PATH/TO/identity-migrate --tls [--quick]\n       migrate-bench PATH/TO/identity-migrate --backup [--quick] [--users N] [--runs N] [--no-diagnose]\n       migrate-bench --service [--quick] [--users N]\n       migrate-bench --online [--quick] [--users N]";

/// How many synthetic revisions section 3 applies.
const SYNTHETIC: usize = 1000;
/// [`SYNTHETIC`] as the databases count it.
const SYNTHETIC_ROWS: i64 = 1000;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("migrate-bench: error: {e}");
        std::process::exit(1);
    }
}

/// Run counts; `--quick` divides them for a smoke run of the harness itself.
struct Plan {
    status: usize,
    migrate: usize,
    apply: usize,
    status_1000: usize,
    noop_1000: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                status: 5,
                migrate: 3,
                apply: 1,
                status_1000: 5,
                noop_1000: 3,
            }
        } else {
            Plan {
                status: 50,
                migrate: 15,
                apply: 5,
                status_1000: 50,
                noop_1000: 20,
            }
        }
    }
}

fn real_main() -> Res<()> {
    let mut tool: Option<PathBuf> = None;
    let mut quick = false;
    let mut backup_mode = false;
    let mut service_mode = false;
    let mut online_mode = false;
    let mut tls_mode = false;
    let mut diagnose = true;
    let mut users: Option<u64> = None;
    let mut runs: Option<usize> = None;
    let mut args = std::env::args_os().skip(1);
    let number = |v: Option<OsString>, flag: &str| -> Res<u64> {
        v.and_then(|v| v.to_str().and_then(|s| s.replace('_', "").parse().ok()))
            .ok_or_else(|| format!("{flag} takes a number\n{USAGE}"))
    };
    while let Some(a) = args.next() {
        if a == "--quick" {
            quick = true;
        } else if a == "--backup" {
            backup_mode = true;
        } else if a == "--service" {
            service_mode = true;
        } else if a == "--online" {
            online_mode = true;
        } else if a == "--tls" {
            tls_mode = true;
        } else if a == "--no-diagnose" {
            diagnose = false;
        } else if a == "--users" {
            users = Some(number(args.next(), "--users")?);
        } else if a == "--runs" {
            runs = Some(usize::try_from(number(args.next(), "--runs")?).unwrap_or(1));
        } else if a == "--help" || a == "-h" {
            println!("{USAGE}");
            return Ok(());
        } else {
            tool = Some(PathBuf::from(a));
        }
    }
    if online_mode {
        let report = online::run(&online::OnlinePlan::new(quick, users))?;
        print!("{report}");
        return Ok(());
    }
    if service_mode {
        let report = service::run(&service::ServicePlan::new(quick, users))?;
        print!("{report}");
        return Ok(());
    }
    let tool = tool.ok_or(USAGE)?;
    let tool = std::fs::canonicalize(&tool).map_err(|e| {
        format!(
            "cannot find the identity-migrate binary {}: {e}",
            tool.display()
        )
    })?;
    let work = std::env::temp_dir().join(format!("migrate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = if tls_mode {
        tls::run(&tool, &work, if quick { 3 } else { 50 })
    } else if backup_mode {
        let plan = backup::BackupPlan {
            users: users.unwrap_or(if quick { 20_000 } else { 1_000_000 }),
            runs: runs.unwrap_or(if quick { 1 } else { 3 }).max(1),
            diagnose,
        };
        backup::run(&tool, &work, &plan)
    } else {
        bench(&tool, &work, &Plan::new(quick))
    };
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    print!("{report}");
    Ok(())
}

fn bench(tool: &Path, work: &Path, plan: &Plan) -> Res<String> {
    let server = ensure_server();
    progress(&format!(
        "server {}:{}; tool {}",
        server.host,
        server.port,
        tool.display()
    ));
    let load_start = loadavg();
    let mut out = String::new();
    environment(&mut out, Some(tool))?;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // 1. status on a database at head, and the floors.
    let head_db = TestDb::new();
    check(
        &run_timed(&mut tool_cmd(
            tool,
            work,
            Some(&head_db.url()),
            &["migrate"],
        ))?
        .1,
        "identity-migrate migrate",
    )?;
    progress("1. status");
    let status = repeat(plan.status, 3, || {
        let (t, o) = run_timed(&mut tool_cmd(tool, work, Some(&head_db.url()), &["status"]))?;
        check(&o, "identity-migrate status")?;
        if !String::from_utf8_lossy(&o.stdout).contains("up to date") {
            return Err("identity-migrate status: the database is not at head".to_owned());
        }
        Ok(t)
    })?;
    rows.push(Row::new(
        "1",
        "`identity-migrate status`, database at head (child process)",
        status,
    ));
    let psql_one = repeat(plan.status, 3, || {
        let (t, o) = run_timed(&mut psql_cmd(work, &head_db.url(), &["-c", "select 1"]))?;
        check(&o, "psql -c 'select 1'")?;
        Ok(t)
    })?;
    rows.push(Row::new(
        "1",
        "baseline: `psql -X -c 'select 1'` (start, connect, round trip)",
        psql_one,
    ));
    let version = repeat(plan.status, 3, || {
        let (t, o) = run_timed(&mut tool_cmd(tool, work, None, &["--version"]))?;
        check(&o, "identity-migrate --version")?;
        Ok(t)
    })?;
    rows.push(Row::new(
        "1",
        "floor: `identity-migrate --version` (process start, no connection)",
        version,
    ));
    let head_settings = settings_of(&head_db)?;
    let connect = repeat(plan.status, 3, || {
        let started = Instant::now();
        let driver = PostgresDriver::connect(&head_settings, SessionSettings::default())
            .map_err(|e| format!("connect: {e}"))?;
        let t = started.elapsed();
        drop(driver);
        Ok(t)
    })?;
    rows.push(Row::new(
        "1",
        "part of `status`: `PostgresDriver::connect` in-process (TCP, startup, session `SET`s)",
        connect,
    ));
    drop(head_db);

    // 2. migrate base -> head-1 against psql -1 -f of the generated SQL. The last revision
    // builds indexes CONCURRENTLY, which no single transaction can hold (`psql -1`,
    // `--single-transaction`): the comparison stops before it.
    progress("2. migrate vs psql -1 -f");
    let sql_file = work.join("base-to-head-1.sql");
    let file_arg = sql_file.to_string_lossy().into_owned();
    // The dialect is named: with no database configured, generate-sql writes SQLite's.
    let gen_args = [
        "generate-sql",
        "--dialect",
        "postgres",
        "--from",
        "base",
        "--to",
        "head-1",
        "--output",
        &file_arg,
    ];
    let generate = repeat(plan.migrate, 1, || {
        let (t, o) = run_timed(&mut tool_cmd(tool, work, None, &gen_args))?;
        check(&o, "identity-migrate generate-sql")?;
        Ok(t)
    })?;
    equivalence(tool, work, &file_arg, &mut notes)?;
    notes.push(format!(
        "Section 2 applies the identity graph from base to head-1: {} revision(s), all but the last, which builds indexes `CONCURRENTLY` and so cannot run in `psql -1` or under `--single-transaction`. Every timed run of sections 2 and 3 gets a fresh database, connected to once before the clock starts; the contenders take turns.",
        identity_schema::graph().revisions().len() - 1
    ));
    let mut migrate = Vec::new();
    let mut migrate_one = Vec::new();
    let mut psql_file = Vec::new();
    for i in 0..plan.migrate {
        // Rotate the order so that no contender always runs right after database creation.
        for k in 0..3 {
            let db = TestDb::new();
            warm(&db)?;
            match (i + k) % 3 {
                0 => {
                    let args = ["migrate-to", "head-1"];
                    let (t, o) = run_timed(&mut tool_cmd(tool, work, Some(&db.url()), &args))?;
                    check(&o, "identity-migrate migrate-to head-1")?;
                    migrate.push(t);
                }
                1 => {
                    let args = ["migrate-to", "head-1", "--single-transaction"];
                    let (t, o) = run_timed(&mut tool_cmd(tool, work, Some(&db.url()), &args))?;
                    check(
                        &o,
                        "identity-migrate migrate-to head-1 --single-transaction",
                    )?;
                    migrate_one.push(t);
                }
                _ => {
                    let args = ["-v", "ON_ERROR_STOP=1", "-1", "-f", file_arg.as_str()];
                    let (t, o) = run_timed(&mut psql_cmd(work, &db.url(), &args))?;
                    check(&o, "psql -1 -f")?;
                    psql_file.push(t);
                }
            }
        }
    }
    let migrate = Stats::of(migrate);
    let migrate_one = Stats::of(migrate_one);
    let psql_file = Stats::of(psql_file);
    let overhead = pct_over(migrate.median, psql_file.median);
    let overhead_one = pct_over(migrate_one.median, psql_file.median);
    rows.push(
        Row::new(
            "2",
            "`identity-migrate migrate-to head-1` from base, fresh database (one transaction per revision)",
            migrate,
        )
        .note(&format!("{overhead:+.1}% vs psql (medians)")),
    );
    rows.push(
        Row::new(
            "2",
            "`identity-migrate migrate-to head-1 --single-transaction` from base, fresh database",
            migrate_one,
        )
        .note(&format!("{overhead_one:+.1}% vs psql (medians)")),
    );
    rows.push(Row::new(
        "2",
        "`psql -X -q -v ON_ERROR_STOP=1 -1 -f` of the generated SQL, fresh database",
        psql_file,
    ));
    rows.push(Row::new(
        "2",
        "`identity-migrate generate-sql --dialect postgres --from base --to head-1 --output FILE` (offline)",
        generate,
    ));

    // 3. 1,000 synthetic no-op revisions through the engine, in-process, interleaved with the
    // wire-level floor of the very same statements (so that server load hits both alike).
    progress("3. 1,000 synthetic revisions");
    let revisions = synthetic(SYNTHETIC);
    let graph =
        RevisionGraph::new(revisions.clone()).map_err(|e| format!("synthetic graph: {e}"))?;
    let steps = wire_steps(&graph)?;
    let per_step = steps.first().map_or(0, Vec::len);
    let mut timings: Vec<Vec<Duration>> = vec![Vec::new(); Variant::ALL.len()];
    let mut kept: Option<TestDb> = None;
    for i in 0..plan.apply {
        for k in 0..Variant::ALL.len() {
            let v = Variant::ALL[(i + k) % Variant::ALL.len()];
            let db = TestDb::new();
            warm(&db)?;
            timings[v as usize].push(apply_variant(v, &db, &graph, &steps)?);
            if v == Variant::Engine {
                kept = Some(db);
            }
        }
    }
    let mut stats = timings.into_iter().map(Stats::of);
    let mut next = || stats.next().ok_or("missing variant");
    let (per_revision, one_tx, by_hand, batched, select1) =
        (next()?, next()?, next()?, next()?, next()?);
    let per = |s: &Stats| format!("{:.2} ms per revision", ms(s.median) / SYNTHETIC as f64);
    rows.push(
        Row::new(
            "3",
            "`Engine::run` applying 1,000 no-op revisions, one transaction each (connect included)",
            per_revision,
        )
        .note(&per(&per_revision)),
    );
    rows.push(
        Row::new(
            "3",
            "`Engine::run` applying 1,000 no-op revisions, `single_transaction: true`",
            one_tx,
        )
        .note(&per(&one_tx)),
    );
    let round_trips = per_step + 2;
    rows.push(
        Row::new(
            "3p",
            &format!(
                "floor: the engine's 1,000 transactions sent by hand, {round_trips} round trips each (BEGIN, {per_step} statements, COMMIT)"
            ),
            by_hand,
        )
        .note(&format!("{}; what `execute_in_transaction` sends", per(&by_hand))),
    );
    rows.push(
        Row::new(
            "3p",
            "floor: the same 1,000 transactions, one round trip each (`BEGIN; …; COMMIT` in one message)",
            batched,
        )
        .note(&format!("{}; commit (WAL flush) bound", per(&batched))),
    );
    rows.push(
        Row::new(
            "3p",
            "floor: 1,000 × `SELECT 1` round trips, no transaction",
            select1,
        )
        .note(&format!("{}; loopback round trip", per(&select1))),
    );
    notes.push(format!(
        "Section 3 checks every apply from the history table: {SYNTHETIC} rows, with {SYNTHETIC} distinct `transaction_timestamp()` values (one transaction per revision) or 1 (`single_transaction`). The five apply variants run interleaved, each on a fresh database."
    ));
    notes.push(format!(
        "Per revision the engine sends {round_trips} messages and waits for each reply: BEGIN, the revision's statement, the `alembic_version` update, the history insert ({per_step} statements), COMMIT."
    ));

    let db = kept.ok_or("no database with 1,000 revisions applied")?;
    let settings = settings_of(&db)?;
    let status_connect = repeat(plan.status_1000, 3, || {
        let started = Instant::now();
        let mut engine = connect_engine(&settings, &graph, false)?;
        let s = engine
            .status()
            .map_err(|e| format!("Engine::status: {e}"))?;
        let t = started.elapsed();
        if !s.at_head {
            return Err("Engine::status: the 1,000-revision database is not at head".to_owned());
        }
        Ok(t)
    })?;
    rows.push(Row::new(
        "3",
        "`Engine::status`, 1,000 applied (connect + status, in-process)",
        status_connect,
    ));
    let mut open = connect_engine(&settings, &graph, false)?;
    let status_open = repeat(plan.status_1000, 3, || {
        let started = Instant::now();
        open.status().map_err(|e| format!("Engine::status: {e}"))?;
        Ok(started.elapsed())
    })?;
    drop(open);
    rows.push(Row::new(
        "3",
        "`Engine::status`, 1,000 applied, on an open connection",
        status_open,
    ));
    let noop = repeat(plan.noop_1000, 2, || {
        let started = Instant::now();
        let mut engine = connect_engine(&settings, &graph, false)?;
        let reports = engine
            .run(&Intent::Upgrade("head".to_owned()), &mut |_| {})
            .map_err(|e| format!("no-op Engine::run: {e}"))?;
        let t = started.elapsed();
        if !reports.is_empty() {
            return Err(format!(
                "no-op Engine::run applied {} revisions",
                reports.len()
            ));
        }
        Ok(t)
    })?;
    rows.push(Row::new(
        "3",
        "no-op `Engine::run`, 1,000 applied (connect, lock, read history, verify 1,000 checksums, unlock)",
        noop,
    ));
    drop(db);

    // Where the time goes: CPU work of the engine and the wire-level floor of the same SQL.
    progress("3. profile");
    let build = repeat(plan.noop_1000, 2, || {
        let started = Instant::now();
        let g = RevisionGraph::new(revisions.clone()).map_err(|e| format!("graph: {e}"))?;
        let t = started.elapsed();
        drop(g);
        Ok(t)
    })?;
    rows.push(Row::new(
        "3p",
        "`RevisionGraph::new` of 1,000 revisions (CPU)",
        build,
    ));
    let sums = repeat(plan.noop_1000, 2, || {
        let started = Instant::now();
        let s = checksums(&graph).map_err(|e| format!("checksums: {e}"))?;
        let t = started.elapsed();
        if s.len() != SYNTHETIC {
            return Err("checksums: wrong count".to_owned());
        }
        Ok(t)
    })?;
    let prepare = repeat(plan.noop_1000, 2, || {
        let started = Instant::now();
        let steps = migrate_engine::prepare(
            &graph,
            &PostgresStateSql,
            &options(false),
            &Intent::Upgrade("head".to_owned()),
            &Heads::new(),
        )
        .map_err(|e| format!("prepare: {e}"))?;
        let t = started.elapsed();
        if steps.len() != SYNTHETIC {
            return Err("prepare: wrong step count".to_owned());
        }
        Ok(t)
    })?;
    rows.push(Row::new(
        "3p",
        "`migrate_engine::prepare` base → 1,000 (plan, render, bookkeeping SQL; CPU; once per run)",
        prepare,
    ));
    rows.push(Row::new(
        "3p",
        "`checksums` of 1,000 revisions (CPU; once per run)",
        sums,
    ));

    let _ = writeln!(
        out,
        "Load average (1, 5, 15 min) at start: {load_start}; at end: {}. Other work on the machine or the server inflates every number, the commit-bound ones most.\n",
        loadavg()
    );
    table(&mut out, &rows);
    aims(&mut out, &rows, overhead);
    if !notes.is_empty() {
        out.push_str("\n### Notes from this run\n\n");
        for n in &notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    Ok(out)
}

/// How the 1,000 synthetic revisions are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `Engine::run`, one transaction per revision.
    Engine = 0,
    /// `Engine::run` with `single_transaction`.
    EngineSingle = 1,
    /// The engine's statements sent by hand, one message each, one transaction per revision.
    ByHand = 2,
    /// The same transactions, one message each.
    Batched = 3,
    /// One `SELECT 1` per revision: the round trip alone.
    SelectOne = 4,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Engine,
        Variant::EngineSingle,
        Variant::ByHand,
        Variant::Batched,
        Variant::SelectOne,
    ];
}

/// Applies the synthetic graph to the fresh `db` one way, and returns the time it took
/// (connecting included for the engine, excluded for the hand-sent floors).
fn apply_variant(
    v: Variant,
    db: &TestDb,
    graph: &RevisionGraph,
    steps: &[Vec<String>],
) -> Res<Duration> {
    let settings = settings_of(db)?;
    if matches!(v, Variant::Engine | Variant::EngineSingle) {
        let single = v == Variant::EngineSingle;
        let started = Instant::now();
        let reports = {
            let mut engine = connect_engine(&settings, graph, single)?;
            engine
                .run(&Intent::Upgrade("head".to_owned()), &mut |_| {})
                .map_err(|e| format!("Engine::run: {e}"))?
        };
        let t = started.elapsed();
        if reports.len() != SYNTHETIC {
            return Err(format!(
                "Engine::run applied {} revisions, not {SYNTHETIC}",
                reports.len()
            ));
        }
        let want_txs = if single { 1 } else { SYNTHETIC_ROWS };
        check_history(db, want_txs, &format!("{v:?}"))?;
        return Ok(t);
    }
    let mut driver = PostgresDriver::connect(&settings, SessionSettings::default())
        .map_err(|e| format!("connect: {e}"))?;
    driver
        .execute_in_transaction(&PostgresStateSql.bootstrap_statements())
        .map_err(|e| format!("bootstrap: {}", e.error))?;
    let client = driver.client();
    let sql_err = |e: &dyn std::fmt::Display| format!("{v:?}: {e}");
    let started = Instant::now();
    for statements in steps {
        match v {
            Variant::ByHand => {
                client.batch_execute("BEGIN").map_err(|e| sql_err(&e))?;
                for s in statements {
                    client.batch_execute(s).map_err(|e| sql_err(&e))?;
                }
                client.batch_execute("COMMIT").map_err(|e| sql_err(&e))?;
            }
            Variant::Batched => {
                let one = format!("BEGIN;\n{};\nCOMMIT", statements.join(";\n"));
                client.batch_execute(&one).map_err(|e| sql_err(&e))?;
            }
            _ => client.batch_execute("SELECT 1").map_err(|e| sql_err(&e))?,
        }
    }
    let t = started.elapsed();
    if v != Variant::SelectOne {
        check_history(db, SYNTHETIC_ROWS, &format!("{v:?}"))?;
    }
    Ok(t)
}

/// Checks that the history table holds one row per synthetic revision, written in `want_txs`
/// transactions (told apart by `transaction_timestamp()`).
fn check_history(db: &TestDb, want_txs: i64, what: &str) -> Res<()> {
    let (rows_n, txs) = history_transactions(db)?;
    if rows_n != SYNTHETIC_ROWS || txs != want_txs {
        return Err(format!(
            "{what}: {rows_n} history rows in {txs} transactions; expected {SYNTHETIC} in {want_txs}"
        ));
    }
    Ok(())
}

/// Per step from base, the statements a run sends (the revision's, then its bookkeeping).
fn wire_steps(graph: &RevisionGraph) -> Res<Vec<Vec<String>>> {
    let prepared = migrate_engine::prepare(
        graph,
        &PostgresStateSql,
        &options(false),
        &Intent::Upgrade("head".to_owned()),
        &Heads::new(),
    )
    .map_err(|e| format!("prepare: {e}"))?;
    Ok(prepared
        .iter()
        .map(|p| p.statements.iter().chain(&p.bookkeeping).cloned().collect())
        .collect())
}

/// Checks once that `migrate` and `psql -1 -f` of the generated SQL give the same database.
fn equivalence(tool: &Path, work: &Path, file: &str, notes: &mut Vec<String>) -> Res<()> {
    let a = TestDb::new();
    let b = TestDb::new();
    check(
        &run_timed(&mut tool_cmd(
            tool,
            work,
            Some(&a.url()),
            &["migrate-to", "head-1"],
        ))?
        .1,
        "identity-migrate migrate-to head-1",
    )?;
    let args = ["-v", "ON_ERROR_STOP=1", "-1", "-f", file];
    check(
        &run_timed(&mut psql_cmd(work, &b.url(), &args))?.1,
        "psql -1 -f",
    )?;
    let same_schema = describe_schema(&mut a.client(), &["public"])
        == describe_schema(&mut b.client(), &["public"]);
    let heads = "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version";
    let ha = query_text(&a, heads)?;
    let hb = query_text(&b, heads)?;
    if !same_schema || ha != hb {
        return Err(format!(
            "`migrate` and `psql -1 -f` of the generated SQL disagree (same schema: {same_schema}; alembic_version {ha} vs {hb})"
        ));
    }
    notes.push(format!(
        "Section 2 checked once that `migrate` and `psql -1 -f` of the generated SQL leave the same schema (`describe_schema`) and the same `alembic_version` ({ha})."
    ));
    Ok(())
}

fn query_text(db: &TestDb, sql: &str) -> Res<String> {
    let row = db
        .client()
        .query_one(sql, &[])
        .map_err(|e| format!("{sql}: {e}"))?;
    let v: Option<String> = row.get(0);
    Ok(v.unwrap_or_default())
}

/// Connects once to a fresh database, so that no timed run pays for the first connection to
/// it (the server builds its relation-cache file then), which would only add noise.
fn warm(db: &TestDb) -> Res<()> {
    db.client()
        .batch_execute("SELECT 1")
        .map_err(|e| format!("warm-up connection to {}: {e}", db.name()))
}

fn history_transactions(db: &TestDb) -> Res<(i64, i64)> {
    let mut c = db.client();
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT started_at) FROM identity_migrate_history",
            &[],
        )
        .map_err(|e| format!("read history: {e}"))?;
    Ok((row.get(0), row.get(1)))
}

fn synthetic(n: usize) -> Vec<Revision> {
    let ids: Vec<String> = (0..n).map(|i| format!("{i:012x}")).collect();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let down: Vec<&str> = if i == 0 {
                Vec::new()
            } else {
                vec![ids[i - 1].as_str()]
            };
            Revision::new(id, &down, &format!("no-op {i}")).upgrade(vec![Op::Sql(RawSql {
                description: format!("no-op {i}"),
                postgres: Some("SELECT 1".to_owned()),
                sqlite: Some("SELECT 1".to_owned()),
            })])
        })
        .collect()
}

fn options(single: bool) -> Options {
    let mut o = Options::new(RunIdentity {
        os_user: "bench".to_owned(),
        host: "bench".to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    o.single_transaction = single;
    o
}

fn settings_of(db: &TestDb) -> Res<ConnectionSettings> {
    // No PG* variables: the URL says everything.
    url::parse(&db.url(), &|_| None).map_err(|e| format!("test database URL: {e}"))
}

fn connect_engine<'g>(
    settings: &ConnectionSettings,
    graph: &'g RevisionGraph,
    single: bool,
) -> Res<Engine<'g>> {
    let driver = PostgresDriver::connect(settings, SessionSettings::default())
        .map_err(|e| format!("connect: {e}"))?;
    Ok(Engine::new(Box::new(driver), graph, options(single)))
}

// ---- child processes -------------------------------------------------------------------------

/// The tool with `--no-dotenv`, `DATABASE_URL` set (or removed), no `PG*` variables, and a
/// scratch working directory (so no `identity-migrate.toml` or `.env` is picked up).
fn tool_cmd(tool: &Path, work: &Path, url: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(tool);
    c.arg("--no-dotenv").args(args).current_dir(work);
    clean_env(&mut c);
    match url {
        Some(u) => c.env("DATABASE_URL", u),
        None => c.env_remove("DATABASE_URL"),
    };
    c
}

fn psql_cmd(work: &Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-A", "-t", "-d", url])
        .args(args)
        .current_dir(work);
    clean_env(&mut c);
    c
}

fn clean_env(c: &mut Command) {
    let pg: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with("PG"))
        .collect();
    for k in pg {
        c.env_remove(k);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

fn run_timed(c: &mut Command) -> Res<(Duration, Output)> {
    let started = Instant::now();
    let out = c
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", c.get_program()))?;
    Ok((started.elapsed(), out))
}

fn check(out: &Output, what: &str) -> Res<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn capture(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---- environment -------------------------------------------------------------------------------

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn environment(out: &mut String, tool: Option<&Path>) -> Res<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
        );
    let server = ensure_server();
    let db = TestDb::new();
    let mut c = db.client();
    let mut show = |name: &str| -> String {
        c.query_one(&format!("SELECT current_setting('{name}')"), &[])
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|e| format!("unknown ({e})"))
    };
    let settings: Vec<(&str, String)> = [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
    ]
    .iter()
    .map(|n| (*n, show(n)))
    .collect();
    let tool_version = match tool {
        // The profile is the directory cargo built it into (`target/release`, or `target/debug`
        // when the suite runs the quick mode): a debug build's numbers must not pass for release.
        Some(tool) => format!(
            "{} ({} build)",
            capture(&tool.to_string_lossy(), &["--version"]),
            tool.parent()
                .and_then(|dir| dir.file_name())
                .map_or_else(|| "unknown".into(), |d| d.to_string_lossy())
        ),
        None => format!(
            "identity-migrate {} (in-process)",
            env!("CARGO_PKG_VERSION")
        ),
    };
    let psql_version = capture("psql", &["--version"]);
    out.push_str("## Environment\n\n| item | value |\n|---|---|\n");
    let _ = writeln!(out, "| CPU | {cpu} ({cores} logical CPUs) |");
    let _ = writeln!(out, "| memory | {mem} |");
    let _ = writeln!(out, "| kernel | {} |", kernel.trim());
    let _ = writeln!(
        out,
        "| server | {}:{} (loopback TCP, trust auth) |",
        server.host, server.port
    );
    for (k, v) in settings {
        let _ = writeln!(out, "| `{k}` | {v} |");
    }
    let _ = writeln!(out, "| psql | {psql_version} |");
    let _ = writeln!(out, "| tool | {tool_version} |");
    out.push('\n');
    Ok(())
}

// ---- statistics and output ----------------------------------------------------------------------

/// Runs `f` `warmup` times untimed, then `n` times, and summarises the timings.
fn repeat(n: usize, warmup: usize, mut f: impl FnMut() -> Res<Duration>) -> Res<Stats> {
    for _ in 0..warmup {
        f()?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(f()?);
    }
    Ok(Stats::of(v))
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    runs: usize,
    median: Duration,
    p95: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut v: Vec<Duration>) -> Stats {
        v.sort();
        let n = v.len();
        if n == 0 {
            return Stats {
                runs: 0,
                median: Duration::ZERO,
                p95: Duration::ZERO,
                min: Duration::ZERO,
                max: Duration::ZERO,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        };
        // Nearest rank: the smallest value with at least 95% of the runs at or below it.
        let rank = (n * 95).div_ceil(100).max(1);
        Stats {
            runs: n,
            median,
            p95: v[rank - 1],
            min: v[0],
            max: v[n - 1],
        }
    }
}

struct Row {
    section: &'static str,
    what: String,
    stats: Stats,
    note: String,
}

impl Row {
    fn new(section: &'static str, what: &str, stats: Stats) -> Row {
        Row {
            section,
            what: what.to_owned(),
            stats,
            note: String::new(),
        }
    }

    fn note(mut self, note: &str) -> Row {
        self.note = note.to_owned();
        self
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(d: Duration) -> String {
    let v = ms(d);
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn pct_over(tool: Duration, base: Duration) -> f64 {
    if base.is_zero() {
        return 0.0;
    }
    (ms(tool) / ms(base) - 1.0) * 100.0
}

fn table(out: &mut String, rows: &[Row]) {
    out.push_str("## Results\n\n");
    out.push_str("| § | measurement | runs | median | p95 | min | max | note |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.section,
            r.what,
            r.stats.runs,
            fmt_ms(r.stats.median),
            fmt_ms(r.stats.p95),
            fmt_ms(r.stats.min),
            fmt_ms(r.stats.max),
            r.note
        );
    }
    out.push('\n');
}

fn aims(out: &mut String, rows: &[Row], overhead: f64) {
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r.what.starts_with(prefix))
            .map(|r| r.stats)
    };
    let met = |ok: bool| if ok { "**met**" } else { "**not met**" };
    out.push_str("## Aims\n\n| aim | measured | verdict |\n|---|---|---|\n");
    if let Some(s) = find("`identity-migrate status`") {
        let _ = writeln!(
            out,
            "| `status` under 15 ms median | {} median (p95 {}) | {} |",
            fmt_ms(s.median),
            fmt_ms(s.p95),
            met(ms(s.median) < 15.0)
        );
    }
    if let Some(s) = find("`Engine::run` applying 1,000 no-op revisions, one transaction each") {
        let _ = writeln!(
            out,
            "| 1,000 revisions applied in under 1 s, one transaction each | {} median (max {}) | {} |",
            fmt_ms(s.median),
            fmt_ms(s.max),
            met(s.median < Duration::from_secs(1))
        );
    }
    let _ = writeln!(
        out,
        "| tool overhead over `psql -1 -f` within 20% | {overhead:+.1}% (medians) | {} |",
        met(overhead <= 20.0)
    );
    out.push('\n');
}

fn progress(what: &str) {
    eprintln!("migrate-bench: {what}");
}

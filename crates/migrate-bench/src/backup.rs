//! `migrate-bench TOOL --backup`: backup, verify and restore of a seeded database, side by side
//! with plain `pg_dump` and `pg_restore` in the same run.
//!
//! One source database ([`TestDb`], kept for the whole run) is migrated to head and seeded with
//! `identity-migrate seed --users N`. Then every contender runs `runs` times, the contenders
//! taking turns (rotated each round, so that none always runs first or right after another),
//! each run after a `CHECKPOINT`, and every restore into a fresh empty database whose row counts
//! must equal the source's. Archives are deleted after each run, except those of the last round
//! that the verify and restore sections read.
//!
//! For every run the harness records wall-clock time, the CPU time of the client processes
//! (the contender and every process it waited for: `pg_dump`, `pg_restore`...), how busy the
//! machine's CPUs were, and the 1-minute load average before it started. A sampler polls
//! `pg_stat_activity` every 100 ms to split the server's time into phases (COPY, index builds,
//! keys, row counts, none active) and to see whether parallel workers take part.

use super::{
    check, clean_env, environment, fmt_ms, loadavg, progress, run_timed, tool_cmd, warm, Res, Stats,
};
use migrate_testkit::{ensure_server, TestDb};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the backup benchmark does: how many users, how many runs of each contender.
pub(crate) struct BackupPlan {
    pub(crate) users: u64,
    pub(crate) runs: usize,
    /// Also run the targeted experiments (diagnostics) after the main comparison.
    pub(crate) diagnose: bool,
}

/// One contender: how to build its command for a run.
struct Contender {
    key: &'static str,
    label: String,
    /// What it writes (deleted after the run unless kept), or none.
    output: Option<PathBuf>,
    /// Runs into a fresh database (restores).
    fresh_db: bool,
    build: Box<dyn Fn(&RunCtx) -> Command>,
}

/// What a command needs for one run.
struct RunCtx<'a> {
    /// URL of the database it reads (backups) or writes (restores).
    url: &'a str,
}

/// One timed run.
#[derive(Debug, Clone)]
struct Sample {
    wall: Duration,
    /// CPU time (user + system) of the child and everything it waited for.
    client_cpu: Duration,
    /// Busy CPUs, averaged over the run (out of the machine's logical CPUs).
    busy: f64,
    /// CPUs in iowait, averaged over the run.
    iowait: f64,
    load1: f64,
    round: usize,
    size: Option<u64>,
    phases: Phases,
}

/// Time per phase, from sampling `pg_stat_activity` (backend-seconds: with two backends
/// active, a second of wall-clock counts twice).
#[derive(Debug, Clone, Default)]
struct Phases {
    by_phase: BTreeMap<&'static str, Duration>,
    /// Wall-clock time with at least one parallel worker active in the database.
    parallel: Duration,
    /// Wall-clock time with an index or key build active.
    building: Duration,
}

impl Phases {
    fn add(&mut self, other: &Phases) {
        for (k, v) in &other.by_phase {
            *self.by_phase.entry(k).or_default() += *v;
        }
        self.parallel += other.parallel;
        self.building += other.building;
    }
}

/// Sorts the server's active query into a phase.
fn phase_of(query: &str) -> &'static str {
    // The whole text: a COPY's column list can be long.
    let q = query.trim_start().to_ascii_lowercase();
    if q.starts_with("copy") {
        if q.contains(" to stdout") {
            "dump (COPY … TO stdout)"
        } else {
            "load (COPY … FROM stdin)"
        }
    } else if q.starts_with("create index") || q.starts_with("create unique index") {
        "index builds (CREATE INDEX)"
    } else if q.starts_with("alter table") && q.contains("foreign key") {
        "foreign keys (ADD CONSTRAINT … FOREIGN KEY: validation)"
    } else if q.starts_with("alter table") && (q.contains("primary key") || q.contains(" unique")) {
        "primary and unique keys (index builds)"
    } else if q.contains("count(*)") {
        "row counts (SELECT count(*))"
    } else {
        "other statements"
    }
}

fn is_build(phase: &str) -> bool {
    phase.starts_with("index") || phase.starts_with("primary") || phase.starts_with("foreign")
}

/// Polls `pg_stat_activity` for one database, and the scratch database a restore fills beside
/// it, from its own connection (to another database).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Phases>,
}

impl Sampler {
    fn start(admin_url: &str, dbname: &str) -> Res<Sampler> {
        let mut client = postgres::Client::connect(admin_url, postgres::NoTls)
            .map_err(|e| format!("sampler connection: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let dbname = dbname.to_owned();
        let handle = std::thread::spawn(move || {
            let mut phases = Phases::default();
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let rows = client
                    .query(
                        "SELECT backend_type, coalesce(query, '') FROM pg_stat_activity \
                         WHERE (datname = $1 OR starts_with(datname, $1 || '__restore_')) \
                         AND state = 'active' AND pid <> pg_backend_pid()",
                        &[&dbname],
                    )
                    .unwrap_or_default();
                let now = Instant::now();
                let dt = now - last;
                last = now;
                let mut any = false;
                let mut parallel = false;
                let mut building = false;
                for r in &rows {
                    let kind: String = r.get(0);
                    let query: String = r.get(1);
                    if kind == "parallel worker" {
                        parallel = true;
                        continue;
                    }
                    let p = phase_of(&query);
                    building |= is_build(p);
                    any = true;
                    *phases.by_phase.entry(p).or_default() += dt;
                }
                if !any {
                    *phases
                        .by_phase
                        .entry("no query active (client-side work)")
                        .or_default() += dt;
                }
                if parallel {
                    phases.parallel += dt;
                }
                if building {
                    phases.building += dt;
                }
            }
            phases
        });
        Ok(Sampler { stop, handle })
    }

    fn finish(self) -> Phases {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

// ---- machine counters ---------------------------------------------------------------------------

/// CPU time of this process's waited-for children (and theirs), from `/proc/self/stat`.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 and 17 of proc(5), cutime and cstime; `after` starts at field 3.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(13) + tick(14)) * 10)
}

/// (busy, iowait, total) jiffies of all CPUs, from `/proc/stat`.
fn cpu_jiffies() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0);
    let iowait = v.get(4).copied().unwrap_or(0);
    (total - idle - iowait, iowait, total)
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| usize::from(n) as f64)
}

/// Bytes of a file, or of every file under a directory.
fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(Result::ok).map(|e| size_of(&e.path())).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

fn remove(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(manifest_of(path));
}

fn manifest_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

// ---- commands -----------------------------------------------------------------------------------

fn pg(program: &str, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(work);
    clean_env(&mut c);
    c
}

/// A shell pipeline (with `pipefail`), for the diagnostics that chain tools.
fn sh(work: &Path, script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", &format!("set -euo pipefail; {script}")])
        .current_dir(work);
    clean_env(&mut c);
    c
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Every ordinary table outside the system schemas with its row count, like the manifest.
fn row_counts(db: &TestDb) -> Res<BTreeMap<String, i64>> {
    let mut c = db.client();
    let tables = c
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[],
        )
        .map_err(|e| format!("list tables: {e}"))?;
    let mut counts = BTreeMap::new();
    for row in tables {
        let name: String = row.get(0);
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .map_err(|e| format!("count {name}: {e}"))?
            .get(0);
        counts.insert(name, n);
    }
    Ok(counts)
}

fn checkpoint(admin: &TestDb) -> Res<()> {
    admin
        .client()
        .batch_execute("CHECKPOINT")
        .map_err(|e| format!("CHECKPOINT: {e}"))
}

// ---- the runner ---------------------------------------------------------------------------------

struct Bench<'a> {
    admin: &'a TestDb,
    admin_url: String,
    source: &'a TestDb,
    expected: &'a BTreeMap<String, i64>,
    /// Every run, for the raw log.
    log: Vec<(String, Sample)>,
}

impl Bench<'_> {
    /// Runs every contender `runs` times, taking turns; `keep` names the contenders whose last
    /// output is kept.
    fn rounds(
        &mut self,
        section: &str,
        runs: usize,
        contenders: &[Contender],
        keep: &[&str],
    ) -> Res<Vec<Vec<Sample>>> {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
        for round in 0..runs {
            for k in 0..contenders.len() {
                let i = (round + k) % contenders.len();
                let c = &contenders[i];
                let last = round + 1 == runs;
                progress(&format!(
                    "{section}: round {}/{runs}: {} (load {})",
                    round + 1,
                    c.label,
                    loadavg()
                ));
                let sample = self.one(c, round)?;
                progress(&format!(
                    "  {} (client CPU {:.1} s, {:.2} CPUs busy)",
                    fmt_s(sample.wall),
                    sample.client_cpu.as_secs_f64(),
                    sample.busy
                ));
                if let Some(out) = &c.output {
                    if !(last && keep.contains(&c.key)) {
                        remove(out);
                    }
                }
                self.log.push((c.label.clone(), sample.clone()));
                samples[i].push(sample);
            }
        }
        Ok(samples)
    }

    fn one(&mut self, c: &Contender, round: usize) -> Res<Sample> {
        if let Some(out) = &c.output {
            remove(out);
        }
        let target = if c.fresh_db {
            let db = TestDb::new();
            warm(&db)?;
            Some(db)
        } else {
            None
        };
        let (url, dbname) = match &target {
            Some(db) => (db.url(), db.name().to_owned()),
            None => (self.source.url(), self.source.name().to_owned()),
        };
        let mut cmd = (c.build)(&RunCtx { url: &url });
        checkpoint(self.admin)?;
        let load = load1();
        let sampler = Sampler::start(&self.admin_url, &dbname)?;
        let cpu0 = children_cpu();
        let (busy0, io0, total0) = cpu_jiffies();
        let (wall, output) = run_timed(&mut cmd)?;
        let (busy1, io1, total1) = cpu_jiffies();
        let client_cpu = children_cpu().saturating_sub(cpu0);
        let phases = sampler.finish();
        check(&output, &c.label)?;
        let span = (total1 - total0).max(1) as f64;
        let size = c.output.as_deref().map(size_of);
        if let Some(db) = &target {
            let got = row_counts(db)?;
            if &got != self.expected {
                return Err(format!(
                    "{}: the restored row counts differ from the source's: {got:?}",
                    c.label
                ));
            }
        }
        drop(target);
        Ok(Sample {
            wall,
            client_cpu,
            busy: (busy1 - busy0) as f64 / span * cores(),
            iowait: (io1 - io0) as f64 / span * cores(),
            load1: load,
            round,
            size,
            phases,
        })
    }
}

fn fmt_s(d: Duration) -> String {
    let v = d.as_secs_f64();
    if v >= 100.0 {
        format!("{v:.0} s")
    } else if v >= 1.0 {
        format!("{v:.1} s")
    } else {
        fmt_ms(d)
    }
}

/// Text for a markdown table cell: a `|` (of a shell pipeline) would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn fmt_mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

/// A result row: statistics over the runs of one contender.
struct Line {
    section: &'static str,
    label: String,
    stats: Stats,
    cpu: Duration,
    busy: f64,
    size: Option<u64>,
    note: String,
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn line(section: &'static str, c: &Contender, samples: &[Sample]) -> Line {
    let cpu = median_of(samples.iter().map(|s| s.client_cpu.as_secs_f64()).collect());
    Line {
        section,
        label: c.label.clone(),
        stats: Stats::of(samples.iter().map(|s| s.wall).collect()),
        cpu: Duration::from_secs_f64(cpu),
        busy: median_of(samples.iter().map(|s| s.busy).collect()),
        size: samples.iter().rev().find_map(|s| s.size),
        note: String::new(),
    }
}

fn pct(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
    }
}

/// Runs the backup benchmark and returns the markdown report.
pub(crate) fn run(tool: &Path, work: &Path, plan: &BackupPlan) -> Res<String> {
    let server = ensure_server();
    progress(&format!(
        "backup benchmark: server {}:{}; {} users; {} run(s) each",
        server.host, server.port, plan.users, plan.runs
    ));
    let load_start = loadavg();
    let mut out = String::new();
    environment(&mut out, Some(tool))?;
    let admin = TestDb::new();
    let admin_url = admin.url();
    settings_table(&mut out, &admin)?;

    // The source database, kept for the whole run.
    let source = TestDb::new();
    let mut setup: Vec<(String, Duration)> = Vec::new();
    progress("setup: migrate");
    let (t, o) = run_timed(&mut tool_cmd(tool, work, Some(&source.url()), &["migrate"]))?;
    check(&o, "identity-migrate migrate")?;
    setup.push(("`identity-migrate migrate` (base → head)".to_owned(), t));
    progress(&format!("setup: seed --users {}", plan.users));
    let users = plan.users.to_string();
    let load_seed = loadavg();
    let (t, o) = run_timed(&mut tool_cmd(
        tool,
        work,
        Some(&source.url()),
        &["seed", "--users", &users],
    ))?;
    check(&o, "identity-migrate seed")?;
    setup.push((
        format!("`identity-migrate seed --users {users}` (load average before: {load_seed})"),
        t,
    ));
    let started = Instant::now();
    source
        .client()
        .batch_execute("VACUUM (FREEZE, ANALYZE)")
        .map_err(|e| format!("VACUUM: {e}"))?;
    setup.push((
        "`VACUUM (FREEZE, ANALYZE)` after the seed (so that no contender sets hint bits)"
            .to_owned(),
        started.elapsed(),
    ));
    let expected = row_counts(&source)?;
    let total_rows: i64 = expected.values().sum();
    let db_size: i64 = source
        .client()
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map_err(|e| format!("database size: {e}"))?
        .get(0);
    // Warm-up: one untimed full read, so that the first contender does not fill the page cache.
    progress("setup: warm-up pg_dump (untimed)");
    let warmup = work.join("warmup.dump");
    let mut c = pg(
        "pg_dump",
        work,
        &["-Fc", "-Z0", "-f", &s(&warmup), "-d", &source.url()],
    );
    let (t, o) = run_timed(&mut c)?;
    check(&o, "warm-up pg_dump")?;
    remove(&warmup);
    setup.push((
        "warm-up `pg_dump -Fc -Z0` (untimed in the comparisons)".to_owned(),
        t,
    ));

    let mut bench = Bench {
        admin: &admin,
        admin_url: admin_url.clone(),
        source: &source,
        expected: &expected,
        log: Vec::new(),
    };
    let mut lines: Vec<Line> = Vec::new();

    // ---- backup ----
    let tool_dump = work.join("tool-backup");
    let tool_custom = work.join("tool-custom.dump");
    let pg_fc0 = work.join("pg-fc-z0.dump");
    let pg_fc1 = work.join("pg-fc-z1.dump");
    let pg_fd0 = work.join("pg-fd-j2-z0");
    let pg_fd1 = work.join("pg-fd-j2-z1");
    let backups = vec![
        tool_contender(
            "tool",
            tool,
            work,
            "`identity-migrate backup --output X` (the default: directory, `pg_dump -j2`, no compression; one SHA-256 pass per file gives its checksum, rows and data digest)",
            &tool_dump,
            &["backup", "--output", &s(&tool_dump)],
        ),
        tool_contender(
            "tool-custom",
            tool,
            work,
            "`identity-migrate backup --format custom --output X` (one file, no compression; decoded, counted and hashed in the same pass)",
            &tool_custom,
            &["backup", "--format", "custom", "--output", &s(&tool_custom)],
        ),
        pg_contender(
            "pg-fc-z0",
            work,
            "`pg_dump -Fc -Z0`",
            &pg_fc0,
            &["-Fc", "-Z0"],
        ),
        pg_contender(
            "pg-fc-z1",
            work,
            "`pg_dump -Fc -Z1`",
            &pg_fc1,
            &["-Fc", "-Z1"],
        ),
        pg_contender(
            "pg-fd-j2-z0",
            work,
            "`pg_dump -Fd -j2 -Z0`",
            &pg_fd0,
            &["-Fd", "-j2", "-Z0"],
        ),
        pg_contender(
            "pg-fd-j2-z1",
            work,
            "`pg_dump -Fd -j2 -Z1`",
            &pg_fd1,
            &["-Fd", "-j2", "-Z1"],
        ),
    ];
    let backup_samples = bench.rounds(
        "backup",
        plan.runs,
        &backups,
        &["tool", "pg-fd-j2-z0", "pg-fc-z1"],
    )?;
    let mut backup_lines: Vec<Line> = backups
        .iter()
        .zip(&backup_samples)
        .map(|(c, v)| line("backup", c, v))
        .collect();
    let (best_i, best) = backups
        .iter()
        .zip(&backup_lines)
        .enumerate()
        .filter(|(_, (c, _))| c.key.starts_with("pg-"))
        .map(|(i, (_, l))| (i, l.stats.median))
        .min_by_key(|(_, m)| *m)
        .ok_or("no pg_dump contender")?;
    let best_label = backups[best_i].label.clone();
    let by_key = |key: &str| backups.iter().position(|c| c.key == key).unwrap_or(0);
    let fc1 = backup_lines[by_key("pg-fc-z1")].stats.median;
    let backup_overhead = pct(backup_lines[0].stats.median, best);
    for (i, c) in backups.iter().enumerate() {
        if c.key.starts_with("tool") {
            let m = backup_lines[i].stats.median;
            backup_lines[i].note = format!(
                "{:+.1}% vs the best pg_dump mode; {:+.1}% vs `pg_dump -Fc -Z1`",
                pct(m, best),
                pct(m, fc1)
            );
        }
    }
    backup_lines[best_i].note = "the best pg_dump mode".to_owned();
    let tool_backup = backup_lines[0].stats.median;
    lines.extend(backup_lines);

    // ---- verify ----
    let x = s(&tool_dump);
    let verifies = vec![
        Contender {
            key: "tool-verify",
            label: "`identity-migrate backup verify X` (the default: SHA-256 of every file, table of contents)"
                .to_owned(),
            output: None,
            fresh_db: false,
            build: {
                let (tool, work, x) = (tool.to_owned(), work.to_owned(), x.clone());
                Box::new(move |_| tool_cmd(&tool, &work, None, &["backup", "verify", &x]))
            },
        },
        Contender {
            key: "tool-verify-full",
            label: "`identity-migrate backup verify --full X` (also a full decode: rows and data digest of every table)"
                .to_owned(),
            output: None,
            fresh_db: false,
            build: {
                let (tool, work, x) = (tool.to_owned(), work.to_owned(), x.clone());
                Box::new(move |_| {
                    tool_cmd(&tool, &work, None, &["backup", "verify", "--full", &x])
                })
            },
        },
        Contender {
            key: "sha256sum",
            label: "`sha256sum X/*`".to_owned(),
            output: None,
            fresh_db: false,
            build: {
                let (work, x) = (work.to_owned(), x.clone());
                Box::new(move |_| sh(&work, &format!("sha256sum '{x}'/* > /dev/null")))
            },
        },
        Contender {
            key: "pg-list",
            label: "`pg_restore --list X` (table of contents)".to_owned(),
            output: None,
            fresh_db: false,
            build: {
                let (work, x) = (work.to_owned(), x.clone());
                Box::new(move |_| pg("pg_restore", &work, &["--list", &x]))
            },
        },
        Contender {
            key: "pg-read",
            label: "`pg_restore -f /dev/null X` (a full read and decode)".to_owned(),
            output: None,
            fresh_db: false,
            build: {
                let (work, x) = (work.to_owned(), x.clone());
                Box::new(move |_| pg("pg_restore", &work, &["-f", "/dev/null", &x]))
            },
        },
    ];
    let verify_samples = bench.rounds("verify", plan.runs, &verifies, &[])?;
    let mut verify_lines: Vec<Line> = verifies
        .iter()
        .zip(&verify_samples)
        .map(|(c, v)| line("verify", c, v))
        .collect();
    let fast_floor = verify_lines[2].stats.median + verify_lines[3].stats.median;
    let full_floor = verify_lines[2].stats.median + verify_lines[4].stats.median;
    let verify_over_floor = pct(verify_lines[0].stats.median, fast_floor);
    let full_over_floor = pct(verify_lines[1].stats.median, full_floor);
    let share = |d: Duration| d.as_secs_f64() / tool_backup.as_secs_f64().max(1e-9) * 100.0;
    let verify_share = share(verify_lines[0].stats.median);
    verify_lines[0].note = format!(
        "{verify_over_floor:+.1}% vs `sha256sum X/*` + `pg_restore --list`; {verify_share:.1}% of the tool's backup time"
    );
    verify_lines[1].note = format!(
        "{full_over_floor:+.1}% vs `sha256sum X/*` + `pg_restore -f /dev/null`; {:.0}% of the tool's backup time",
        share(verify_lines[1].stats.median)
    );
    let verify_fast = verify_lines[0].stats.median;
    let verify_full = verify_lines[1].stats.median;
    lines.extend(verify_lines);

    // ---- restore ----
    let pg_j2 = |key: &'static str, label: &str, file: &Path| Contender {
        key,
        label: label.to_owned(),
        output: None,
        fresh_db: true,
        build: {
            let (work, x) = (work.to_owned(), s(file));
            Box::new(move |ctx| {
                pg(
                    "pg_restore",
                    &work,
                    &["-j2", "--no-owner", "--exit-on-error", "-d", ctx.url, &x],
                )
            })
        },
    };
    let restores = vec![
        Contender {
            key: "tool-restore",
            label: "`identity-migrate restore X` (checksums; `pg_restore -j2` into a scratch database beside a full decode; counts; rename swap: atomic)".to_owned(),
            output: None,
            fresh_db: true,
            build: {
                let (tool, work, x) = (tool.to_owned(), work.to_owned(), s(&tool_dump));
                Box::new(move |ctx| tool_cmd(&tool, &work, Some(ctx.url), &["restore", &x]))
            },
        },
        pg_j2(
            "pg-j2-z0",
            "`pg_restore -j2 --no-owner -d DB` of the `pg_dump -Fd -j2 -Z0` directory (non-atomic)",
            &pg_fd0,
        ),
        pg_j2(
            "pg-j2-z1",
            "`pg_restore -j2 --no-owner -d DB` of the `pg_dump -Fc -Z1` file (non-atomic)",
            &pg_fc1,
        ),
    ];
    let restore_samples = bench.rounds("restore", plan.runs, &restores, &[])?;
    let mut restore_lines: Vec<Line> = restores
        .iter()
        .zip(&restore_samples)
        .map(|(c, v)| line("restore", c, v))
        .collect();
    let (j2_i, j2) = [1usize, 2]
        .into_iter()
        .map(|i| (i, restore_lines[i].stats.median))
        .min_by_key(|(_, m)| *m)
        .ok_or("no pg_restore contender")?;
    let j2_label = restores[j2_i].label.clone();
    let restore_over = pct(restore_lines[0].stats.median, j2);
    restore_lines[0].note = format!(
        "{restore_over:+.1}% vs the faster `pg_restore -j2`; {:+.1}% vs `-j2` of the `-Fc -Z1` file",
        pct(restore_lines[0].stats.median, restore_lines[2].stats.median)
    );
    restore_lines[j2_i].note = "the faster `pg_restore -j2`".to_owned();
    let tool_restore = restore_lines[0].stats.median;
    lines.extend(restore_lines);

    // ---- diagnostics ----
    let mut diag_lines: Vec<Line> = Vec::new();
    let mut diag_phases: Vec<(String, Phases, usize)> = Vec::new();
    if plan.diagnose {
        let f = work.join("diag.dump");
        let url = source.url();
        let counts_sql: String = expected
            .keys()
            .map(|t| format!("SELECT count(*) FROM {t};"))
            .collect();
        let diags = vec![
            pg_contender("d-fc-z1", work, "`pg_dump -Fc -Z1 -f F` (comparator)", &f, &["-Fc", "-Z1"]),
            Contender {
                key: "d-tee-z1",
                label: "`pg_dump -Fc -Z1 | tee F | pg_restore -f - > /dev/null` (the streamed verify, without the tool)".to_owned(),
                output: Some(f.clone()),
                fresh_db: false,
                build: {
                    let (work, f, url) = (work.to_owned(), s(&f), url.clone());
                    Box::new(move |_| sh(&work, &format!("pg_dump -Fc -Z1 -d '{url}' | tee '{f}' | pg_restore -f - > /dev/null")))
                },
            },
            pg_contender("d-fc-z0", work, "`pg_dump -Fc -Z0 -f F` (no compression)", &f, &["-Fc", "-Z0"]),
            Contender {
                key: "d-tee-z0",
                label: "`pg_dump -Fc -Z0 | tee F | pg_restore -f - > /dev/null` (streamed verify, no compression)".to_owned(),
                output: Some(f.clone()),
                fresh_db: false,
                build: {
                    let (work, f, url) = (work.to_owned(), s(&f), url.clone());
                    Box::new(move |_| sh(&work, &format!("pg_dump -Fc -Z0 -d '{url}' | tee '{f}' | pg_restore -f - > /dev/null")))
                },
            },
            Contender {
                key: "d-counts",
                label: "the backup's row counts alone: `SELECT count(*)` of every table (psql)".to_owned(),
                output: None,
                fresh_db: false,
                build: {
                    let (work, url) = (work.to_owned(), url.clone());
                    Box::new(move |_| pg("psql", &work, &["-X", "-q", "-d", &url, "-c", &counts_sql]))
                },
            },
        ];
        let samples = bench.rounds("diagnose backup", plan.runs.min(2), &diags, &[])?;
        let base = Stats::of(samples[0].iter().map(|s| s.wall).collect()).median;
        for (i, c) in diags.iter().enumerate() {
            let mut l = line("diag", c, &samples[i]);
            if i > 0 && c.output.is_some() {
                l.note = format!(
                    "{:+.1}% vs `pg_dump -Fc -Z1` in the same rounds",
                    pct(l.stats.median, base)
                );
            }
            diag_lines.push(l);
        }
        // Verify: what the decode costs when its SQL goes through a pipe to a line counter.
        let diag_verifies = vec![
            Contender {
                key: "d-read",
                label: "`pg_restore -f /dev/null X` (comparator)".to_owned(),
                output: None,
                fresh_db: false,
                build: {
                    let (work, x) = (work.to_owned(), s(&tool_dump));
                    Box::new(move |_| pg("pg_restore", &work, &["-f", "/dev/null", &x]))
                },
            },
            Contender {
                key: "d-read-pipe",
                label: "`pg_restore -f - X | wc -l` (the decoded SQL through a pipe, counted in C)"
                    .to_owned(),
                output: None,
                fresh_db: false,
                build: {
                    let (work, x) = (work.to_owned(), s(&tool_dump));
                    Box::new(move |_| {
                        sh(&work, &format!("pg_restore -f - '{x}' | wc -l > /dev/null"))
                    })
                },
            },
        ];
        let samples = bench.rounds("diagnose verify", plan.runs.min(2), &diag_verifies, &[])?;
        for (i, c) in diag_verifies.iter().enumerate() {
            diag_lines.push(line("diag", c, &samples[i]));
        }
        // Restore: the tool's archive restored as its restore does, without the checks and the swap.
        let diag_restores = vec![
            Contender {
                key: "d-in-place",
                label: "`identity-migrate restore --in-place X` (full verify, then one transaction: the fallback without CREATEDB)".to_owned(),
                output: None,
                fresh_db: true,
                build: {
                    let (tool, work, x) = (tool.to_owned(), work.to_owned(), s(&tool_dump));
                    Box::new(move |ctx| tool_cmd(&tool, &work, Some(ctx.url), &["restore", "--in-place", &x]))
                },
            },
            Contender {
                key: "d-j2-stream",
                label: "`pg_restore -j2 -d DB X` of the tool's archive (what its restore runs, without the rest)".to_owned(),
                output: None,
                fresh_db: true,
                build: {
                    let (work, x) = (work.to_owned(), s(&tool_dump));
                    Box::new(move |ctx| pg("pg_restore", &work, &["-j2", "--no-owner", "--exit-on-error", "-d", ctx.url, &x]))
                },
            },
            Contender {
                key: "d-1-w0",
                label: "`pg_restore --single-transaction` with `max_parallel_maintenance_workers=0` (PGOPTIONS)".to_owned(),
                output: None,
                fresh_db: true,
                build: {
                    let (work, x) = (work.to_owned(), s(&tool_dump));
                    Box::new(move |ctx| {
                        let mut c = pg("pg_restore", &work, &["--single-transaction", "--exit-on-error", "--no-owner", "-d", ctx.url, &x]);
                        c.env("PGOPTIONS", "-c max_parallel_maintenance_workers=0");
                        c
                    })
                },
            },
            Contender {
                key: "d-1-w2",
                label: "`pg_restore --single-transaction` with the tool's PGOPTIONS (`maintenance_work_mem=256MB`, `max_parallel_maintenance_workers=2`)".to_owned(),
                output: None,
                fresh_db: true,
                build: {
                    let (work, x) = (work.to_owned(), s(&tool_dump));
                    Box::new(move |ctx| {
                        let mut c = pg("pg_restore", &work, &["--single-transaction", "--exit-on-error", "--no-owner", "-d", ctx.url, &x]);
                        c.env("PGOPTIONS", "-c maintenance_work_mem=256MB -c max_parallel_maintenance_workers=2");
                        c
                    })
                },
            },
        ];
        // One run each: a restore of the full database takes minutes.
        let samples = bench.rounds("diagnose restore", 1, &diag_restores, &[])?;
        for (i, c) in diag_restores.iter().enumerate() {
            diag_lines.push(line("diag", c, &samples[i]));
            let mut p = Phases::default();
            for smp in &samples[i] {
                p.add(&smp.phases);
            }
            diag_phases.push((c.label.clone(), p, samples[i].len()));
        }
    }

    // ---- report ----
    let load_end = loadavg();
    let _ = writeln!(
        out,
        "Load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}. Each run's 1-minute load average is in the run log below.\n"
    );
    out.push_str("### Setup (once)\n\n| step | time |\n|---|---:|\n");
    for (what, t) in &setup {
        let _ = writeln!(out, "| {what} | {} |", fmt_s(*t));
    }
    let _ = writeln!(
        out,
        "\nSource database: {} users, {total_rows} rows in {} tables, {} on disk (`pg_database_size`).\n",
        plan.users,
        expected.len(),
        fmt_mb(u64::try_from(db_size).unwrap_or(0))
    );
    out.push_str("### Results\n\n");
    results_table(&mut out, &lines);
    out.push_str("### Aims\n\n| aim | measured | verdict |\n|---|---|---|\n");
    let met = |ok: bool| if ok { "**met**" } else { "**not met**" };
    let _ = writeln!(
        out,
        "| backup within 5% of the best pg_dump mode ({}) | {} vs {} ({backup_overhead:+.1}%) | {} |",
        cell(&best_label),
        fmt_s(tool_backup),
        fmt_s(best),
        met(backup_overhead <= 5.0)
    );
    let _ = writeln!(
        out,
        "| verify fast enough to run every time: within 10% of its floor (`sha256sum X/*` + `pg_restore --list`) | {} vs {} ({verify_over_floor:+.1}%); {verify_share:.1}% of a backup; `--full`: {} ({full_over_floor:+.1}% vs `sha256sum X/*` + `pg_restore -f /dev/null`) | {} |",
        fmt_s(verify_fast),
        fmt_s(fast_floor),
        fmt_s(verify_full),
        met(verify_over_floor <= 10.0)
    );
    let _ = writeln!(
        out,
        "| atomic restore within 30% of `pg_restore -j2` ({}) | {} vs {} ({restore_over:+.1}%) | {} |\n",
        cell(&j2_label),
        fmt_s(tool_restore),
        fmt_s(j2),
        met(restore_over <= 30.0)
    );

    out.push_str("### Where the server's time goes (pg_stat_activity sampled every 100 ms; mean per run, backend-seconds)\n\n");
    let mut phased: Vec<(String, Phases, usize)> = Vec::new();
    for (i, c) in backups.iter().enumerate().take(2) {
        phased.push((
            c.label.clone(),
            sum_phases(&backup_samples[i]),
            backup_samples[i].len(),
        ));
    }
    phased.push((
        backups[best_i].label.clone(),
        sum_phases(&backup_samples[best_i]),
        backup_samples[best_i].len(),
    ));
    for (i, c) in restores.iter().enumerate() {
        phased.push((
            c.label.clone(),
            sum_phases(&restore_samples[i]),
            restore_samples[i].len(),
        ));
    }
    phased.extend(diag_phases);
    phase_table(&mut out, &phased);

    if !diag_lines.is_empty() {
        out.push_str("### Targeted experiments\n\n");
        results_table(&mut out, &diag_lines);
    }

    out.push_str("### Run log\n\n| # | round | contender | wall | client CPU | busy CPUs | iowait CPUs | load (1 min) before |\n|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (n, (label, smp)) in bench.log.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} s | {:.2} | {:.2} | {:.2} |",
            n + 1,
            smp.round + 1,
            cell(label),
            fmt_s(smp.wall),
            smp.client_cpu.as_secs_f64(),
            smp.busy,
            smp.iowait,
            smp.load1
        );
    }
    out.push('\n');
    Ok(out)
}

fn sum_phases(samples: &[Sample]) -> Phases {
    let mut p = Phases::default();
    for s in samples {
        p.add(&s.phases);
    }
    p
}

fn phase_table(out: &mut String, rows: &[(String, Phases, usize)]) {
    let mut names: Vec<&'static str> = Vec::new();
    for (_, p, _) in rows {
        for k in p.by_phase.keys() {
            if !names.contains(k) {
                names.push(k);
            }
        }
    }
    // A fixed order: the work in the order it happens, then the rest.
    let order = |n: &str| {
        [
            "no query",
            "row counts",
            "dump",
            "load",
            "index",
            "primary",
            "foreign",
            "other",
        ]
        .iter()
        .position(|p| n.starts_with(p))
        .unwrap_or(99)
    };
    names.sort_by_key(|n| order(n));
    out.push_str("| contender | ");
    for n in &names {
        let _ = write!(out, "{n} | ");
    }
    out.push_str("parallel workers active (wall) | builds active (wall) |\n|---|");
    for _ in 0..names.len() + 2 {
        out.push_str("---:|");
    }
    out.push('\n');
    for (label, p, runs) in rows {
        let per = |d: Duration| fmt_s(d / u32::try_from((*runs).max(1)).unwrap_or(1));
        let _ = write!(out, "| {} | ", cell(label));
        for n in &names {
            let _ = write!(
                out,
                "{} | ",
                p.by_phase
                    .get(n)
                    .map_or_else(|| "–".to_owned(), |d| per(*d))
            );
        }
        let _ = writeln!(out, "{} | {} |", per(p.parallel), per(p.building));
    }
    out.push('\n');
}

fn results_table(out: &mut String, lines: &[Line]) {
    out.push_str("| step | measurement | runs | median | min | max | client CPU (median) | busy CPUs (median) | size | note |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for l in lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.1} s | {:.2} | {} | {} |",
            l.section,
            cell(&l.label),
            l.stats.runs,
            fmt_s(l.stats.median),
            fmt_s(l.stats.min),
            fmt_s(l.stats.max),
            l.cpu.as_secs_f64(),
            l.busy,
            l.size.map_or_else(|| "–".to_owned(), fmt_mb),
            l.note
        );
    }
    out.push('\n');
}

fn tool_contender(
    key: &'static str,
    tool: &Path,
    work: &Path,
    label: &str,
    output: &Path,
    args: &[&str],
) -> Contender {
    let (tool, work) = (tool.to_owned(), work.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    Contender {
        key,
        label: label.to_owned(),
        output: Some(output.to_owned()),
        fresh_db: false,
        build: Box::new(move |ctx| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            tool_cmd(&tool, &work, Some(ctx.url), &a)
        }),
    }
}

fn pg_contender(
    key: &'static str,
    work: &Path,
    label: &str,
    output: &Path,
    args: &[&str],
) -> Contender {
    let work = work.to_owned();
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["-f".to_owned(), s(output)]);
    Contender {
        key,
        label: label.to_owned(),
        output: Some(output.to_owned()),
        fresh_db: false,
        build: Box::new(move |ctx| {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            a.extend(["-d", ctx.url]);
            pg("pg_dump", &work, &a)
        }),
    }
}

/// The server settings that matter for dumps and restores.
fn settings_table(out: &mut String, admin: &TestDb) -> Res<()> {
    let mut c = admin.client();
    out.push_str(
        "### Settings that matter for backup and restore\n\n| setting | value |\n|---|---|\n",
    );
    for name in [
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "max_parallel_workers",
        "max_worker_processes",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "wal_level",
        "max_wal_size",
        "checkpoint_timeout",
    ] {
        let v: String = c
            .query_one(&format!("SHOW {name}"), &[])
            .map_err(|e| format!("SHOW {name}: {e}"))?
            .get(0);
        let _ = writeln!(out, "| `{name}` | {v} |");
    }
    let pg_dump = super::capture("pg_dump", &["--version"]);
    let _ = writeln!(out, "| `pg_dump --version` | {pg_dump} |\n");
    Ok(())
}

//! `--tls`: what TLS costs a command. `identity-migrate status` over `verify-full` beside the same
//! command without TLS, and beside `psql` over the same TLS, on one private cluster whose CA and
//! server certificate are made at start (rcgen), in one run.

use super::{check, fmt_ms, loadavg, progress, psql_cmd, repeat, run_timed, tool_cmd, Res, Row};
use migrate_testkit::private_cluster::{ServerCert, TlsCluster};
use std::fmt::Write as _;
use std::path::Path;

/// Measures; `runs` timed runs of each, after warm-up.
pub fn run(tool: &Path, work: &Path, runs: usize) -> Res<String> {
    let tls = TlsCluster::start_allowing_plaintext(ServerCert::Good);
    tls.create_database("bench");
    let ca = tls.ca_file.to_string_lossy().into_owned();
    let urls = [
        (
            "verify-full",
            tls.url(
                "localhost",
                "bench",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ),
        ("require", tls.url("localhost", "bench", "sslmode=require")),
        (
            "disable (no TLS)",
            tls.url("localhost", "bench", "sslmode=disable"),
        ),
    ];
    let load_start = loadavg();
    check(
        &run_timed(&mut tool_cmd(tool, work, Some(&urls[0].1), &["migrate"]))?.1,
        "identity-migrate migrate over verify-full",
    )?;
    let mut rows = Vec::new();
    for (mode, url) in &urls {
        progress(&format!("tls: status, sslmode={mode}"));
        let stats = repeat(runs, 3, || {
            let (t, o) = run_timed(&mut tool_cmd(tool, work, Some(url), &["status"]))?;
            check(&o, "identity-migrate status")?;
            if !String::from_utf8_lossy(&o.stdout).contains("up to date") {
                return Err("identity-migrate status: the database is not at head".to_owned());
            }
            Ok(t)
        })?;
        rows.push(Row::new(
            "T",
            &format!("`identity-migrate status`, sslmode={mode}"),
            stats,
        ));
    }
    for (mode, url) in [&urls[0], &urls[2]] {
        progress(&format!("tls: psql, sslmode={mode}"));
        let stats = repeat(runs, 3, || {
            let (t, o) = run_timed(&mut psql_cmd(work, url, &["-c", "select 1"]))?;
            check(&o, "psql -c 'select 1'")?;
            Ok(t)
        })?;
        rows.push(Row::new(
            "T",
            &format!("`psql -X -c 'select 1'`, sslmode={mode}"),
            stats,
        ));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## TLS: `status` over verify-full, without TLS, and psql over the same TLS\n"
    );
    let _ = writeln!(
        out,
        "Load average at start: {load_start}; at end: {}\n",
        loadavg()
    );
    out.push_str(
        "| measurement | runs | median | p95 | min | max |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.what,
            r.stats.runs,
            fmt_ms(r.stats.median),
            fmt_ms(r.stats.p95),
            fmt_ms(r.stats.min),
            fmt_ms(r.stats.max)
        );
    }
    Ok(out)
}

//! Each benchmark's quick mode keeps running, so that a benchmark that stops working fails the
//! suite. Their numbers are in BENCHMARKS.md; none is asserted here, only that each run did the
//! work its numbers stand for.

use std::path::PathBuf;
use std::process::Command;

/// Runs `migrate-bench` with `args` and returns its report; a failed run fails the test with
/// both of its outputs.
fn run_quick(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-bench"))
        .args(args)
        .output()
        .expect("run migrate-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_rows(stdout: &str, rows: &[&str]) {
    for row in rows {
        assert!(stdout.contains(row), "{row} not in:\n{stdout}");
    }
}

/// Both databases are built, every lookup finds its user through an index, every insert commits.
#[test]
fn the_service_benchmark_runs_in_quick_mode() {
    let stdout = run_quick(&["--service", "--quick"]);
    assert_rows(
        &stdout,
        &[
            "login lookup `users.email = $1::VARCHAR`, at 68d314520251",
            "login lookup `users.email = $1::VARCHAR`, at head",
            "user insert (the ORM's 28-column INSERT, own transaction), at 68d314520251",
            "user insert (the ORM's 28-column INSERT, own transaction), at head",
            "`migrate` 68d314520251 → head at 2000 users",
        ],
    );
    // The lookup is an index scan on both sides: at head on the plain unique key the model
    // declares (a lower(email) index would not serve it).
    let plans: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| S | login lookup"))
        .collect();
    assert_eq!(plans.len(), 2, "{stdout}");
    for line in plans {
        assert!(line.contains("plan: Index Scan using"), "{line}");
    }
}

/// Both sides are seeded alike, migrated to head under the login workload, and `check` is clean
/// on both afterwards (the benchmark fails otherwise).
#[test]
fn the_online_benchmark_runs_in_quick_mode() {
    let stdout = run_quick(&["--online", "--quick"]);
    assert_rows(
        &stdout,
        &[
            "| naive | before |",
            "| naive | during |",
            "| online | before |",
            "| online | during |",
        ],
    );
    // Every window saw logins: the workload ran throughout.
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("| naive |") || l.starts_with("| online |"))
    {
        let logins: usize = line
            .split('|')
            .nth(3)
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(logins > 0, "{line}");
    }
}

/// `scripts/bench --quick`: the same harness the script runs (on the release build), here on the
/// test build, so that `cargo test --workspace` stays the one command and a migration benchmark
/// that stops working (as it did when `generate-sql` started writing SQLite's SQL when no
/// database is configured) fails the suite.
#[test]
fn the_migration_benchmark_runs_in_quick_mode() {
    let tool = tool();
    let stdout = run_quick(&[&tool, "--quick"]);
    assert_rows(
        &stdout,
        &[
            "`psql -X -q -v ON_ERROR_STOP=1 -1 -f` of the generated SQL, fresh database",
            "`identity-migrate generate-sql --dialect postgres --from base --to head-1 --output FILE` (offline)",
            "checked once that `migrate` and `psql -1 -f` of the generated SQL leave the same schema",
        ],
    );
    assert_bash_syntax("bench");
}

/// The backup benchmark (`scripts/bench-backup --quick` runs it on a release build): the tool's
/// backup, verify and restore are timed beside `pg_dump`/`pg_restore`, and the report names the
/// build it measured.
#[test]
fn the_backup_benchmark_runs_in_quick_mode() {
    let tool = tool();
    let stdout = run_quick(&[&tool, "--backup", "--quick"]);
    assert_rows(
        &stdout,
        &[
            "| backup | `identity-migrate backup --output X`",
            "| backup | `pg_dump -Fd -j2 -Z0` |",
            "| verify fast enough to run every time",
            "| atomic restore within 30% of `pg_restore -j2`",
            "(debug build) |",
        ],
    );
    assert_bash_syntax("bench-backup");
}

/// `bash -n` of `scripts/<name>`: the script that runs the benchmark on a release build parses.
fn assert_bash_syntax(name: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name);
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash -n");
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
}

/// The identity-migrate binary of this build, beside migrate-bench.
fn tool() -> String {
    // The workspace's test build puts identity-migrate beside this binary.
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_migrate-bench"));
    let tool = bench.with_file_name("identity-migrate");
    assert!(
        tool.exists(),
        "{} is missing: run `cargo build -p identity-migrate` (cargo test --workspace builds it)",
        tool.display()
    );
    tool.to_string_lossy().into_owned()
}

/// `status` over verify-full, require and no TLS, and psql beside it.
#[test]
fn the_tls_benchmark_runs_in_quick_mode() {
    let tool = tool();
    let stdout = run_quick(&[&tool, "--tls", "--quick"]);
    assert_rows(
        &stdout,
        &[
            "`identity-migrate status`, sslmode=verify-full",
            "`identity-migrate status`, sslmode=disable (no TLS)",
            "`psql -X -c 'select 1'`, sslmode=verify-full",
        ],
    );
}

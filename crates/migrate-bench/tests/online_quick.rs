//! The online benchmark's quick mode keeps running (its numbers are in BENCHMARKS.md; none is
//! asserted here): both sides are seeded alike, migrated to head under the login workload, and
//! `check` is clean on both afterwards (the benchmark fails otherwise).

use std::process::Command;

#[test]
fn the_online_benchmark_runs_in_quick_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-bench"))
        .args(["--online", "--quick"])
        .output()
        .expect("run migrate-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| naive | before |",
        "| naive | during |",
        "| online | before |",
        "| online | during |",
    ] {
        assert!(stdout.contains(row), "{row} not in:\n{stdout}");
    }
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

//! The service benchmark's quick mode keeps running (its numbers are in BENCHMARKS.md; none is
//! asserted here): both databases are built, every lookup finds its user through an index, and
//! every insert commits.

use std::process::Command;

#[test]
fn the_service_benchmark_runs_in_quick_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-bench"))
        .args(["--service", "--quick"])
        .output()
        .expect("run migrate-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "login lookup `users.email = $1::VARCHAR`, at 68d314520251",
        "login lookup `users.email = $1::VARCHAR`, at head",
        "user insert (the ORM's 28-column INSERT, own transaction), at 68d314520251",
        "user insert (the ORM's 28-column INSERT, own transaction), at head",
        "`migrate` 68d314520251 → head at 2000 users",
    ] {
        assert!(stdout.contains(row), "{row} not in:\n{stdout}");
    }
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

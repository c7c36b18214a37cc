//! The TLS benchmark's quick mode keeps running (its numbers are in BENCHMARKS.md; none is
//! asserted here): `status` over verify-full, require and no TLS, and psql beside it.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_tls_benchmark_runs_in_quick_mode() {
    // The workspace's test build puts identity-migrate beside this binary.
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_migrate-bench"));
    let tool = bench.with_file_name("identity-migrate");
    assert!(
        tool.exists(),
        "{} is missing: run `cargo build -p identity-migrate` (cargo test --workspace builds it)",
        tool.display()
    );
    let out = Command::new(&bench)
        .arg(&tool)
        .args(["--tls", "--quick"])
        .output()
        .expect("run migrate-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "`identity-migrate status`, sslmode=verify-full",
        "`identity-migrate status`, sslmode=disable (no TLS)",
        "`psql -X -c 'select 1'`, sslmode=verify-full",
    ] {
        assert!(stdout.contains(row), "{row} not in:\n{stdout}");
    }
}

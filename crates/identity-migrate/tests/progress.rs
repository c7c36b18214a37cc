//! Progress is drawn on a terminal only: never into a pipe, never with `--json`. The terminal is
//! a real pseudo-terminal from `script` (util-linux), which must be installed: the test fails
//! with one line saying so, never skips.

mod common;

use common::{run, tempdir, R1};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs the binary with `args` on a pseudo-terminal (stdout and stderr both go to it); returns
/// what the terminal showed.
fn on_terminal(dir: &Path, args: &[&str]) -> String {
    let binary = env!("CARGO_BIN_EXE_identity-migrate");
    let line = std::iter::once(binary)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("HOME", dir)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("script (util-linux) is needed for a pseudo-terminal and cannot be run ({e}): apt-get install util-linux")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn wait_draws_a_spinner_on_a_terminal_only() {
    let dir = tempdir();
    let url = format!("sqlite:///{}", dir.path().join("service.db").display());
    run(dir.path(), &["--database-url", &url, "migrate-to", R1]).ok();
    let args = [
        "--no-dotenv",
        "--database-url",
        &url,
        "wait",
        "--timeout",
        "2",
    ];

    let shown = on_terminal(dir.path(), &args);
    assert!(
        shown.contains("the database is at"),
        "no spinner: {shown:?}"
    );
    assert!(
        shown.contains("\x1b[2K"),
        "the spinner clears its line: {shown:?}"
    );

    // With --json on the same terminal: the object and the log, no spinner.
    let mut json = args.to_vec();
    json.push("--json");
    let shown = on_terminal(dir.path(), &json);
    assert!(shown.contains("\"state\":\"behind\""), "{shown:?}");
    assert!(
        !shown.contains("the database is at") && !shown.contains("\x1b["),
        "{shown:?}"
    );

    // --quiet on a terminal: no spinner either.
    let mut quiet = vec!["--quiet"];
    quiet.extend_from_slice(&args);
    let shown = on_terminal(dir.path(), &quiet);
    assert!(
        !shown.contains("the database is at") && !shown.contains("\x1b["),
        "{shown:?}"
    );

    // Into pipes: plain lines only.
    let out = run(dir.path(), &args[1..]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        !out.all().contains('\r') && !out.all().contains("\x1b["),
        "{out}"
    );
}
